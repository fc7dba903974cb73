"""`bertology finetune` as a user types it: the same seed gives the same losses in two processes, paths in
the file are relative to the file (on the command line, to the working directory), a used folder is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

CONFIG = {
    "model": "enc", "run_dir": "runs/repro",  # both relative to the config file's folder
    "tasks": {"sent": {"kind": "classification", "train": "cls/train.jsonl", "dev": "cls/dev.jsonl",
                       "max_length": 16}},
    "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "log_every": 1, "progress": False,
              "plot": False},
}


def finetune(config: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bertology.cli.main", "finetune", str(config), *extra], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r["split"] == "train"]


def test_same_seed_same_losses_across_processes_and_a_used_folder_is_refused(workspace, tmp_path):
    config = workspace / "repro.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    first = finetune(config, tmp_path)  # run_dir from the file: beside the file, not in the working directory
    assert first.returncode == 0, first.stderr
    assert (workspace / "runs" / "repro" / "model").is_dir() and not (tmp_path / "runs").exists()
    second = finetune(config, tmp_path, "--run-dir", "b")  # from the command line: the working directory
    assert second.returncode == 0, second.stderr
    assert len(losses(tmp_path / "b")) == 20
    assert losses(workspace / "runs" / "repro") == losses(tmp_path / "b")  # bit-identical
    before = (tmp_path / "b" / "metrics.jsonl").read_bytes()
    again = finetune(config, tmp_path, "--run-dir", "b")
    assert again.returncode == 2 and "already holds another run" in again.stderr
    assert (tmp_path / "b" / "metrics.jsonl").read_bytes() == before
    changed = finetune(config, tmp_path, "--run-dir", "b", "--resume", "--set", "train.batch_size=4")
    assert changed.returncode == 2 and "finetune.train.batch_size" not in changed.stderr
    assert "train.batch_size" in changed.stderr
    unchanged = finetune(config, tmp_path, "--run-dir", "b", "--resume", "--set", "train.log_every=2")
    assert unchanged.returncode == 0, unchanged.stderr  # the stored config matches: resumed (already finished)
    assert "train.log_every" in unchanged.stdout
