"""A data loader that can start anywhere: batch b of epoch e is a pure function of (seed, e, b).

Resuming therefore seeks straight to the saved position instead of replaying batches, and any randomness
in collation (masking) gets a generator seeded from (seed, epoch, batch), and the epoch itself if it asks, so it does not
depend on how many worker processes there are or on what ran before.
"""

from __future__ import annotations

import inspect
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """A 63-bit seed for one batch, well mixed so neighbouring batches are unrelated."""
    return int(np.random.SeedSequence([seed, epoch, batch]).generate_state(1, dtype=np.uint64)[0] >> 1)


class BatchPlan:
    """Which examples each process reads for micro-batch `b` of epoch `e`.

    One global order per epoch is cut into global batches of `batch_size * world_size`; process `rank`
    takes its own slice of each, so N processes see exactly the examples one process would see with an
    N times larger batch.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if num_examples <= 0:
            raise ValueError("the dataset is empty: there is nothing to train on")
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        global_batch = batch_size * world_size
        if drop_last:
            self.batches_per_epoch = num_examples // global_batch
            if self.batches_per_epoch == 0:
                raise ValueError(f"the dataset has {num_examples} examples, fewer than one global batch "
                                 f"({batch_size} x {world_size} processes); lower batch_size or set drop_last false")
        else:
            self.batches_per_epoch = math.ceil(num_examples / global_batch)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

    def indices(self, order: np.ndarray, batch: int) -> list[int]:
        global_batch = self.batch_size * self.world_size
        start = batch * global_batch + self.rank * self.batch_size
        idx = [int(order[i % self.num_examples]) for i in range(start, start + self.batch_size)
               if i < self.num_examples or self.world_size > 1]  # several processes wrap round to stay equal
        return idx


class _Batches(Dataset):
    """Batch b of one epoch as a dataset item, so DataLoader workers can build batches in parallel."""

    def __init__(self, dataset: Sequence[Any], collate: Callable, plan: BatchPlan, epoch: int) -> None:
        self.dataset = dataset
        self.collate = collate
        self.plan = plan
        self.epoch = epoch
        self.order = plan.order(epoch)
        try:
            params = inspect.signature(collate).parameters
        except (TypeError, ValueError):
            params = {}
        self.wants_generator = "generator" in params
        self.wants_epoch = "epoch" in params

    def __len__(self) -> int:
        return self.plan.batches_per_epoch

    def __getitem__(self, batch: int) -> Any:
        examples = [self.dataset[i] for i in self.plan.indices(self.order, batch)]
        kwargs: dict[str, Any] = {}
        if self.wants_generator:
            kwargs["generator"] = torch.Generator().manual_seed(batch_seed(self.plan.seed, self.epoch, batch))
        if self.wants_epoch:  # e.g. static masking picks mask copy `epoch % K`
            kwargs["epoch"] = self.epoch
        return self.collate(examples, **kwargs)


class ResumableLoader:
    def __init__(self, dataset: Sequence[Any], batch_size: int, seed: int = 0, collate: Callable | None = None,
                 shuffle: bool = True, drop_last: bool = True, num_workers: int = 0, rank: int = 0,
                 world_size: int = 1, pin_memory: bool = False) -> None:
        """`pin_memory`: batches come in page-locked memory, so the copy to a GPU can be non-blocking."""
        self.dataset = dataset
        self.pin_memory = pin_memory
        self.collate = collate or default_collate
        self.plan = BatchPlan(len(dataset), batch_size, seed, shuffle, drop_last, rank, world_size)
        self.num_workers = num_workers

    def __len__(self) -> int:
        return self.plan.batches_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """The micro-batches of `epoch` from batch `start` on."""
        batches = _Batches(self.dataset, self.collate, self.plan, epoch)
        if start >= len(batches):
            return iter(())
        # Its own generator: a DataLoader otherwise draws its worker seed from the global random state,
        # which would make dropout after a resume differ from an uninterrupted run.
        loader = DataLoader(batches, batch_size=None, sampler=range(start, len(batches)),
                            num_workers=self.num_workers, persistent_workers=False, pin_memory=self.pin_memory,
                            generator=torch.Generator().manual_seed(self.plan.seed))
        return iter(loader)


class Prefetcher:
    """Runs an iterator in a background thread, `depth` items ahead, so collation and masking overlap the
    training step. Items come out in order; an exception in the thread is raised in the reader; `close()`
    (or leaving a `with` block) stops the thread even when the reader stopped early."""

    _DONE = object()

    def __init__(self, items: Iterator[Any], depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(items,), daemon=True, name="bertology-prefetch")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, items: Iterator[Any]) -> None:
        try:
            for item in items:
                if not self._put(("item", item)):
                    return
            self._put(("done", None))
        except BaseException as exc:  # handed to the reader, raised there
            self._put(("error", exc))

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        kind, item = self._queue.get()
        if kind == "item":
            return item
        self.close()
        if kind == "error":
            raise item
        raise StopIteration

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
