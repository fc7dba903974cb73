"""bertology: the whole life of a BERT-family encoder."""

from .errors import BertologyError, CheckpointError, ConfigError
from .models import (
    AlbertConfig,
    AlbertForMaskedLM,
    AlbertForPreTraining,
    AlbertModel,
    AmbertConfig,
    AmbertModel,
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    ChineseBertConfig,
    ChineseBertForMaskedLM,
    ChineseBertModel,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaModel,
    cls_pool,
    load,
    max_pool,
    mean_pool,
    pool,
)
from .tokenization import (
    AmbertTokenizer,
    BaseTokenizer,
    ByteLevelBPETokenizer,
    ChineseBertTokenizer,
    Tokenizer,
    WordPieceTokenizer,
    load_tokenizer,
)

__version__ = "0.1.0"

__all__ = [
    "BertForQuestionAnswering", "BertForSequenceClassification", "BertForTokenClassification",
    "AmbertConfig", "AmbertModel", "ChineseBertConfig", "ChineseBertForMaskedLM", "ChineseBertModel",
    "AlbertConfig", "AlbertForMaskedLM", "AlbertForPreTraining", "AlbertModel", "RobertaConfig",
    "RobertaForMaskedLM", "RobertaModel", "BertConfig", "BertForMaskedLM", "BertForPreTraining", "BertModel", "BertologyError", "CheckpointError",
    "ConfigError", "Tokenizer", "BaseTokenizer", "WordPieceTokenizer", "ByteLevelBPETokenizer", "ChineseBertTokenizer",
    "AmbertTokenizer",
    "load_tokenizer", "cls_pool", "load", "max_pool", "mean_pool", "pool",
]
