"""Regression: a number per text (or pair), e.g. STS-B similarity; scored by correlation."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import DataError
from ..examples import BadRow, Example, short
from ..metrics import pearson, spearman
from .base import TASK_KINDS
from .text import TextKind

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..labels import LabelSet
    from ..model import HeadConfig, HeadOptions
    from ..taskdata import TaskData

__all__ = ["Regression"]


def number(value: Any, required: bool) -> float | None:
    """A finite number (numeric strings too), or None when absent and not required."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRow("empty label")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRow("not a number", f"the regression label {short(value)} is not a number")
    try:
        result = float(value)
    except ValueError:
        raise BadRow("not a number", f"the regression label {short(value)} is not a number") from None
    if not math.isfinite(result):
        raise BadRow("not a number", f"the regression label {short(value)} is not a finite number")
    return result


@TASK_KINDS.register("regression")
class Regression(TextKind):
    """One number per text, learned with the mean squared error."""

    def read_label(self, value: Any, required: bool) -> float | None:
        return number(value, required)

    def target(self, example: Example, labels: LabelSet | None) -> float | None:
        label = example.label
        if label is None:
            return None
        if isinstance(label, (list, str)) or isinstance(label, bool):
            raise DataError(f"{example.source}: regression label {label!r} is not a number")
        return float(label)

    def collate_target(self, key: str, values: list[Any]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float)

    def loss(self, head: HeadConfig, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        labels = batch.get("labels")
        if labels is None:
            return None, {}
        return F.mse_loss(logits.float().squeeze(-1), labels.float()), {}

    def divergence(self, head: HeadOptions | None, clean: torch.Tensor, perturbed: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.mse_loss(perturbed.float(), clean.float())

    def decode(self, task: TaskData, split: str, logits: list[np.ndarray]) -> list[float]:
        return [float(row.reshape(-1)[0]) for row in logits]

    def metrics(self, task: TaskData, split: str, predictions: list[Any]) -> dict[str, float]:
        gold = [float(e.label) for e in task.examples[split]]  # type: ignore[arg-type]
        errors = np.asarray(gold) - np.asarray(predictions)
        return {"pearson": pearson(gold, predictions), "spearman": spearman(gold, predictions),
                "mse": float((errors ** 2).mean())}
