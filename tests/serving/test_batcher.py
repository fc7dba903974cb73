"""MicroBatcher alone: shared forwards, order of results, the bounded queue, draining on close."""

from __future__ import annotations

import threading

import pytest

from bertology.serving.batcher import Closed, MicroBatcher, QueueFull


def test_items_arriving_together_share_forwards_and_keep_their_own_results():
    calls: list[list[str]] = []

    def run(key, payloads):
        calls.append(list(payloads))
        return [p.upper() for p in payloads]

    batcher = MicroBatcher(run, max_batch=8, max_wait_ms=50, queue_size=64)
    futures = [batcher.submit("k", [f"t{i}", f"u{i}"], [i, 1]) for i in range(6)]
    results = [[f.result(5) for f in fs] for fs in futures]
    batcher.close()
    assert results == [[f"T{i}", f"U{i}"] for i in range(6)]
    assert len(calls) < 6 and all(len(c) <= 8 for c in calls)
    assert sum(len(c) for c in calls) == 12


def test_batches_are_sorted_by_length_and_grouped_by_key():
    calls: list[tuple[str, list[str]]] = []
    gate = threading.Event()

    def run(key, payloads):
        gate.wait(5)
        calls.append((key, list(payloads)))
        return payloads

    batcher = MicroBatcher(run, max_batch=4, max_wait_ms=100, queue_size=64)
    blocker = batcher.submit("z", ["x"], [1])  # another key: never joins the batches below
    a = batcher.submit("a", ["aaaa", "a", "aaa"], [4, 1, 3])
    b = batcher.submit("b", ["bb"], [2])
    gate.set()
    assert [f.result(5) for f in a] == ["aaaa", "a", "aaa"] and b[0].result(5) == "bb" and blocker[0].result(5) == "x"
    batcher.close()
    assert ("a", ["a", "aaa", "aaaa"]) in calls and ("b", ["bb"]) in calls


def test_one_item_per_forward_when_max_batch_is_one():
    sizes: list[int] = []
    batcher = MicroBatcher(lambda k, p: p, max_batch=1, max_wait_ms=0, queue_size=64,
                           on_batch=lambda k, n, s: sizes.append(n))
    futures = batcher.submit("k", list("abcde"), [1] * 5)
    assert [f.result(5) for f in futures] == list("abcde")
    batcher.close()
    assert sizes == [1] * 5


def test_full_queue_refuses_whole_request_and_close_drains():
    gate = threading.Event()
    batcher = MicroBatcher(lambda k, p: (gate.wait(5), p)[1], max_batch=1, max_wait_ms=0, queue_size=2)
    first = batcher.submit("k", ["running"], [1])
    while batcher.depth:  # wait until the worker took it into its forward
        pass
    queued = batcher.submit("k", ["q1", "q2"], [1, 1])
    with pytest.raises(QueueFull, match="2 of 2 texts"):
        batcher.submit("k", ["over"], [1])
    gate.set()
    batcher.close(10)
    assert first[0].result(0) == "running" and [f.result(0) for f in queued] == ["q1", "q2"]
    with pytest.raises(Closed):
        batcher.submit("k", ["late"], [1])


def test_a_failing_forward_fails_its_requests_only():
    def run(key, payloads):
        if "bad" in payloads:
            raise ValueError("boom")
        return payloads

    batcher = MicroBatcher(run, max_batch=1, max_wait_ms=0, queue_size=8)
    bad, good = batcher.submit("k", ["bad"], [1]), batcher.submit("k", ["good"], [1])
    with pytest.raises(ValueError, match="boom"):
        bad[0].result(5)
    assert good[0].result(5) == "good"
    batcher.close()
