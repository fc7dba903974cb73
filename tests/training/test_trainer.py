"""The training loop end to end: exact resume, kills at any moment, damaged checkpoints, bad steps, DDP."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bertology import BertForMaskedLM
from bertology.training import StepOutput, TrainConfig, Trainer, TrainingDiverged
from bertology.training.checkpoints import CheckpointManager

sys.path.insert(0, str(Path(__file__).parent))
from toy_run import ToyRegression, make_data, noisy_collate, plain_collate  # noqa: E402

TOY = Path(__file__).parent / "toy_run.py"


def _config(**overrides) -> TrainConfig:
    base = dict(learning_rate=3e-3, max_steps=30, batch_size=16, save_every=5, log_every=1, warmup_steps=5,
                schedule="cosine", keep_last=3, progress=False, plot=False, seed=7)
    base.update(overrides)
    return TrainConfig(**base)


def _losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    steps = [r["step"] for r in train]
    assert len(steps) == len(set(steps)), "a step was logged twice"
    return {r["step"]: r["loss"] for r in train}


def _train(run_dir, make=ToyRegression, resume=False, **overrides):
    torch.manual_seed(0)  # the same initial weights in every run
    module = make()
    trainer = Trainer(module, make_data(), _config(**overrides), run_dir, collate=noisy_collate)
    return trainer, trainer.train(resume=resume)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, float]:
    """Per-step losses of an uninterrupted 30-step run (dropout and random collation included)."""
    run = tmp_path_factory.mktemp("reference")
    _train(run)
    return _losses(run)


class _SignalAt(ToyRegression):
    """Sends itself a signal during forward call `at`, as a user pressing Ctrl-C would."""

    def __init__(self, at: int, sig=signal.SIGINT) -> None:
        super().__init__()
        self.at, self.sig = at, sig

    def forward(self, x, y):
        if self.calls + 1 == self.at:
            os.kill(os.getpid(), self.sig)
        return super().forward(x, y)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_resume_is_exact(tmp_path, reference, sig):
    trainer, result = _train(tmp_path, make=lambda: _SignalAt(13, sig))
    assert result.stopped == "interrupted" and result.step == 13
    assert CheckpointManager(tmp_path / "checkpoints").latest_valid().step == 13
    _, result = _train(tmp_path, resume=True)
    assert result.step == 30 and result.stopped == "finished"
    assert _losses(tmp_path) == reference  # bit for bit: weights, optimizer, schedule, RNG and data position


def test_damaged_newest_checkpoint_falls_back_with_warning(tmp_path, reference, caplog):
    _train(tmp_path, max_steps=30)
    newest = tmp_path / "checkpoints" / "step-00000030" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="bertology"):
        _, result = _train(tmp_path, resume=True)
    assert "step-00000030 is damaged" in caplog.text and "model.safetensors" in caplog.text
    assert result.step == 30
    assert _losses(tmp_path) == reference  # steps 26..30 were run again from step 25, identically


def _spawn(run_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TOY), str(run_dir), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the subprocess")


def _logged_steps(run_dir: Path) -> int:
    try:
        return max(json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                   if line.endswith("}"))
    except (FileNotFoundError, ValueError):
        return 0


@pytest.fixture(scope="module")
def reference_40(tmp_path_factory) -> dict[int, float]:
    run = tmp_path_factory.mktemp("reference40")
    done = subprocess.run([sys.executable, str(TOY), str(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return _losses(run)


def test_sigkill_during_training_then_resume(tmp_path, reference_40):
    proc = _spawn(tmp_path, "--slow", "0.03")
    _wait_for(lambda: _logged_steps(tmp_path) >= 23)
    proc.kill()
    proc.wait()
    latest = CheckpointManager(tmp_path / "checkpoints").latest_valid()
    assert latest is not None and latest.step >= 20  # nothing lost before the last checkpoint
    done = subprocess.run([sys.executable, str(TOY), str(tmp_path), "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "RESULT step=40 stopped=finished" in done.stdout
    assert _losses(tmp_path) == reference_40


def test_sigkill_during_checkpoint_write_then_resume(tmp_path, reference_40):
    proc = _spawn(tmp_path, "--slow-commit", "2")
    _wait_for(lambda: (tmp_path / "writing-10").exists())  # step 5 is sealed, step 10 is being written
    proc.kill()
    proc.wait()
    assert (tmp_path / "checkpoints" / ".tmp-step-00000010").exists()
    latest = CheckpointManager(tmp_path / "checkpoints").latest_valid()
    assert latest.step == 5
    done = subprocess.run([sys.executable, str(TOY), str(tmp_path), "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))  # the half-written folder was cleaned up
    assert _losses(tmp_path) == reference_40


class _NaNAt(ToyRegression):
    def __init__(self, bad_calls: set[int]) -> None:
        super().__init__()
        self.bad_calls = bad_calls

    def forward(self, x, y):
        out = super().forward(x, y)
        if self.calls in self.bad_calls:
            out.losses["mse"] = out.losses["mse"] * float("nan")
        return out


def test_non_finite_loss_skips_the_step(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="bertology"):
        _, result = _train(tmp_path, make=lambda: _NaNAt({4, 9}), max_steps=12)
    assert result.step == 12 and result.skipped_steps == 2
    assert caplog.text.count("non-finite loss") == 2
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(r["loss"], float) for r in rows)  # no NaN reached the log
    assert rows[-1]["skipped_steps"] == 2


def test_too_many_bad_steps_stop_with_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match="5 consecutive steps") as exc:
        _train(tmp_path, make=lambda: _NaNAt(set(range(8, 100))), max_bad_steps=5, save_every=0)
    assert "step-00000007" in str(exc.value)
    good = CheckpointManager(tmp_path / "checkpoints").latest_valid()
    assert good.step == 7  # seven good steps, then only NaN
    torch.manual_seed(0)
    fresh = ToyRegression()
    trainer = Trainer(fresh, make_data(), _config(save_every=0), tmp_path, collate=noisy_collate)
    trainer._load(good)
    assert all(torch.isfinite(p).all() for p in fresh.parameters())


def test_gradient_accumulation_matches_a_larger_batch(tmp_path):
    def run(folder, batch, accum):
        torch.manual_seed(0)
        module = ToyRegression(dropout=0.0)
        trainer = Trainer(module, make_data(), _config(batch_size=batch, gradient_accumulation=accum, max_steps=8,
                                                       save_every=0), folder, collate=plain_collate)
        trainer.train()
        return _losses(folder), module

    big, m1 = run(tmp_path / "a", 16, 1)
    small, m2 = run(tmp_path / "b", 8, 2)
    assert big.keys() == small.keys()
    for step in big:
        assert small[step] == pytest.approx(big[step], rel=1e-5, abs=1e-6)
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(p1, p2, rtol=1e-5, atol=1e-6)


def test_eval_best_checkpoint_early_stopping_and_artifacts(tmp_path):
    torch.manual_seed(0)
    module = ToyRegression()
    data = make_data()
    config = _config(max_steps=60, eval_every=5, best_metric="eval/loss", best_mode="max",
                     early_stopping_patience=2, keep_last=1, plot=True)
    trainer = Trainer(module, data[:400], config, tmp_path, collate=noisy_collate, eval_data=data[400:])
    result = trainer.train()
    # the loss falls, so "max" never improves after the first evaluation: stop two evaluations later
    assert result.stopped == "early_stopping" and result.best_step == 5 and result.step == 15
    steps = [c.step for c in CheckpointManager(tmp_path / "checkpoints").list()]
    assert 5 in steps and 15 in steps  # the best survives rotation (keep_last=1)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("step" in r and "loss" in r for r in rows)
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [5, 10, 15] and "eval/mean_pred" in evals[0]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "result.json").read_text())["stopped"] == "early_stopping"
    assert (tmp_path / "config.yaml").read_text().startswith("train:")


class _MLMData(torch.utils.data.Dataset):
    def __init__(self, n=64, seq=16, vocab=50):
        # counting sequences: a masked token is predictable from its neighbours, so the loss can fall
        g = torch.Generator().manual_seed(0)
        starts = torch.randint(0, vocab - 5, (n, 1), generator=g)
        self.ids = (starts + torch.arange(seq)) % (vocab - 5) + 5

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i]
        labels = torch.full_like(ids, -100)
        labels[::4] = ids[::4]
        masked = ids.clone()
        masked[::4] = 4
        return {"input_ids": masked, "attention_mask": torch.ones_like(ids), "labels": labels}


@pytest.mark.parametrize("bf16", [False, True])
def test_trains_a_bert_mlm_through_its_loss_output(tmp_path, tiny_config, bf16):
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_config)
    config = _config(learning_rate=5e-3, max_steps=40, batch_size=16, save_every=20, bf16=bf16, warmup_steps=2)
    result = Trainer(model, _MLMData(vocab=tiny_config.vocab_size), config, tmp_path).train()
    losses = _losses(tmp_path)
    assert result.step == 40
    assert sum(list(losses.values())[-5:]) / 5 < 0.93 * sum(list(losses.values())[:5]) / 5  # it learns
    reloaded = BertForMaskedLM.from_pretrained(tmp_path / "model")
    for (name, p), q in zip(model.state_dict().items(), reloaded.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["tokens_per_s"] > 0 and 0 < row["mfu"] <= 1


def test_module_without_losses_is_a_clear_error(tmp_path):
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, y):
            return x.sum() * self.w

    with pytest.raises(TypeError, match="named losses"):
        Trainer(Bad(), make_data(), _config(), tmp_path, collate=plain_collate).train()


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_process(tmp_path, strategy):
    single = subprocess.run([sys.executable, str(TOY), str(tmp_path / "one"), "--no-noise", "--dropout", "0",
                             "--max-steps", "12", "--batch-size", "16"], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29533" if strategy == "ddp" else "29534", str(TOY), str(tmp_path / "two"),
                          "--no-noise", "--dropout", "0", "--max-steps", "12", "--batch-size", "8",
                          *(["--fsdp"] if strategy == "fsdp" else [])], capture_output=True, text=True, env=env,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert one.keys() == two.keys() == set(range(1, 13))
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-5, abs=1e-6)


class _Step(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, x, y):
        return StepOutput({"first": self.a * 0 + 1.0 * self.a, "second": 3 * self.a})


def test_losses_are_combined_with_their_weights(tmp_path):
    trainer = Trainer(_Step(), make_data(), _config(loss_weights={"second": 0.5}), tmp_path, collate=plain_collate)
    total = trainer.total_loss(trainer.raw(None, None))
    assert float(total.detach()) == pytest.approx(2.0 + 0.5 * 6.0)
