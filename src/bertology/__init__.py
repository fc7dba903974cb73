"""bertology: the whole life of a BERT-family encoder."""

from .errors import BertologyError, CheckpointError, ConfigError
from .models import (
    AlbertConfig,
    AlbertForMaskedLM,
    AlbertForPreTraining,
    AlbertModel,
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertModel,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaModel,
    cls_pool,
    load,
    max_pool,
    mean_pool,
    pool,
)
from .tokenization import Tokenizer

__version__ = "0.1.0"

__all__ = [
    "AlbertConfig", "AlbertForMaskedLM", "AlbertForPreTraining", "AlbertModel", "RobertaConfig",
    "RobertaForMaskedLM", "RobertaModel", "BertConfig", "BertForMaskedLM", "BertForPreTraining", "BertModel", "BertologyError", "CheckpointError",
    "ConfigError", "Tokenizer", "cls_pool", "load", "max_pool", "mean_pool", "pool",
]
