"""Helpers for the extension tests: a small pretraining config, running `bertology` as a user does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml


def small_pretrain_config(english: Path, run_dir: Path, plugin: str, **sections) -> dict:
    """A tiny pretraining config (2 layers, width 32, 6 steps) that loads `plugin` and sets `sections`."""
    config = {"plugins": [plugin], "corpus": str(english / "corpus"), "tokenizer": str(english / "tok"),
              "run_dir": str(run_dir),
              "model": {"preset": "tiny", "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
                        "num_hidden_layers": 2},
              "data": {"format": "full_sentences", "max_length": 32, "eval_fraction": 0.05},
              "train": {"max_steps": 6, "batch_size": 4, "log_every": 1, "eval_every": 0, "save_every": 3,
                        "progress": False, "plot": False, "bf16": False}}
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    return config


def run_bertology(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`bertology ARGS` in a fresh interpreter, as a user's shell would run it."""
    return subprocess.run([sys.executable, "-m", "bertology.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def train_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("split") == "train"]
