"""The demo's stage runner: each stage writes its result to `stages/NAME.json` when it finishes; a stage whose
result exists is skipped, and a training interrupted inside a stage continues from its newest checkpoint."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...utils.io import atomic_write
from ..guard import claim_run_folder, used
from .plan import DemoPlan


@dataclass
class DemoContext:
    out: Path
    plan: DemoPlan
    quick: bool
    #: results of the stages run or read so far, by stage name
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def need(self, stage: str) -> dict[str, Any]:
        """An earlier stage's result, or a clear error saying which stage to run first."""
        if stage not in self.results:
            raise ConfigError(f"this stage needs the '{stage}' stage's result ({self.out / 'stages' / stage}.json); "
                              f"run it first (--stages {stage},...)")
        return self.results[stage]


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[DemoContext], dict[str, Any]]


def result_path(ctx: DemoContext, name: str) -> Path:
    return ctx.path("stages", f"{name}.json")


def load_finished(ctx: DemoContext, stages: list[Stage]) -> None:
    for stage in stages:
        path = result_path(ctx, stage.name)
        if path.is_file():
            ctx.results[stage.name] = json.loads(path.read_text(encoding="utf-8"))


def run_stage(ctx: DemoContext, stage: Stage) -> dict[str, Any]:
    """Run `stage` unless its result exists; store the result (with its wall time) atomically."""
    path = result_path(ctx, stage.name)
    if path.is_file():
        print(f"\n== {stage.title}: done earlier, read from {path}", flush=True)
        return ctx.results[stage.name]
    print(f"\n== {stage.title}", flush=True)
    start = time.perf_counter()
    result = stage.run(ctx)
    result["seconds"] = round(time.perf_counter() - start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        json.dump(result, handle, indent=2)
    ctx.results[stage.name] = result
    return result


@contextlib.contextmanager
def training_folder(run_dir: Path, view: Callable[[dict], Any] | None, config: Any) -> Iterator[bool]:
    """Claim a training's run folder; yields whether to resume (an interrupted run left checkpoints or logs)."""
    resume = bool(used(run_dir)) if run_dir.is_dir() else False
    if resume:
        print(f"   continuing the interrupted run in {run_dir}", flush=True)
    with claim_run_folder(run_dir, view, config, resume=resume, force=False):
        yield resume
