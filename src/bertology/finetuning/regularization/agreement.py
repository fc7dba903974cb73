"""AMBERT's agreement regularizer (Zhang and Li, 2021): the fine-grained and coarse-grained classifiers of one
example should predict alike.

Fine-tuning an encoder with two granularities (AMBERT's characters and words) trains three classifiers per
sentence-level head -- on the fine [CLS] vector, on the coarse one, and on both concatenated, which is the one
that predicts -- and sums their losses (`finetuning.model.TaskModel`). This regularizer adds `weight` times
the squared distance between the fine and coarse predicted distributions, as the paper's fine-tuning
objective does (our reading; the formula is `bertology.models.ambert.agreement_gap`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...errors import ConfigError
from ...models.ambert import agreement_gap as ambert_gap
from .base import REGULARIZERS, Regularizer

__all__ = ["Agreement", "AgreementOptions", "agreement_gap"]


@dataclass
class AgreementOptions:
    #: weight of the squared distance between the two granularities' predictions
    weight: float = 1.0

    def validate(self, where: str = "") -> None:
        if self.weight < 0:
            raise ConfigError(f"{where}field 'weight' must be >= 0, got {self.weight}")


def agreement_gap(head, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """The squared distance of the two granularities' predictions for a head (see `models.ambert`)."""
    return ambert_gap(fine, coarse, multi_label=bool(getattr(head, "multi_label", False)))


@REGULARIZERS.register("agreement", options=AgreementOptions)
class Agreement(Regularizer):
    """Sets the agreement weight of every head that reads two granularities."""

    def transform(self, model: nn.Module) -> None:
        heads = [h for h in getattr(model, "heads", {}).values() if getattr(h, "two_views", False)]
        if not heads:
            raise ConfigError("regularizers.agreement: needs an encoder with two granularities (AMBERT: characters "
                              "and words) and a sentence-level task; this model has none")
        for head in heads:
            head.agreement_weight = self.options.weight
