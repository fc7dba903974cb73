"""Run checkpoints that survive a kill at any moment, and what a training checkpoint holds.

A checkpoint is a folder `step-XXXXXXXX/` built under a temporary name, each file fsynced, a manifest of
sizes and SHA-256 sums written last, then renamed into place. On resume the newest folder whose manifest
checks out is used; a damaged one is reported and skipped. Nothing is unpickled: tensors are safetensors,
the optimizer state goes through `torch.load(weights_only=True)`, the rest is JSON (and the run's YAML).

`CheckpointManager` knows folders (write, seal, list, verify, rotate) whatever they hold;
`CheckpointStore` adds the files of a training checkpoint, so that the Trainer says what to save and
restore and this module alone decides where each part goes:

    model.safetensors                    the weights (the full state, gathered, under FSDP)
    optimizer.pt                         the optimizer state (one process, or DDP)
    optimizer-rank{R}.pt                 each process's optimizer shard (FSDP)
    callbacks.safetensors                callbacks' tensors as "{index}.{name}", when any has state
    trainer_state.json                   progress, model selection, world size, the scheduler
    config.yaml                          the run's configuration
    rng-rank{R}.json, .safetensors       each process's random generators
    manifest.json                        sizes and SHA-256 of all the above, written last
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
import yaml
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ..errors import CheckpointError, one_line
from ..utils.io import check_free_space, fsync_dir, translate_os_errors, translate_write_errors

logger = logging.getLogger("bertology")

MANIFEST = "manifest.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
CALLBACKS_FILE = "callbacks.safetensors"
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "config.yaml"
DAMAGED_DIR = "damaged"  # damaged checkpoints are moved here: kept for inspection, out of rotation
_STEP_DIR = re.compile(r"step-(\d{8})\Z")
_SPACE_MARGIN = 1 << 20  # bytes beyond the expected size a checkpoint write wants free (manifest, metadata)


def _step_name(step: int) -> str:
    return f"step-{step:08d}"


def _sharded_optimizer_file(rank: int) -> str:
    return f"optimizer-rank{rank}.pt"


def _rng_file(rank: int, suffix: str) -> str:
    return f"rng-rank{rank}{suffix}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _write_file(path: Path, write) -> None:
    """Call `write()` to write `path`; a file-system failure becomes a FileSystemError naming the path.

    torch.save reports a short write as `RuntimeError: [enforce fail at inline_container.cc] ... unexpected
    pos`, without the cause: `translate_write_errors` finds it (see there).
    """
    with translate_write_errors(path, "write checkpoint file"):
        write()


def _tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor in a (nested) state: what saving it will take, near enough."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


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
    def temp_path(self, step: int) -> Path:
        """Where step `step` is written before it is sealed (`begin` creates it, on one process)."""
        return self.folder / f".tmp-{_step_name(step)}"

    def begin(self, step: int) -> Path:
        """A fresh temporary folder to write step `step` into."""
        tmp = self.temp_path(step)
        with translate_os_errors(tmp, "create checkpoint folder"):
            self.folder.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
        return tmp

    def abort(self, tmp: Path) -> None:
        """Remove a temporary folder whose write failed: no partial checkpoint is left behind."""
        shutil.rmtree(tmp, ignore_errors=True)

    def previous_bytes(self) -> int:
        """The size of the newest checkpoint on disk (0 if none): what the next one will take, near enough."""
        found = self.list()
        if not found:
            return 0
        total = 0
        for path in found[-1].path.iterdir():
            try:
                total += path.stat().st_size
            except OSError:
                pass
        return total

    def check_space(self, expected: int) -> None:
        """Refuse a checkpoint write before it starts when the disk cannot hold `expected` bytes."""
        check_free_space(self.folder, expected + _SPACE_MARGIN, "a checkpoint")

    def commit(self, tmp: Path, step: int) -> Checkpoint:
        """Seal a temporary folder: fsync, manifest, rename into place, rotate old checkpoints."""
        with translate_os_errors(tmp, "seal checkpoint"):
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
            final = self.folder / _step_name(step)
            old = self.folder / f".old-{_step_name(step)}"
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
                shutil.rmtree(self.folder / _step_name(step), ignore_errors=True)

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
            if (not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", "..")
                    or not isinstance(meta, dict) or not isinstance(meta.get("bytes"), int)
                    or isinstance(meta.get("bytes"), bool) or not isinstance(meta.get("sha256"), str)):
                return f"{MANIFEST} has a malformed entry for {name!r}"
            path = checkpoint.path / name
            try:
                if not path.is_file():
                    return f"{name} is missing"
                if path.stat().st_size != meta["bytes"]:
                    return f"{name} has {path.stat().st_size} bytes, the manifest says {meta['bytes']}"
                if _sha256(path) != meta["sha256"]:
                    return f"{name} does not match its checksum"
            except OSError as exc:
                return f"{name} cannot be read ({exc.__class__.__name__})"
        return None

    def latest_valid(self, set_aside: bool = False) -> Checkpoint | None:
        """The newest intact checkpoint; damaged newer ones are reported and skipped.

        With `set_aside` (one process only), each damaged one is moved into `damaged/` beside the
        checkpoints, where rotation does not count it, and the warning names where it went.
        """
        for checkpoint in reversed(self.list()):
            problem = self.verify(checkpoint)
            if problem is None:
                return checkpoint
            moved = self._set_aside(checkpoint) if set_aside else None
            if moved is not None:
                logger.warning("checkpoint %s is damaged (%s); moved it to %s and falling back to an older one",
                               checkpoint.path, problem, moved)
            else:
                logger.warning("checkpoint %s is damaged (%s); falling back to an older one",
                               checkpoint.path, problem)
        return None

    def _set_aside(self, checkpoint: Checkpoint) -> Path | None:
        target = self.folder / DAMAGED_DIR / checkpoint.path.name
        n = 1
        while target.exists():
            target = self.folder / DAMAGED_DIR / f"{checkpoint.path.name}.{n}"
            n += 1
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(checkpoint.path, target)
        except OSError:
            return None
        return target


class CheckpointStore(CheckpointManager):
    """Training checkpoints file by file (the layout in this module's docstring), on a CheckpointManager.

    Writing goes into the folder `begin(step)` made: every process calls `write_process_files`, the main
    one also `write_main_files`, then the main one `commit`s. Reading takes a verified `Checkpoint`.
    """

    # ------------------------------------------------------------------------------------- writing
    def write_process_files(self, folder: Path, rank: int,
                            optimizer_shard: dict[str, Any] | None = None) -> None:
        """What each process writes itself: its random state, and its optimizer shard when sharded (FSDP)."""
        json_rng, tensor_rng = rng_state()
        path = folder / _rng_file(rank, ".safetensors")
        _write_file(path, lambda: save_file(tensor_rng, str(path)))
        path_json = folder / _rng_file(rank, ".json")
        _write_file(path_json, lambda: path_json.write_text(json.dumps(json_rng), encoding="utf-8"))
        if optimizer_shard is not None:
            shard = folder / _sharded_optimizer_file(rank)
            _write_file(shard, lambda: torch.save(optimizer_shard, shard))

    def write_main_files(
        self,
        folder: Path,
        *,
        model: nn.Module | dict[str, torch.Tensor],
        optimizer_state: dict[str, Any] | None,
        callback_states: list[dict[str, torch.Tensor]],
        trainer_state: dict[str, Any],
        run_config: dict[str, Any],
    ) -> None:
        """What the main process writes once for all: weights, the unsharded optimizer, callbacks, state, config.

        `model` is the module, or its full state dict where one had to be gathered (FSDP);
        `optimizer_state` is None when each process wrote its own shard. Before writing, the free space is
        checked against the previous checkpoint's size (or, for the first, the state's tensor bytes).
        """
        flat = {f"{i}.{k}": v.detach().cpu().contiguous() for i, state in enumerate(callback_states)
                for k, v in state.items()}
        expected = self.previous_bytes() or (
            _tensor_bytes(model.state_dict() if isinstance(model, nn.Module) else model)
            + _tensor_bytes(optimizer_state) + _tensor_bytes(flat))
        self.check_space(expected)
        model_path = folder / MODEL_FILE
        if isinstance(model, nn.Module):
            _write_file(model_path, lambda: save_model(model, str(model_path)))
        else:
            _write_file(model_path, lambda: save_file({k: v.contiguous() for k, v in model.items()},
                                                      str(model_path)))
        if optimizer_state is not None:
            optimizer_path = folder / OPTIMIZER_FILE
            _write_file(optimizer_path, lambda: torch.save(optimizer_state, optimizer_path))
        if flat:
            callbacks_path = folder / CALLBACKS_FILE
            _write_file(callbacks_path, lambda: save_file(flat, str(callbacks_path)))
        state_path = folder / STATE_FILE
        _write_file(state_path, lambda: state_path.write_text(json.dumps(trainer_state, indent=1), encoding="utf-8"))
        config_path = folder / CONFIG_FILE

        def write_config() -> None:
            with open(config_path, "w", encoding="utf-8") as handle:
                yaml.safe_dump(run_config, handle, sort_keys=False, allow_unicode=True)

        _write_file(config_path, write_config)

    # ------------------------------------------------------------------------------------- reading
    def read_trainer_state(self, checkpoint: Checkpoint) -> dict[str, Any]:
        return checkpoint.read_json(STATE_FILE)

    def load_model(self, checkpoint: Checkpoint, module: nn.Module) -> None:
        """Load the weights into `module`; any missing or unexpected tensor is a CheckpointError."""
        missing, unexpected = load_model(module, str(checkpoint.path / MODEL_FILE), strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{checkpoint.path}: model tensors missing {missing}, unexpected {unexpected}")

    def read_model_state(self, checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
        """The full weights as a state dict (for FSDP, which loads them into its shards itself)."""
        return load_file(str(checkpoint.path / MODEL_FILE))

    def read_optimizer_state(self, checkpoint: Checkpoint, device: torch.device | str,
                             rank: int | None = None) -> dict[str, Any]:
        """The optimizer state: process `rank`'s shard when sharded (FSDP), else the one unsharded file."""
        name = OPTIMIZER_FILE if rank is None else _sharded_optimizer_file(rank)
        try:
            return torch.load(checkpoint.path / name, map_location=device, weights_only=True)
        except Exception as exc:  # a poisoned pickle whose manifest was rewritten to match, a corrupt zip ...
            raise CheckpointError(f"{checkpoint.path / name}: cannot read the optimizer state as a weights-only "
                                  f"PyTorch file ({type(exc).__name__}: {one_line(exc)}); files holding arbitrary "
                                  "Python objects are refused") from None

    def read_callback_states(self, checkpoint: Checkpoint, count: int) -> list[dict[str, torch.Tensor]] | None:
        """Each of `count` callbacks' saved tensors, in order; None when no callback had state to save."""
        path = checkpoint.path / CALLBACKS_FILE
        if not path.is_file():
            return None
        saved = load_file(str(path))
        return [{k[len(f"{i}."):]: v for k, v in saved.items() if k.startswith(f"{i}.")} for i in range(count)]

    def restore_rng_state(self, checkpoint: Checkpoint, rank: int) -> None:
        """Set every random generator as process `rank` saved it (rank 0's when that rank wrote none)."""
        json_file = checkpoint.path / _rng_file(rank, ".json")
        if not json_file.is_file():
            json_file = checkpoint.path / _rng_file(0, ".json")
        set_rng_state(json.loads(json_file.read_text(encoding="utf-8")),
                      load_file(str(json_file.with_suffix(".safetensors"))))

    def last_path(self) -> Path | None:
        """The newest checkpoint folder (intact or not), for messages and results."""
        found = self.list()
        return found[-1].path if found else None
