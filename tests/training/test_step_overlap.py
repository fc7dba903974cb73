"""Collation ahead of the step (a background thread), torch.compile as an option, and the step's numbers
read back from the device only at log time: none of it changes what is trained."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from bertology.training import TrainConfig, Trainer
from bertology.training.data import Prefetcher

sys.path.insert(0, str(Path(__file__).parent))
from toy_run import ToyRegression, make_data, noisy_collate  # noqa: E402


def _run(folder: Path, dropout: float = 0.1, **overrides) -> tuple[dict[int, float], Trainer]:
    settings = dict(learning_rate=3e-3, max_steps=12, batch_size=16, log_every=1, warmup_steps=2, progress=False,
                    plot=False, seed=3)
    config = TrainConfig(**{**settings, **overrides})
    torch.manual_seed(0)
    trainer = Trainer(ToyRegression(dropout=dropout), make_data(), config, folder, collate=noisy_collate)
    trainer.train()
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}, trainer


def test_prefetching_trains_the_same_steps(tmp_path):
    plain, trainer = _run(tmp_path / "plain", prefetch=0)
    ahead, _ = _run(tmp_path / "ahead", prefetch=3)
    assert trainer.prefetch == 0 and len(plain) == 12
    assert ahead == plain  # the same batches, masks and losses, bit for bit


def test_prefetch_default_follows_the_device(tmp_path):
    _, trainer = _run(tmp_path, max_steps=1)
    assert trainer.prefetch == 0  # the CPU: the step uses every core


def test_logged_numbers_are_read_once_per_log_line(tmp_path):
    losses, trainer = _run(tmp_path, log_every=4)
    assert sorted(losses) == [4, 8, 12]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(r["tokens_per_s"], float) and r["tokens_per_s"] > 0 for r in rows)
    assert isinstance(trainer._trainer_state()["tokens_seen"], int)


def test_prefetcher_keeps_order_raises_errors_and_stops_early():
    assert list(Prefetcher(iter(range(50)), depth=4)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("bad batch 2")

    items = Prefetcher(failing(), depth=2)
    assert next(items) == 1
    with pytest.raises(ValueError, match="bad batch 2"):
        next(items)

    produced = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield i

    with Prefetcher(endless(), depth=2) as items:
        assert next(items) == 0
    time.sleep(0.3)
    assert len(produced) < 10, "the thread kept collating after the reader stopped"
    assert not any(t.name == "bertology-prefetch" and t.is_alive() for t in threading.enumerate())


def test_compiled_training_matches_eager(tmp_path):
    # without dropout: compiled dropout draws its own random numbers
    eager, _ = _run(tmp_path / "eager", dropout=0.0, max_steps=4)
    compiled, trainer = _run(tmp_path / "compiled", dropout=0.0, max_steps=4, compile=True)
    assert trainer.module is not trainer.raw
    assert compiled.keys() == eager.keys()
    for step in eager:
        assert compiled[step] == pytest.approx(eager[step], rel=1e-4, abs=1e-6)
    assert not any(k.startswith("_orig_mod") for k in trainer.raw.state_dict())
