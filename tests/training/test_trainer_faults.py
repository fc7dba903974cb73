"""File-system faults during training: one clear error, nothing partial left, earlier checkpoints intact, exact
resume after; damaged checkpoints set aside; metrics rewound whatever the resume found."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from bertology.errors import FileSystemError
from bertology.training import TrainConfig, Trainer
from bertology.training import checkpoints as ckpt
from bertology.training.checkpoints import MANIFEST, CheckpointManager

sys.path.insert(0, str(Path(__file__).parent))
from toy_run import ToyRegression, make_data, noisy_collate  # noqa: E402

Usage = namedtuple("Usage", "total used free")


def _config(**overrides) -> TrainConfig:
    base = dict(learning_rate=3e-3, max_steps=20, batch_size=16, save_every=5, log_every=1, warmup_steps=5,
                schedule="cosine", keep_last=3, progress=False, plot=False, seed=7)
    base.update(overrides)
    return TrainConfig(**base)


def _train(run_dir, resume=False, **overrides):
    torch.manual_seed(0)
    trainer = Trainer(ToyRegression(), make_data(), _config(**overrides), run_dir, collate=noisy_collate)
    return trainer.train(resume=resume)


def _losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["split"] == "train"]
    assert len(steps) == len(set(steps)), "a step was logged twice"
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


def _folders(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, float]:
    run = tmp_path_factory.mktemp("reference")
    _train(run)
    return _losses(run)


def _fail_torch_save_at(monkeypatch, step: int, exc: BaseException) -> None:
    original = torch.save

    def save(obj, path, *args, **kwargs):
        if f"step-{step:08d}" in str(path):
            Path(path).write_bytes(b"half an optimizer")  # a short write, as a full disk leaves one
            raise exc
        return original(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def _assert_intact(run_dir: Path, steps: list[int]) -> None:
    manager = CheckpointManager(run_dir / "checkpoints")
    assert [c.step for c in manager.list()] == steps
    for checkpoint in manager.list():
        assert manager.verify(checkpoint) is None


def test_disk_full_at_a_checkpoint_is_clear_and_resume_is_exact(tmp_path, monkeypatch, reference):
    run = tmp_path / "run"
    _fail_torch_save_at(monkeypatch, 15, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(FileSystemError) as caught:
        _train(run)
    message = str(caught.value)
    assert "step-00000015" in message and "optimizer.pt" in message and "no space" in message
    assert "\n" not in message
    assert _folders(run) == ["step-00000005", "step-00000010"]  # no .tmp-step-* left behind
    _assert_intact(run, [5, 10])

    monkeypatch.undo()  # space freed
    result = _train(run, resume=True)
    assert result.step == 20
    assert _losses(run) == reference  # bit for bit, as if nothing happened


def test_torch_save_short_write_runtime_error_is_put_down_to_the_full_disk(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _fail_torch_save_at(monkeypatch, 10, RuntimeError(
        "[enforce fail at inline_container.cc:672] . unexpected pos 741312 vs 741204"))
    real = shutil.disk_usage
    full = {"now": False}

    def usage(path):
        return Usage(1 << 30, 1 << 30, 0) if full["now"] else real(path)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    original = ckpt._write_file

    def write_file(path, write):  # the disk fills up during the optimizer write of step 10
        if path.name == "optimizer.pt" and "step-00000010" in str(path):
            full["now"] = True
        return original(path, write)

    monkeypatch.setattr(ckpt, "_write_file", write_file)
    with pytest.raises(FileSystemError, match="no space left on the device") as caught:
        _train(run)
    assert "optimizer.pt" in str(caught.value) and "enforce fail" not in str(caught.value)
    assert _folders(run) == ["step-00000005"]


def test_free_space_is_checked_before_a_checkpoint_write(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: Usage(1 << 30, 1 << 30, 4096) if "checkpoints" in str(path) else real(path))
    written = []
    original = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, path, *a, **k: (written.append(path), original(obj, path, *a, **k)))
    with pytest.raises(FileSystemError) as caught:
        _train(run)
    message = str(caught.value)
    assert str(run / "checkpoints") in message and "no space" in message and "needed" in message
    assert written == []  # refused before writing anything
    assert _folders(run) == []


@pytest.mark.parametrize(("code", "words"), [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_read_only_or_forbidden_checkpoint_folder_is_clear(tmp_path, monkeypatch, code, words):
    run = tmp_path / "run"
    _fail_torch_save_at(monkeypatch, 10, OSError(code, os.strerror(code)))
    with pytest.raises(FileSystemError) as caught:
        _train(run)
    assert words in str(caught.value) and "step-00000010" in str(caught.value)
    assert _folders(run) == ["step-00000005"]


def test_a_run_folder_under_a_regular_file_fails_before_training(tmp_path):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    torch.manual_seed(0)
    model = ToyRegression()
    trainer = Trainer(model, make_data(), _config(), tmp_path / "file" / "run", collate=noisy_collate)
    with pytest.raises(FileSystemError) as caught:
        trainer.train()
    assert str(tmp_path / "file") in str(caught.value) and "run folder" in str(caught.value)
    assert model.calls == 0


def test_all_checkpoints_damaged_restarts_with_a_rewound_log(tmp_path, caplog, reference):
    run = tmp_path / "run"
    _train(run, max_steps=15)
    for checkpoint in CheckpointManager(run / "checkpoints").list():
        (checkpoint.path / "model.safetensors").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="bertology"):
        _train(run, resume=True)
    assert _losses(run) == reference  # steps 1-20 once each, as in an uninterrupted run
    assert "starting from scratch" in caplog.text
    damaged = sorted(p.name for p in (run / "checkpoints" / "damaged").iterdir())
    assert damaged == ["step-00000005", "step-00000010", "step-00000015"]


def test_manifest_without_bytes_falls_back(tmp_path, caplog, reference):
    run = tmp_path / "run"
    _train(run)
    newest = run / "checkpoints" / "step-00000020"
    manifest = json.loads((newest / MANIFEST).read_text())
    for meta in manifest["files"].values():
        del meta["bytes"]
    (newest / MANIFEST).write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="bertology"):
        result = _train(run, resume=True)
    assert result.step == 20
    assert "malformed" in caplog.text and "step-00000020" in caplog.text
    assert _losses(run) == reference  # resumed from step 15, steps 16-20 logged once


def test_a_damaged_checkpoint_is_moved_aside_and_named(tmp_path, caplog, reference):
    run = tmp_path / "run"
    _train(run, keep_last=2)
    assert _folders(run) == ["step-00000015", "step-00000020"]
    (run / "checkpoints" / "step-00000020" / "trainer_state.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="bertology"):
        result = _train(run, resume=True, keep_last=2)
    assert result.step == 20
    moved = run / "checkpoints" / "damaged" / "step-00000020"
    assert moved.is_dir() and str(moved) in caplog.text
    assert _folders(run) == ["damaged", "step-00000015", "step-00000020"]
    assert _losses(run) == reference


def _commit(manager: CheckpointManager, step: int) -> None:
    tmp = manager.begin(step)
    (tmp / "model.bin").write_bytes(f"weights {step}".encode())
    manager.commit(tmp, step)


def test_a_damaged_checkpoint_set_aside_does_not_count_toward_keep_last(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (10, 20):
        _commit(manager, step)
    (tmp_path / "step-00000020" / "model.bin").write_bytes(b"cut")
    assert manager.latest_valid(set_aside=True).step == 10
    _commit(manager, 12)  # the resumed run saves again: the good step 10 must survive rotation
    assert [c.step for c in manager.list()] == [10, 12]
    assert (tmp_path / "damaged" / "step-00000020").is_dir()
    (tmp_path / "step-00000012" / "model.bin").write_bytes(b"cut")
    assert manager.latest_valid(set_aside=True).step == 10
    _commit(manager, 20)
    (tmp_path / "step-00000020" / "model.bin").write_bytes(b"cut")
    manager.latest_valid(set_aside=True)  # a second damaged step-20 does not overwrite the first
    assert sorted(p.name for p in (tmp_path / "damaged").iterdir()) == [
        "step-00000012", "step-00000020", "step-00000020.1"]
