"""Pretraining data: corpus preparation into memory-mapped token shards, and their reader.

Importing this package only defines names: no files are read and no tokenizer or jieba is loaded.
"""

from .prepare import PrepareConfig, PrepareSummary, prepare_corpus
from .shards import CorpusError, TokenCorpus

__all__ = ["CorpusError", "PrepareConfig", "PrepareSummary", "TokenCorpus", "prepare_corpus"]
