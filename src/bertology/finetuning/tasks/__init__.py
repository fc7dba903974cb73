"""Task kinds: classification, regression, tagging, qa, multiple_choice and sentence_embedding, each one module,
by name.

`TASK_KINDS` maps a config's ``kind:`` to its class; `task_kind(name)` builds one. A new kind is one module
that registers itself (see `base.py`); importing it is all it takes for configs to name it.
"""

from .base import TASK_KINDS, TaskKind, argmax, class_loss, kind_options, kind_with, task_kind
from .classification import Classification
from .multiple_choice import MultipleChoice
from .qa import QAOptions, QuestionAnswering
from .regression import Regression
from .sentence_embedding import SentenceEmbedding, SentenceEmbeddingOptions
from .tagging import Tagging, TaggingOptions
from .text import TextKind

__all__ = [
    "TASK_KINDS", "Classification", "MultipleChoice", "QAOptions", "QuestionAnswering", "Regression",
    "SentenceEmbedding", "SentenceEmbeddingOptions", "Tagging", "TaggingOptions", "TaskKind", "TextKind", "argmax", "class_loss", "kind_options", "kind_with", "task_kind",
]
