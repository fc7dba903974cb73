"""Dynamic micro-batching: texts that arrive within `max_wait_ms` share one forward pass.

Each request adds its items (one per text) under a group key (endpoint and adapter: only items of one key
can share a forward). One worker thread takes batches: the oldest waiting item always goes next (so no item
waits behind a stream of others), joined by up to `max_batch - 1` items of its key closest to it in token
length (so a batch pads little). The forward runs in that thread, so the event loop keeps accepting while
it runs. The queue is bounded in texts: a request that would overflow it is refused at once (`QueueFull`),
which the app answers with 503 and Retry-After. `close()` stops accepting and drains what is queued.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MicroBatcher", "QueueFull"]


class QueueFull(Exception):
    """The bounded queue cannot take a request's texts now; the client should retry shortly."""

    def __init__(self, waiting: int, capacity: int, asked: int) -> None:
        super().__init__(f"the queue holds {waiting} of {capacity} texts and cannot take {asked} more; retry shortly")
        self.waiting, self.capacity, self.asked = waiting, capacity, asked


class Closed(Exception):
    """The batcher is shutting down and takes no new work."""


@dataclass
class _Item:
    key: Hashable
    payload: Any
    length: int
    order: int
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


#: run(key, payloads) -> one result per payload, in order; called in the worker thread only
Runner = Callable[[Hashable, list[Any]], Sequence[Any]]


class MicroBatcher:
    """Collects items into batches for `run` (see the module docstring); thread-safe `submit`."""

    def __init__(self, run: Runner, max_batch: int = 32, max_wait_ms: float = 5.0, queue_size: int = 256,
                 on_batch: Callable[[Hashable, int, float], None] | None = None) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch and queue_size must be >= 1 and max_wait_ms >= 0, got {max_batch}, "
                             f"{queue_size}, {max_wait_ms}")
        self.run, self.max_batch, self.queue_size = run, max_batch, queue_size
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.forwards = 0
        self._pending: list[_Item] = []
        self._arrived: dict[int, float] = {}
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="bertology-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Texts waiting for a forward (not those in the running one)."""
        return len(self._pending)

    def submit(self, key: Hashable, payloads: Sequence[Any], lengths: Sequence[int]) -> list[concurrent.futures.Future]:
        """Queue a request's items at once or not at all; a future per payload, in order."""
        with self._cond:
            if self._closing:
                raise Closed("the server is shutting down")
            if len(self._pending) + len(payloads) > self.queue_size:
                raise QueueFull(len(self._pending), self.queue_size, len(payloads))
            now = time.monotonic()
            items = [_Item(key, p, int(n), next(self._counter)) for p, n in zip(payloads, lengths, strict=True)]
            for item in items:
                self._arrived[item.order] = now
            self._pending.extend(items)
            self._cond.notify_all()
        return [item.future for item in items]

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting; the worker finishes every queued item, then exits."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker
    def _ready_count(self, key: Hashable) -> int:
        return sum(1 for item in self._pending if item.key == key)

    def _take(self) -> list[_Item] | None:
        with self._cond:
            while not self._pending:
                if self._closing:
                    return None
                self._cond.wait()
            first = self._pending[0]
            deadline = self._arrived[first.order] + self.max_wait
            while not self._closing and self._ready_count(first.key) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            same = [item for item in self._pending[1:] if item.key == first.key]
            same.sort(key=lambda item: (abs(item.length - first.length), item.order))
            batch = [first, *same[: self.max_batch - 1]]
            taken = {item.order for item in batch}
            self._pending = [item for item in self._pending if item.order not in taken]
            for order in taken:
                self._arrived.pop(order, None)
        batch.sort(key=lambda item: (item.length, item.order))
        return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            start = time.perf_counter()
            try:
                results = list(self.run(batch[0].key, [item.payload for item in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"the forward returned {len(results)} results for {len(batch)} inputs")
            except BaseException as exc:  # noqa: BLE001 - every waiting request must hear of the failure
                for item in batch:
                    item.future.set_exception(exc)
            else:
                for item, result in zip(batch, results, strict=True):
                    item.future.set_result(result)
            self.forwards += 1
            if self.on_batch is not None:
                self.on_batch(batch[0].key, len(batch), time.perf_counter() - start)
