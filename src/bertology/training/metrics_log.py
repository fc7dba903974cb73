"""What a run leaves for people to read: metrics.jsonl, optional TensorBoard, and a PNG of the curves."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from ..utils.io import atomic_path, translate_os_errors
from ..utils.plot import pyplot, save_png

logger = logging.getLogger("bertology")

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN; keep it visible as text
    return value


class MetricsLog:
    """Append-only JSON lines, one object per logged step; rewinds to a step when a run resumes."""

    def __init__(self, run_dir: Path, tensorboard: bool = False) -> None:
        self.path = run_dir / METRICS_FILE
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError("tensorboard logging needs the 'tensorboard' package: "
                                  "pip install tensorboard") from exc
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def rewind(self, step: int) -> None:
        """Drop lines logged after `step` (they will be logged again by the resumed run)."""
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except ValueError:
                continue  # a line cut short by a kill
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        with translate_os_errors(self.path, "append to"), open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
            handle.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def plot_curves(records: list[dict[str, Any]], out: Path) -> Path | None:
    """Loss (train and eval) and learning rate against step, as one PNG. Needs matplotlib."""
    plt = pyplot("plot")
    if plt is None:
        return None
    train = [r for r in records if r.get("split", "train") == "train" and isinstance(r.get("loss"), float)]
    evals = [r for r in records if r.get("split") == "eval" and isinstance(r.get("loss"), float)]
    if not train:
        return None
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train", lw=1)
    if evals:
        ax_loss.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", label="eval", ms=3)
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_lr.plot([r["step"] for r in train], [r.get("lr", float("nan")) for r in train], color="tab:orange")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, out, dpi=110)
    return out


__all__ = ["METRICS_FILE", "MetricsLog", "plot_curves"]
