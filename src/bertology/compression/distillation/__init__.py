"""Knowledge distillation (TinyBERT, DistilBERT): which teacher layer each student layer learns from, and the
losses by name (`DISTILLATION_LOSSES`); a training loop builds them with `build_losses` and sums them with
`combined`."""

from .losses import (
    DISTILLATION_LOSSES,
    STAGES,
    AttentionLoss,
    AttentionLossOptions,
    CosineLoss,
    CosineLossOptions,
    DistilBertSoftLoss,
    DistilBertSoftOptions,
    DistillationLoss,
    EmbeddingLoss,
    EmbeddingLossOptions,
    HiddenLoss,
    HiddenLossOptions,
    LossOptions,
    PredictionLoss,
    PredictionLossOptions,
    Views,
    build_losses,
    combined,
    for_stage,
)
from .mapping import STRATEGIES, LayerMap, layer_map

__all__ = [
    "DISTILLATION_LOSSES", "STAGES", "STRATEGIES", "AttentionLoss", "AttentionLossOptions", "CosineLoss",
    "CosineLossOptions", "DistilBertSoftLoss", "DistilBertSoftOptions", "DistillationLoss", "EmbeddingLoss",
    "EmbeddingLossOptions", "HiddenLoss", "HiddenLossOptions", "LayerMap", "LossOptions", "PredictionLoss",
    "PredictionLossOptions", "Views", "build_losses", "combined", "for_stage", "layer_map",
]
