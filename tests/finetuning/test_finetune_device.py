"""`--device cpu` through `bertology finetune`, `evaluate` and `predict` on the toy workspace."""

from __future__ import annotations

import json

import torch
import yaml

from bertology.cli.main import main
from bertology.finetuning.session import load_for_inference

CLS = {"kind": "classification", "train": "cls/train.jsonl", "dev": "cls/dev.jsonl", "max_length": 16}


def test_finetune_evaluate_predict_on_the_cpu(workspace, tmp_path):
    run = tmp_path / "run"
    config = {"model": str(workspace / "enc"), "run_dir": str(run), "tasks": {"sent": CLS},
              "train": {"epochs": 1, "batch_size": 8, "progress": False, "plot": False}}
    path = workspace / "device.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["finetune", str(path), "--device", "cpu"]) == 0
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["train"]["device"] == "cpu"  # --device is train.device

    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(run / "model"), str(workspace / "cls/dev.jsonl"), "-o", str(out),
                 "--device", "cpu"]) == 0
    assert "accuracy" in json.loads(out.read_text())
    predictions = tmp_path / "pred.jsonl"
    assert main(["predict", str(run / "model"), str(workspace / "cls/dev.jsonl"), "-o", str(predictions),
                 "--device", "cpu"]) == 0
    assert predictions.read_text().count("\n") == sum(1 for _ in (workspace / "cls/dev.jsonl").open())
    session = load_for_inference(run / "model", device="cpu")
    assert next(session.model.parameters()).device == torch.device("cpu")
