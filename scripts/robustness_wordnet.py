"""Robustness of a real fine-tuned classifier: all-MiniLM-L6-v2 fine-tuned on WordNet gloss classification
(45 lexicographer files; full tuning, 2 epochs on 3,000 glosses, as the demo does), then `bertology robustness`
on the held-out glosses: how often the predicted class changes, and how much its probability drops, when the
words are shuffled, the gloss cut in half, or one word replaced or removed.

    python scripts/robustness_wordnet.py OUT
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bertology.datasets import write_task
from bertology.runs.finetune import Finetuning, finetune_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    out = args.out.resolve()
    data = out / "data"
    if not (data / "stats.json").is_file():
        write_task("wordnet-lexnames", data, seed=0, limit={"train": 3000, "dev": 500, "test": 1000})
    model = out / "full" / "model"
    if not (model / "task.json").is_file():
        task = {"kind": "classification", "labels": str(data / "labels.txt"), "max_length": 64,
                "head": {"layers": "top", "pooling": "mean"},
                **{split: str(data / f"{split}.jsonl") for split in ("train", "dev", "test")}}
        config = finetune_config({"model": "minilm", "run_dir": str(out / "full"), "method": "full",
                                  "tasks": {"lexname": task},
                                  "train": {"epochs": 2, "batch_size": 32, "learning_rate": 1e-4,
                                            "warmup_ratio": 0.06, "bf16": True}}, "robustness: ")
        Finetuning(config).run()
    texts = out / "test.txt"
    texts.write_text("".join(json.loads(line)["text"] + "\n" for line in (data / "test.jsonl").open(encoding="utf-8")),
                     encoding="utf-8")
    subprocess.run([sys.executable, "-m", "bertology.cli.main", "robustness", str(model), str(texts), "--out",
                    str(out / "robustness")], check=True)


if __name__ == "__main__":
    main()
