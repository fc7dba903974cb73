"""Unstructured magnitude pruning while fine-tuning a fine-tuned model further (the `magnitude_pruning`
regularizer, 2 epochs at 2e-5, 0% / 50% / 80% final sparsity of the encoder's matrices): test accuracy and the
encoder's size as safetensors, zlib-compressed and in a CSR form. Used for docs/compression.md.

    python scripts/magnitude_pruning.py OUT DATA MODEL
"""

import json
import sys
from pathlib import Path

from bertology.compression.pruning.magnitude import compressed_size
from bertology.finetuning.model import TaskModel
from bertology.runs.finetune import Finetuning, finetune_config

out, data, model = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
for sparsity in (0.0, 0.5, 0.8):
    run = out / f"magnitude-{int(sparsity*100)}"
    if not (run / "results.json").is_file():
        regs = {"magnitude_pruning": {"final_sparsity": sparsity}} if sparsity else {}
        Finetuning(finetune_config({"model": model, "run_dir": str(run), "seed": 0,
            "tasks": {"lexname": {"kind": "classification", "train": str(data / "train.jsonl"),
                                  "test": str(data / "test.jsonl"), "max_length": 64}},
            "regularizers": regs,
            "train": {"epochs": 2, "learning_rate": 2e-5, "batch_size": 32, "bf16": True, "progress": False,
                      "plot": False, "log_every": 50}})).run()
    acc = {r["split"]: r["accuracy"] for r in json.loads((run / "results.json").read_text())}["test"]
    enc = TaskModel.from_pretrained(run / "model").encoder
    size = compressed_size(enc)
    print(sparsity, acc, size, flush=True)
