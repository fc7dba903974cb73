"""Checkpoint folders: atomic commit, manifest, rotation, damage detection, and random-state round trips."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bertology.training.checkpoints import MANIFEST, CheckpointManager, rng_state, set_rng_state


def _save(manager: CheckpointManager, step: int, payload: bytes | None = None):
    tmp = manager.begin(step)
    assert tmp.is_dir() and tmp.name.startswith(".tmp-step-")
    (tmp / "model.bin").write_bytes(payload if payload is not None else f"weights of step {step}".encode() * 50)
    (tmp / "state.json").write_text(json.dumps({"step": step}), encoding="utf-8")
    return manager.commit(tmp, step)


def _steps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_commit_writes_step_folder_with_manifest(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path / "ckpt", keep_last=3)
    payload = bytes(range(256)) * 7
    checkpoint = _save(manager, 12, payload)
    assert checkpoint.step == 12
    assert checkpoint.path == tmp_path / "ckpt" / "step-00000012"
    assert _steps(tmp_path / "ckpt") == ["step-00000012"]  # no .tmp-step-* left behind
    manifest = json.loads((checkpoint.path / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["step"] == 12
    assert set(manifest["files"]) == {"model.bin", "state.json"}
    for name, meta in manifest["files"].items():
        data = (checkpoint.path / name).read_bytes()
        assert meta["bytes"] == len(data)
        assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["files"]["model.bin"]["bytes"] == 256 * 7
    assert manager.verify(checkpoint) is None
    assert checkpoint.read_json("state.json") == {"step": 12}


def test_keep_last_rotation(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (10, 20, 30, 40, 50):
        _save(manager, step)
    assert [c.step for c in manager.list()] == [40, 50]
    assert _steps(tmp_path) == ["step-00000040", "step-00000050"]


def test_rotation_never_removes_a_protected_step(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2)
    _save(manager, 1)
    _save(manager, 2)
    manager.protected.add(2)  # e.g. the best so far
    for step in (3, 4, 5, 6):
        _save(manager, step)
    steps = [c.step for c in manager.list()]
    assert 2 in steps
    assert steps[-2:] == [5, 6]  # still the newest two
    assert 1 not in steps and 3 not in steps and 4 not in steps
    assert manager.verify(next(c for c in manager.list() if c.step == 2)) is None


def test_latest_valid_is_the_newest_intact(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=5)
    assert manager.latest_valid() is None
    for step in (1, 2, 3):
        _save(manager, step)
    latest = manager.latest_valid()
    assert latest is not None and latest.step == 3


def _damage_truncate(path: Path) -> None:
    data = (path / "model.bin").read_bytes()
    (path / "model.bin").write_bytes(data[: len(data) // 2])


def _damage_flip(path: Path) -> None:
    data = bytearray((path / "model.bin").read_bytes())
    data[len(data) // 3] ^= 0x01
    (path / "model.bin").write_bytes(bytes(data))


def _damage_manifest(path: Path) -> None:
    (path / MANIFEST).unlink()


def _damage_missing_file(path: Path) -> None:
    (path / "model.bin").unlink()


@pytest.mark.parametrize(("damage", "words"), [
    (_damage_truncate, ["model.bin", "bytes"]),
    (_damage_flip, ["model.bin", "checksum"]),
    (_damage_manifest, [MANIFEST]),
    (_damage_missing_file, ["model.bin", "missing"]),
])
def test_damaged_newest_falls_back_with_a_warning(tmp_path: Path, caplog, damage, words) -> None:
    manager = CheckpointManager(tmp_path, keep_last=5)
    _save(manager, 100)
    newest = _save(manager, 200)
    size_before = (newest.path / "model.bin").stat().st_size if (newest.path / "model.bin").exists() else None
    damage(newest.path)
    if damage is _damage_flip:
        assert (newest.path / "model.bin").stat().st_size == size_before  # same size, other content
    with caplog.at_level(logging.WARNING, logger="bertology"):
        found = manager.latest_valid()
    assert found is not None and found.step == 100
    warnings = [r for r in caplog.records if r.name == "bertology" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "step-00000200" in message
    for word in words:
        assert word in message, message
    assert manager.verify(newest) is not None


def test_all_damaged_gives_none(tmp_path: Path, caplog) -> None:
    manager = CheckpointManager(tmp_path, keep_last=5)
    for step in (1, 2):
        _damage_flip(_save(manager, step).path)
    with caplog.at_level(logging.WARNING, logger="bertology"):
        assert manager.latest_valid() is None
    assert len([r for r in caplog.records if r.name == "bertology"]) == 2


def test_clean_partial_removes_temporary_folders(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=3)
    _save(manager, 5)
    tmp = manager.begin(6)  # a write killed before commit
    (tmp / "model.bin").write_bytes(b"half")
    (tmp_path / ".tmp-step-00000007").mkdir()
    assert [c.step for c in manager.list()] == [5]  # temporary folders are never listed
    manager.clean_partial()
    assert _steps(tmp_path) == ["step-00000005"]
    CheckpointManager(tmp_path / "absent").clean_partial()  # no folder: nothing to do


def test_begin_starts_from_an_empty_folder(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    tmp = manager.begin(3)
    (tmp / "stale.bin").write_bytes(b"left by a killed write")
    tmp = manager.begin(3)
    assert list(tmp.iterdir()) == []


def test_committing_the_same_step_twice_replaces_it(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=3)
    _save(manager, 7, b"first" * 10)
    tmp = manager.begin(7)
    (tmp / "model.bin").write_bytes(b"second" * 10)
    checkpoint = manager.commit(tmp, 7)
    assert _steps(tmp_path) == ["step-00000007"]
    assert (checkpoint.path / "model.bin").read_bytes() == b"second" * 10
    assert not (checkpoint.path / "state.json").exists()  # nothing of the first save survives
    assert manager.verify(checkpoint) is None
    assert manager.latest_valid().step == 7


# ------------------------------------------------------------------------------------ random states
@pytest.fixture(autouse=True)
def _keep_global_rng():
    """These tests reseed the global generators; leave them as they were for other tests."""
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    yield
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


def _draw() -> tuple[float, float, float, float, list[float]]:
    return (random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.randn()),
            torch.rand(5).tolist())


def _prime_caches() -> None:
    # leave a cached Gaussian in python's and numpy's state, the parts most easily lost
    random.seed(123)
    random.gauss(0, 1)
    np.random.seed(456)
    np.random.randn()
    torch.manual_seed(789)
    torch.rand(3)


def test_rng_state_round_trip_in_memory() -> None:
    _prime_caches()
    json_part, tensors = rng_state()
    expected = _draw()
    _draw()  # move everything on
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    set_rng_state(json_part, tensors)
    assert _draw() == expected


def test_rng_state_round_trip_through_json_and_safetensors(tmp_path: Path) -> None:
    _prime_caches()
    json_part, tensors = rng_state()
    expected = _draw()
    (tmp_path / "rng.json").write_text(json.dumps(json_part), encoding="utf-8")
    save_file(tensors, str(tmp_path / "rng.safetensors"))
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    _draw()
    set_rng_state(json.loads((tmp_path / "rng.json").read_text(encoding="utf-8")),
                  load_file(str(tmp_path / "rng.safetensors")))
    assert _draw() == expected


def test_rng_state_is_json_and_tensors() -> None:
    json_part, tensors = rng_state()
    assert json.loads(json.dumps(json_part)) == json_part
    assert set(json_part) == {"python", "numpy"}
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    assert torch.equal(tensors["torch"], torch.get_rng_state())


def test_a_kill_while_replacing_a_step_never_leaves_a_gap(tmp_path):
    """Saving step N twice swaps folders; if killed between the two renames, the old one comes back."""
    from bertology.training.checkpoints import CheckpointManager

    manager = CheckpointManager(tmp_path, keep_last=1)
    tmp = manager.begin(4)
    (tmp / "a.txt").write_text("first")
    manager.commit(tmp, 4)
    # simulate the kill: the old folder moved aside, the new one not yet in place
    (tmp_path / "step-00000004").rename(tmp_path / ".old-step-00000004")
    assert manager.latest_valid() is None
    manager.clean_partial()
    restored = manager.latest_valid()
    assert restored is not None and (restored.path / "a.txt").read_text() == "first"
