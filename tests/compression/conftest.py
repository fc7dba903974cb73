"""What the compression tests share: a toy fine-tuned classifier (tests/finetuning/conftest.py's workspace:
an encoder of 2 layers, width 32, and its task files, fine-tuned on the animal task)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bertology.runs.finetune import Finetuning, finetune_config

_spec = importlib.util.spec_from_file_location("compression_workspace",
                                               Path(__file__).parents[1] / "finetuning" / "conftest.py")
_workspace = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_workspace)  # type: ignore[union-attr]

QUICK = {"batch_size": 8, "learning_rate": 1e-3, "progress": False, "plot": False, "log_every": 2}


def fine_tuned_toy(root: Path, run: str, epochs: int) -> Path:
    """Write the workspace under `root` and fine-tune its encoder on the animal task into root/run; returns
    root (the model is root/run/model, the task files root/cls/{train,dev,test}.jsonl)."""
    _workspace.build_workspace(root)
    config = finetune_config({"model": str(root / "enc"), "run_dir": str(root / run),
                              "tasks": {"animal": {"kind": "classification", "train": str(root / "cls/train.jsonl"),
                                                   "test": str(root / "cls/test.jsonl"), "max_length": 16}},
                              "train": {**QUICK, "epochs": epochs}})
    Finetuning(config).run()
    return root


@pytest.fixture(scope="session")
def fine_tune_toy():
    """`fine_tuned_toy` for a test module's own fixture: `fine_tune_toy(tmp_path_factory.mktemp(...), run, epochs)`."""
    return fine_tuned_toy
