"""Classification: a class name per text (or pair), or a list of names (multi-label: a JSONL list label)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ..divergence import symmetric_bernoulli_kl, symmetric_kl
from ..examples import BadRow, Example, short
from ..metrics import accuracy, macro_f1
from .base import TASK_KINDS, argmax, class_loss
from .text import TextKind

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..labels import LabelSet
    from ..model import HeadConfig, HeadOptions
    from ..taskdata import TaskData

__all__ = ["Classification"]


def class_label(value: Any, required: bool) -> str | list[str] | None:
    """A class name (integers become names), a flat list of names, or None when absent and not required."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRow("empty label")
        return None
    if isinstance(value, list):
        if any(isinstance(v, list) for v in value):
            raise BadRow("wrong type", f"a multi-label label must be a flat list of names, got {short(value)}")
        return [str(class_label(v, True)) for v in value]
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise BadRow("wrong type", f"a class label must be a string or an integer, got {short(value)}")


@TASK_KINDS.register("classification")
class Classification(TextKind):
    """One class per text (softmax), or any number (multi-label: one sigmoid per class)."""

    uses_labels = True
    supports_multi_label = True

    def read_label(self, value: Any, required: bool) -> str | list[str] | None:
        return class_label(value, required)

    def target(self, example: Example, labels: LabelSet | None) -> Any:
        if example.label is None or labels is None:
            return None
        if isinstance(example.label, list):
            return labels.multi_hot(example.label, example.source)
        return labels.encode(example.label, example.source)  # type: ignore[arg-type]

    def collate_target(self, key: str, values: list[Any]) -> torch.Tensor:
        if isinstance(values[0], list):  # multi-label: multi-hot rows
            return torch.tensor(values, dtype=torch.float)
        return torch.tensor(values, dtype=torch.long)

    def outputs(self, head: HeadConfig) -> int:
        return len(head.labels)

    def loss(self, head: HeadConfig, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        logits = logits.float()
        labels = batch.get("labels")
        if labels is None:
            return None, {}
        if head.multi_label:
            loss = F.binary_cross_entropy_with_logits(logits, labels.float())
            return loss, {"accuracy": ((logits > 0) == (labels > 0.5)).float().mean()}
        return class_loss(logits, labels)

    def divergence(self, head: HeadOptions | None, clean: torch.Tensor, perturbed: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
        if head is not None and head.multi_label:
            return symmetric_bernoulli_kl(perturbed, clean)
        return symmetric_kl(perturbed, clean)

    def decode(self, task: TaskData, split: str, logits: list[np.ndarray]) -> list[Any]:
        names = list(task.labels.names) if task.labels is not None else []
        if task.config.head.multi_label:
            return [[names[j] for j in np.flatnonzero(row > 0)] for row in logits]
        return [names[i] for i in argmax(logits)]

    def metrics(self, task: TaskData, split: str, predictions: list[Any]) -> dict[str, float]:
        gold = [e.label for e in task.examples[split]]
        if task.config.head.multi_label:
            return {"accuracy": accuracy([sorted(g) == sorted(p) for g, p in zip(gold, predictions, strict=True)],
                                         [True] * len(gold))}
        names = list(task.labels.names)  # type: ignore[union-attr]
        ids = {n: i for i, n in enumerate(names)}
        g = [ids.get(x, -1) for x in gold]
        p = [ids[x] for x in predictions]
        return {"accuracy": accuracy(g, p), "macro_f1": macro_f1(g, p, len(names))}
