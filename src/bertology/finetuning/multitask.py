"""Multi-task batches: single-task batches in a sampled order, and a collator that names the task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConfigError
from .taskdata import TaskData


class MultiTaskBatches:
    """Pre-built single-task batches in a sampled order: every batch holds one task, so each head sees
    its own inputs; `sampling` sets how often each task comes up (Stickland & Murray 2019)."""

    def __init__(self, tasks: list[TaskData], collators: dict[str, Any], batch_size: int, sampling: str,
                 temperature: float, seed: int, features: dict[str, list[dict]] | None = None,
                 split: str = "train", drop_last: bool = True) -> None:
        rng = np.random.default_rng(seed)
        per_task: dict[str, list[dict]] = {}
        for task in tasks:
            items = (features or {}).get(task.name, task.features[split])
            order = rng.permutation(len(items))
            last = len(order) - batch_size + 1 if drop_last else len(order)
            batches = [collators[task.name]([items[i] for i in order[s:s + batch_size]])
                       for s in range(0, max(last, 0), batch_size)]
            for b in batches:
                b["task"] = task.name
            per_task[task.name] = batches
        empty = [name for name, batches in per_task.items() if not batches]
        if empty:
            raise ConfigError(f"task(s) {empty} have fewer {split} examples than one batch ({batch_size})")
        sizes = np.array([len(b) for b in per_task.values()], dtype=np.float64)
        total = int(sizes.sum())
        if sampling == "proportional":
            names = [name for name, batches in per_task.items() for _ in batches]
        else:
            weights = np.ones_like(sizes) if sampling == "uniform" else sizes ** (1.0 / temperature)
            names = list(rng.choice(list(per_task), size=total, p=weights / weights.sum()))
        cursor = dict.fromkeys(per_task, 0)
        self.batches = []
        for name in names:
            pool = per_task[name]
            self.batches.append(pool[cursor[name] % len(pool)])
            cursor[name] += 1
        self.counts = {name: names.count(name) for name in per_task}

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict:
        return self.batches[index]


class TaskCollate:
    """A task's collator that also names the task in the batch, so the model picks the right head."""

    def __init__(self, collate: Callable, task: str) -> None:
        self.collate, self.task = collate, task

    def __call__(self, features: list[dict]) -> dict:
        return {**self.collate(features), "task": self.task}


