"""Batched inference over encoded features, decoding back to the user's units, and task metrics.

Predictions decode to what the user labelled: a class name, a number, one tag per *word* (the first
piece's prediction), an answer string found across document-stride windows, a choice index. Metrics
are computed on those, so entity F1 and SQuAD EM/F1 mean what the papers mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError
from .model import TaskModel


def feature_length(feature: dict) -> int:
    """Tokens of the feature's longest row: the width the collator pads its batch to (a multiple-choice
    feature holds one row per choice, so the length of `input_ids` would count choices, not tokens)."""
    ids = feature["input_ids"]
    if ids and isinstance(ids[0], (list, tuple)):
        return max(len(row) for row in ids)
    return len(ids)


def _batches(features: Sequence[dict], batch_size: int, bucket: bool = True) -> list[list[int]]:
    """Indices of each batch. With `bucket`, features are sorted by length (longest first) so a batch holds
    similar lengths and little compute goes to padding; callers write results back by index, so the order
    they return is the features' own either way. Without it, batches follow the input order."""
    order = list(range(len(features)))
    if bucket:
        order.sort(key=lambda i: -feature_length(features[i]))  # stable: equal lengths keep their input order
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def _device(model: torch.nn.Module) -> torch.device:
    device = getattr(model, "device", None)  # a model without parameters (an onnxruntime graph) names its own
    return device if isinstance(device, torch.device) else next(model.parameters()).device


def _to(value: Any, device: torch.device) -> Any:
    """A tensor on `device`: to a GPU through page-locked memory, so the copy does not block the host."""
    if not isinstance(value, torch.Tensor) or value.device == device:
        return value
    if device.type == "cuda" and value.device.type == "cpu":
        value = value.pin_memory()
    return value.to(device, non_blocking=True)


@torch.no_grad()
def task_logits(model: TaskModel, task: str, features: Sequence[dict], collate: Callable, batch_size: int = 64,
                bf16: bool = False, progress: bool = False, bucket: bool = True) -> list[np.ndarray]:
    """Logits per feature, unpadded (tagging and QA: one row per real token), in the features' order.

    `bucket` (default) batches features of similar length together; the logits are the same (within float
    tolerance) as with `bucket=False`, which batches in input order."""
    was_training = model.training
    model.eval()
    device = _device(model)
    out: list[np.ndarray | None] = [None] * len(features)
    batches = _batches(features, batch_size, bucket)
    for indices in tqdm(batches, disable=not progress, desc="predicting", unit="batch"):
        batch = collate([features[i] for i in indices])
        batch = {k: _to(v, device) for k, v in batch.items()}
        for key in model.heads[task].kind.target_keys:
            batch.pop(key, None)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(**batch, task=task).outputs["logits"].float().cpu().numpy()
        for row, i in enumerate(indices):
            length = len(features[i]["input_ids"])
            token_level = logits.ndim == 3
            out[i] = logits[row, :length] if token_level else logits[row]
    model.train(was_training)
    return out  # type: ignore[return-value]


@torch.no_grad()
def cache_features(model: TaskModel, task: str, features: Sequence[dict], collate: Callable, batch_size: int = 64,
                   bf16: bool = False, progress: bool = True, bucket: bool = True) -> list[dict]:
    """Run the frozen encoder once: each feature gains `cached`, the per-layer tensors its head reads
    (pooled vectors for sentence tasks, per-token states otherwise), so later epochs skip the encoder.
    The list keeps the features' order; `bucket` only groups similar lengths into the encoder's batches."""
    was_training = model.training
    model.eval()
    head = model.heads[task]
    if head.two_views:
        raise ConfigError(f"task {task!r}: the encoder has two granularities (AMBERT) and its head reads both, but "
                          "method 'frozen' caches one view; use method full, adapter or lora")
    device = _device(model)
    cached: list[dict] = [dict(f) for f in features]
    for indices in tqdm(_batches(features, batch_size, bucket), desc="caching features", unit="batch", leave=False,
                        disable=not progress):
        batch = collate([features[i] for i in indices])
        inputs = {k: _to(v, device) for k, v in batch.items() if k not in head.kind.target_keys and k != "cached"}
        inputs, _, groups = head.kind.group(inputs, None)  # multiple choice: (batch, choices, seq) -> rows
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            hidden = model.encode(**inputs)
            if head.sentence_level:
                layers = torch.stack(head.pool_layers(hidden, inputs["attention_mask"]), dim=1)
            else:
                layers = torch.stack(hidden, dim=1)
        layers = layers.to(torch.bfloat16).cpu()
        if groups is not None:
            layers = layers.unflatten(0, (-1, groups))
        for row, i in enumerate(indices):
            value = layers[row]
            if not head.sentence_level:
                value = value[:, : len(features[i]["input_ids"])]
            cached[i]["cached"] = value.clone()
    model.train(was_training)
    return cached


def decode(task: Any, split: str, logits: list[np.ndarray]) -> list[Any]:
    """Per *example* predictions in the user's units (the task kind decodes)."""
    return task.kind.decode(task, split, logits)


def metrics_for(task: Any, split: str, predictions: list[Any]) -> dict[str, float]:
    """The task kind's metrics of `predictions` on `split`."""
    return task.kind.metrics(task, split, predictions)


def evaluate_task(model: TaskModel, task: Any, split: str, collate: Callable, batch_size: int = 64,
                  bf16: bool = False, features: Sequence[dict] | None = None, bucket: bool = True
                  ) -> dict[str, float]:
    """Metrics on one split; `features` may be the split's features with frozen-encoder `cached` tensors;
    `bucket`: batch by length (see `task_logits`)."""
    logits = task_logits(model, task.name, features or task.features[split], collate, batch_size, bf16,
                         bucket=bucket)
    return metrics_for(task, split, decode(task, split, logits))


def task_predictions(model: TaskModel, task: Any, split: str, collate: Callable, batch_size: int = 64,
                     bf16: bool = False, progress: bool = True, bucket: bool = True) -> list[Any]:
    """Predictions in the user's units for every example of `split`, in its order; `bucket`: batch by
    length (see `task_logits`)."""
    logits = task_logits(model, task.name, task.features[split], collate, batch_size, bf16, progress, bucket)
    return decode(task, split, logits)
