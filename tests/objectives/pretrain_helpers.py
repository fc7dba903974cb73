"""Overrides for a tiny end-to-end pretraining run on the shared corpus (tests/objectives/conftest.py)."""

from __future__ import annotations

from pathlib import Path


def tiny_overrides(root: Path, run: Path, steps: int = 4, log_every: int = 2, eval_every: int = 0,
                   hidden: int = 64) -> list[str]:
    """A tiny model (2 layers of `hidden`), 64-token instances, batches of 8, `steps` steps, no progress bar, fp32."""
    return [f"corpus={root / 'corpus'}", f"tokenizer={root / 'tok'}", f"run_dir={run}",
            "model.preset=tiny", f"model.hidden_size={hidden}", "model.num_attention_heads=2",
            f"model.intermediate_size={2 * hidden}", "data.max_length=64", "data.eval_fraction=0.05",
            f"train.max_steps={steps}", "train.batch_size=8", f"train.eval_every={eval_every}",
            f"train.save_every={eval_every}", f"train.log_every={log_every}", "train.progress=false",
            "train.bf16=false"]
