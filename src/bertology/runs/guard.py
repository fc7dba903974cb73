"""A run folder belongs to one run: claimed before a run is built, held (locked) for the run's life.

    with claim_run_folder(run_dir, stored_view, new_view, resume=..., overwrite=..., force=...):
        ...build and train...

- A folder that already holds another run (checkpoints or metrics.jsonl) is refused, unless `resume`
  (continue it) or `overwrite` (move it aside to `RUN_DIR.old-YYYYmmdd-HHMMSS`, and say where).
- A lock file (`RUN_DIR/.lock`, `fcntl.flock` on an open file) is held while the run lives; the kernel
  releases it when the process ends, however it ends, so a crash never leaves a stale lock. A second process
  writing to the same folder is refused at once.
- `resume` compares the folder's stored config.yaml with the new config: a change that breaks exactness
  (batch size, accumulation, masking, data, model, seed, objectives, ...) is refused naming the key paths,
  unless `force`; changes that only say how often or how visibly to run (log/eval/save frequency, progress,
  plot, ...) are allowed and reported, and so is the run's length (max_steps, epochs) under a constant
  learning-rate schedule (a linear or cosine schedule is stretched over the length, so there it is refused).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from ..errors import RunFolderError

logger = logging.getLogger("bertology")

LOCK_NAME = ".lock"

#: keys (last part of a key path) whose change keeps a resumed run exact: how long, how often, how visibly
HARMLESS = frozenset({
    "max_steps", "epochs", "log_every", "eval_every", "save_every", "keep_last", "progress", "plot", "tensorboard",
    "num_workers", "early_stopping_patience", "max_bad_steps", "run_dir",
    "device",
})


def _sub_runs(run_dir: Path) -> list[Path]:
    """The Trainer runs inside a run folder: fine-tuning's stages, distillation's phases."""
    return sorted(p for pattern in ("stage*", "phase*") for p in run_dir.glob(pattern) if p.is_dir())


def used(run_dir: Path) -> list[str]:
    """What in `run_dir` shows another run was there (its checkpoints, its metrics log, its results), also in
    stage folders."""
    found = []
    for folder in [run_dir, *_sub_runs(run_dir)]:
        checkpoints = folder / "checkpoints"
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            found.append(str(checkpoints.relative_to(run_dir)))
        for name in ("metrics.jsonl", "results.json"):  # a training log; a finished run's results (quantize)
            if (folder / name).is_file():
                found.append(str((folder / name).relative_to(run_dir)))
    return found


def stored_config(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's config.yaml (a multi-stage run's first stage's or phase's), or None."""
    candidates = [run_dir / "config.yaml", *(folder / "config.yaml" for folder in _sub_runs(run_dir))]
    for path in candidates:
        if path.is_file():
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
            return data if isinstance(data, dict) else None
    return None


def config_changes(old: Any, new: Any, path: str = "") -> list[str]:
    """Key paths (`train.batch_size`) whose values differ between two plain configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                if old.get(key) != new.get(key):
                    changes.append(sub)
                continue
            changes += config_changes(old[key], new[key], sub)
        return changes
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and not isinstance(old, bool):
        return [] if float(old) == float(new) else [path]
    return [] if old == new else [path]


#: keys that set how long a run is, which a decaying learning-rate schedule is stretched over
LENGTH_KEYS = frozenset({"max_steps", "epochs"})


def _harmless(change: str, new: Any) -> bool:
    """A change of `change` (a key path) keeps the resumed run exact: a harmless key, except that the run's
    length also shapes a linear or cosine schedule, so it may change only under `schedule: constant`."""
    *parents, key = change.split(".")
    if key not in HARMLESS:
        return False
    if key in LENGTH_KEYS:
        section = new
        for part in parents:
            section = section.get(part, {}) if isinstance(section, dict) else {}
        schedule = section.get("schedule", "linear") if isinstance(section, dict) else "linear"
        return schedule == "constant"
    return True


def check_resume(run_dir: Path, stored: Any, new: Any, force: bool) -> list[str]:
    """Refuse a resume whose config differs from the stored one in what decides the numbers (unless `force`);
    return the harmless changes (which are logged)."""
    changes = config_changes(stored, new)
    harmless = [c for c in changes if _harmless(c, new)]
    breaking = [c for c in changes if c not in harmless]
    if breaking and not force:
        raise RunFolderError(
            f"--resume: the config differs from the one {run_dir} was started with in "
            f"{', '.join(breaking)}; a resumed run would not be the same run. Use the stored config "
            f"({run_dir / 'config.yaml'}), start a new run folder, or add --force to resume anyway")
    if breaking:
        logger.warning("--resume --force: continuing %s with changed %s; the run is no longer exact",
                       run_dir, ", ".join(breaking))
    if harmless:
        print(f"resuming {run_dir} with changed {', '.join(harmless)}")
    return changes


class RunLock:
    """An exclusive `flock` on RUN_DIR/.lock, held until `release` (or until the process ends)."""

    def __init__(self, run_dir: Path) -> None:
        import fcntl

        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / LOCK_NAME
        handle: TextIO = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115  # held for the run's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise RunFolderError(
                f"{run_dir} is in use by another run{f' ({holder})' if holder else ''}; wait for it to finish, "
                "stop it, or choose another run folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self.handle: TextIO | None = handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file releases the lock
            self.handle = None


def _aside(run_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
    return target


@contextlib.contextmanager
def claim_run_folder(run_dir: str | os.PathLike, view: Callable[[dict[str, Any]], Any] | None = None,
                     new: Any = None, resume: bool = False, overwrite: bool = False,
                     force: bool = False) -> Iterator[RunLock | None]:
    """Claim `run_dir` for one run (see the module's docstring). `new` is the new run's config as plain data
    and `view(stored)` the same part of the stored config.yaml, to compare on resume."""
    if resume and overwrite:
        raise RunFolderError("--resume continues the run in the folder, --overwrite moves it aside: give one")
    run_dir = Path(run_dir)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun the main process claims the folder for all
        yield None
        return
    lock = RunLock(run_dir)
    try:
        found = used(run_dir)
        if found and overwrite:
            target = _aside(run_dir)
            lock.release()
            run_dir.rename(target)
            (target / LOCK_NAME).unlink(missing_ok=True)
            lock = RunLock(run_dir)
            print(f"moved the earlier run in {run_dir} aside to {target}")
        elif found and resume:
            stored = stored_config(run_dir)
            if stored is not None and new is not None:
                check_resume(run_dir, view(stored) if view is not None else stored, new, force)
        elif found:
            raise RunFolderError(
                f"{run_dir} already holds another run ({', '.join(found)}); add --resume to continue it, "
                "--overwrite to move it aside and start afresh, or choose another run folder")
        yield lock
    finally:
        lock.release()
