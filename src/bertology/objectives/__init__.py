"""Pretraining objectives, chosen by name: MLM, NSP, SOP, order, distance, capitalization, ELECTRA's RTD,
SpanBERT's span boundary objective, BART's denoising, SimCSE, InfoWord, XLM's TLM, ERNIE 2.0's token-document
relation and sentence reordering, StructBERT's word order and UniLMv2's pseudo-masked LM.

Importing the package registers every objective, and AMBERT's family-specific pretraining.
"""

from . import (  # noqa: F401  (each registers itself)
    ambert,
    capitalization,
    contrastive,
    denoising,
    infoword,
    mlm,
    pseudo_masking,
    rtd,
    sentence,
    sentence_reordering,
    span_boundary,
    token_document,
    translation,
    word_order,
)
from .base import OBJECTIVES, Objective, objective_classes, objective_options, register
from .model import PretrainingModel
from .rtd import RtdOptions

__all__ = ["OBJECTIVES", "Objective", "PretrainingModel", "RtdOptions", "objective_classes", "objective_options",
           "register"]
