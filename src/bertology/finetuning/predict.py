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

from .metrics import accuracy, macro_f1, pearson, spearman
from .model import TaskModel
from .qa import answer_across_windows, squad_em_f1
from .tagging import entity_scores


def _batches(features: Sequence[dict], batch_size: int) -> list[list[int]]:
    """Batches of similar length (longest first), so little compute goes to padding."""
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def task_logits(model: TaskModel, task: str, features: Sequence[dict], collate: Callable, batch_size: int = 64,
                bf16: bool = False, progress: bool = False) -> list[np.ndarray]:
    """Logits per feature, unpadded (tagging and QA: one row per real token), in the features' order."""
    was_training = model.training
    model.eval()
    device = _device(model)
    out: list[np.ndarray | None] = [None] * len(features)
    for indices in tqdm(_batches(features, batch_size), disable=not progress, desc="predicting", unit="batch"):
        batch = collate([features[i] for i in indices])
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        for key in ("labels", "start_positions", "end_positions"):
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
                   bf16: bool = False, progress: bool = True) -> list[dict]:
    """Run the frozen encoder once: each feature gains `cached`, the per-layer tensors its head reads
    (pooled vectors for sentence tasks, per-token states otherwise), so later epochs skip the encoder."""
    was_training = model.training
    model.eval()
    head = model.heads[task]
    device = _device(model)
    cached: list[dict] = [dict(f) for f in features]
    for indices in tqdm(_batches(features, batch_size), desc="caching features", unit="batch", leave=False,
                        disable=not progress):
        batch = collate([features[i] for i in indices])
        mask = batch["attention_mask"].to(device)
        ids = batch["input_ids"].to(device)
        types = batch.get("token_type_ids")
        grouped = ids.dim() == 3  # multiple choice: (batch, choices, seq)
        if grouped:
            choices = ids.shape[1]
            ids, mask = ids.flatten(0, 1), mask.flatten(0, 1)
            types = None if types is None else types.flatten(0, 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            hidden = model.encode(ids, mask, None if types is None else types.to(device))
            if head.sentence_level:
                layers = torch.stack(head.pool_layers(hidden, mask), dim=1)
            else:
                layers = torch.stack(hidden, dim=1)
        layers = layers.to(torch.bfloat16).cpu()
        if grouped:
            layers = layers.unflatten(0, (-1, choices))
        for row, i in enumerate(indices):
            value = layers[row]
            if not head.sentence_level:
                value = value[:, : len(features[i]["input_ids"])]
            cached[i]["cached"] = value.clone()
    model.train(was_training)
    return cached


def _argmax(logits: list[np.ndarray]) -> list[int]:
    return [int(row.argmax(-1)) for row in logits]


def word_tags(logits: np.ndarray, word_ids: Sequence[int | None], num_words: int, names: Sequence[str]) -> list[str]:
    """One tag per word from its first piece; words cut off by truncation are tagged "O"."""
    tags = ["O"] * num_words
    seen: set[int] = set()
    for position, word in enumerate(word_ids):
        if word is not None and word not in seen and position < len(logits):
            seen.add(word)
            tags[word] = names[int(logits[position].argmax())]
    return tags


def decode(task: Any, split: str, logits: list[np.ndarray]) -> list[Any]:
    """Per *example* predictions in the user's units."""
    kind = task.config.kind
    examples, features = task.examples[split], task.features[split]
    names = list(task.labels.names) if task.labels is not None else []
    if kind == "classification":
        if task.config.head.get("multi_label"):
            return [[names[j] for j in np.flatnonzero(row > 0)] for row in logits]
        return [names[i] for i in _argmax(logits)]
    if kind == "regression":
        return [float(row.reshape(-1)[0]) for row in logits]
    if kind == "multiple_choice":
        return _argmax(logits)
    if kind == "tagging":
        by_example: dict[int, list[str]] = {}
        for feature, row in zip(features, logits, strict=True):
            index = feature.get("example_index", len(by_example))
            by_example[index] = word_tags(row, feature["word_ids"], len(examples[index].text), names)
        return [by_example.get(i, ["O"] * len(e.text)) for i, e in enumerate(examples)]
    windows: dict[int, list[dict]] = {}
    for feature, row in zip(features, logits, strict=True):
        offsets = feature["offsets"]
        windows.setdefault(feature["example_index"], []).append({
            "start_logits": row[:, 0], "end_logits": row[:, 1], "offsets": offsets,
            "context_mask": [o is not None for o in offsets]})
    return [answer_across_windows(windows.get(i, []), _context(e)) for i, e in enumerate(examples)]


def _context(example: Any) -> str:
    return example.text if isinstance(example.text, str) else " ".join(example.text)


def metrics_for(task: Any, split: str, predictions: list[Any]) -> dict[str, float]:
    kind = task.config.kind
    examples = task.examples[split]
    if kind == "classification":
        gold = [e.label for e in examples]
        if task.config.head.get("multi_label"):
            return {"accuracy": accuracy([sorted(g) == sorted(p) for g, p in zip(gold, predictions, strict=True)],
                                         [True] * len(gold))}
        names = list(task.labels.names)
        ids = {n: i for i, n in enumerate(names)}
        g = [ids.get(x, -1) for x in gold]
        p = [ids[x] for x in predictions]
        return {"accuracy": accuracy(g, p), "macro_f1": macro_f1(g, p, len(names))}
    if kind == "regression":
        gold = [float(e.label) for e in examples]
        errors = np.asarray(gold) - np.asarray(predictions)
        return {"pearson": pearson(gold, predictions), "spearman": spearman(gold, predictions),
                "mse": float((errors ** 2).mean())}
    if kind == "multiple_choice":
        return {"accuracy": accuracy([int(e.label) for e in examples], predictions)}
    if kind == "tagging":
        scores = entity_scores([list(e.label) for e in examples], predictions, task.config.scheme)
        words = sum(len(e.label) for e in examples)
        right = sum(g == p for e, pred in zip(examples, predictions, strict=True)
                    for g, p in zip(e.label, pred, strict=True))
        return {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
                "tag_accuracy": right / max(words, 1)}
    em = f1 = 0.0
    for example, answer in zip(examples, predictions, strict=True):
        golds = [a["text"] for a in (example.answers or [])] or [""]
        e, f = squad_em_f1(answer, golds)
        em, f1 = em + e, f1 + f
    n = max(len(examples), 1)
    return {"exact_match": em / n, "f1": f1 / n}


def evaluate_task(model: TaskModel, task: Any, split: str, collate: Callable, batch_size: int = 64,
                  bf16: bool = False, features: Sequence[dict] | None = None) -> dict[str, float]:
    """Metrics on one split; `features` may be the split's features with frozen-encoder `cached` tensors."""
    logits = task_logits(model, task.name, features or task.features[split], collate, batch_size, bf16)
    return metrics_for(task, split, decode(task, split, logits))


def task_predictions(model: TaskModel, task: Any, split: str, collate: Callable, batch_size: int = 64,
                     bf16: bool = False, progress: bool = True) -> list[Any]:
    logits = task_logits(model, task.name, task.features[split], collate, batch_size, bf16, progress)
    return decode(task, split, logits)
