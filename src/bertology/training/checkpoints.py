"""Run checkpoints that survive a kill at any moment.

A checkpoint is a folder `step-XXXXXXXX/` built under a temporary name, each file fsynced, a manifest of
sizes and SHA-256 sums written last, then renamed into place. On resume the newest folder whose manifest
checks out is used; a damaged one is reported and skipped. Nothing is unpickled: tensors are safetensors,
the optimizer state goes through `torch.load(weights_only=True)`, the rest is JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils.io import fsync_dir

logger = logging.getLogger("bertology")

MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"step-(\d{8})\Z")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


# ------------------------------------------------------------------------------------ random states
def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Every random source as (JSON-able parts, tensors)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    json_part = {"python": [version, list(internal), gauss],
                 "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    return json_part, tensors


def set_rng_state(json_part: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = json_part["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = json_part["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


@dataclass
class Checkpoint:
    step: int
    path: Path

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))


class CheckpointManager:
    def __init__(self, folder: str | os.PathLike, keep_last: int = 3) -> None:
        self.folder = Path(folder)
        self.keep_last = keep_last
        self.protected: set[int] = set()  # e.g. the best step

    # ------------------------------------------------------------------------------------- writing
    def begin(self, step: int) -> Path:
        """A fresh temporary folder to write step `step` into."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".tmp-step-{step:08d}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        return tmp

    def commit(self, tmp: Path, step: int) -> Checkpoint:
        """Seal a temporary folder: fsync, manifest, rename into place, rotate old checkpoints."""
        files = sorted(p for p in tmp.iterdir() if p.is_file())
        manifest = {}
        for path in files:
            _fsync_file(path)
            manifest[path.name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        with open(tmp / MANIFEST, "w", encoding="utf-8") as handle:
            json.dump({"step": step, "files": manifest}, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(tmp)
        final = self.folder / f"step-{step:08d}"
        old = self.folder / f".old-step-{step:08d}"
        if final.exists():  # saved twice at one step (e.g. best, then end of run): swap, never a gap
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(self.folder)
        shutil.rmtree(old, ignore_errors=True)
        self._rotate()
        return Checkpoint(step, final)

    def _rotate(self) -> None:
        steps = [c.step for c in self.list()]
        for step in steps[: max(0, len(steps) - self.keep_last)]:
            if step not in self.protected:
                shutil.rmtree(self.folder / f"step-{step:08d}", ignore_errors=True)

    def clean_partial(self) -> None:
        """Remove folders left by a write that was killed (and put back a replaced one if the swap was cut)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob(".tmp-step-*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.folder.glob(".old-step-*"):
            final = self.folder / path.name[len(".old-"):]
            if final.exists():
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.replace(path, final)

    # ------------------------------------------------------------------------------------- reading
    def list(self) -> list[Checkpoint]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            match = _STEP_DIR.match(path.name)
            if match and path.is_dir():
                found.append(Checkpoint(int(match.group(1)), path))
        return sorted(found, key=lambda c: c.step)

    def verify(self, checkpoint: Checkpoint) -> str | None:
        """None if complete and intact, else what is wrong."""
        try:
            manifest = checkpoint.read_json(MANIFEST)
        except (OSError, ValueError) as exc:
            return f"no readable {MANIFEST} ({exc.__class__.__name__})"
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or not manifest["files"]:
            return f"{MANIFEST} lists no files"
        for name, meta in manifest["files"].items():
            path = checkpoint.path / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != meta["bytes"]:
                return f"{name} has {path.stat().st_size} bytes, the manifest says {meta['bytes']}"
            if _sha256(path) != meta["sha256"]:
                return f"{name} does not match its checksum"
        return None

    def latest_valid(self) -> Checkpoint | None:
        """The newest intact checkpoint; damaged newer ones are reported and skipped."""
        for checkpoint in reversed(self.list()):
            problem = self.verify(checkpoint)
            if problem is None:
                return checkpoint
            logger.warning("checkpoint %s is damaged (%s); falling back to an older one", checkpoint.path, problem)
        return None
