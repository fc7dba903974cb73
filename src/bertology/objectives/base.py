"""The shape of a pretraining objective, and the registry that picks one by name."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..models.outputs import EncoderOutput

Losses = dict[str, torch.Tensor]
Metrics = dict[str, torch.Tensor]


class Objective(nn.Module):
    """One pretraining task: reads the encoder output and the batch, returns named losses and metrics.

    Class attributes tell the rest of the system what the task needs: the [CLS] pooler, a sentence-pair
    task in the data (nsp, sop, order, distance), per-token case labels, or masked inputs.
    """

    needs_pooler: ClassVar[bool] = False
    pair_task: ClassVar[str | None] = None
    needs_case: ClassVar[bool] = False
    needs_masking: ClassVar[bool] = False

    def prepare(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        """Rewrite the encoder's input before it runs (ELECTRA's generator does); most tasks do not."""
        return batch

    def forward(self, encoded: EncoderOutput, batch: dict[str, Any]) -> tuple[Losses, Metrics]:
        raise NotImplementedError


OBJECTIVES: dict[str, type[Objective]] = {}


def register(name: str):
    def wrap(cls: type[Objective]) -> type[Objective]:
        OBJECTIVES[name] = cls
        return cls

    return wrap


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if target.numel() == 0:
        return torch.zeros((), device=logits.device)
    return (logits.argmax(-1) == target).float().mean().detach()
