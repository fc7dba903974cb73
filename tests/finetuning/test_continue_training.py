"""Fine-tuning a fine-tuned model further (recovery after pruning, quantization-aware training): `model:` a
fine-tuned folder keeps its heads and their label order, and refuses a task it has no head for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bertology.errors import ConfigError, DataError
from bertology.finetuning.model import TaskModel
from bertology.runs.finetune import Finetuning, finetune_config

QUICK = {"batch_size": 8, "learning_rate": 1e-3, "progress": False, "plot": False, "log_every": 5}


def _config(root: Path, model: str, run: str, epochs: int, **task) -> dict:
    return {"model": model, "run_dir": str(root / run), "seed": 0,
            "tasks": {"animal": {"kind": "classification", "train": str(root / "cls/train.jsonl"),
                                 "test": str(root / "cls/test.jsonl"), "max_length": 16, **task}},
            "train": {**QUICK, "epochs": epochs}}


def test_a_fine_tuned_model_trains_further_with_its_own_heads(workspace):
    root = workspace
    Finetuning(finetune_config(_config(root, str(root / "enc"), "first", 2))).run()
    first = TaskModel.from_pretrained(root / "first" / "model")
    # the head's label order decides the ids (else the logits would swap classes), whatever the data says
    rows = [json.loads(line) for line in (root / "cls/train.jsonl").read_text().splitlines()]
    labels = first.head_configs["animal"].labels
    assert sorted(labels) == sorted({r["label"] for r in rows})
    again = Finetuning(finetune_config(_config(root, str(root / "first" / "model"), "again", 1)))
    assert again.model.head_configs["animal"].labels == labels
    assert list(again.tasks["animal"].labels.names) == labels
    before = {k: v.clone() for k, v in again.model.heads.state_dict().items()}
    for k, v in first.heads.state_dict().items():  # starts from the trained head, not a new one
        torch.testing.assert_close(before[k], v)
    results = again.run()
    assert any(r["split"] == "test" for r in results)
    assert TaskModel.from_pretrained(root / "again" / "model").head_configs["animal"].labels == labels


def test_a_task_the_fine_tuned_model_has_no_head_for_is_refused(workspace):
    root = workspace
    if not (root / "first" / "model").is_dir():
        Finetuning(finetune_config(_config(root, str(root / "enc"), "first", 1))).run()
    config = _config(root, str(root / "first" / "model"), "other", 1)
    config["tasks"] = {"colour": config["tasks"]["animal"]}
    with pytest.raises(ConfigError, match="has heads \\['animal'\\], not 'colour'"):
        Finetuning(finetune_config(config))
    bad = root / "bad.jsonl"
    bad.write_text(json.dumps({"text": "a fox", "label": "fox"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="'fox'"):
        Finetuning(finetune_config(_config(root, str(root / "first" / "model"), "bad", 1, train=str(bad))))
