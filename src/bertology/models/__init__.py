"""Model building blocks (embeddings, attention, encoder, heads) and the families built from them."""

from .albert import AlbertConfig, AlbertForMaskedLM, AlbertForPreTraining, AlbertModel
from .ambert import AmbertConfig, AmbertModel
from .bert import BertForMaskedLM, BertForPreTraining, BertModel
from .chinesebert import ChineseBertConfig, ChineseBertForMaskedLM, ChineseBertModel
from .config import BertConfig, preset_names
from .family import FAMILIES, Family, register_family
from .outputs import EncoderOutput, MaskedLMOutput, PreTrainingOutput
from .pooling import cls_pool, max_pool, mean_pool, pool
from .pretrained import PreTrainedModel, load
from .roberta import RobertaConfig, RobertaForMaskedLM, RobertaModel
from .task_heads import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification

__all__ = [
    "BertForQuestionAnswering", "BertForSequenceClassification", "BertForTokenClassification",
    "AmbertConfig", "AmbertModel", "ChineseBertConfig", "ChineseBertForMaskedLM", "ChineseBertModel",
    "AlbertConfig", "AlbertForMaskedLM", "AlbertForPreTraining", "AlbertModel", "RobertaConfig",
    "RobertaForMaskedLM", "RobertaModel", "BertConfig", "BertForMaskedLM", "BertForPreTraining", "BertModel", "EncoderOutput", "MaskedLMOutput",
    "PreTrainedModel", "PreTrainingOutput", "cls_pool", "load", "max_pool", "mean_pool", "pool",
    "preset_names", "FAMILIES", "Family", "register_family",
]
