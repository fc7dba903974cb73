"""Fine-tune the three models of scripts/compare_chinese_models.sh (character BERT, ChineseBERT, AMBERT; same
size, data, masking and steps) on Chinese review sentiment, and print one Markdown table for docs/models.md.

usage: python scripts/finetune_chinese_families.py WORK_DIR DATA_DIR [--epochs 2] [--out runs/chinese-ft]
  WORK_DIR: what compare_chinese_models.sh wrote (character/, chinesebert/, ambert/ with model/ folders)
  DATA_DIR: `bertology task-data chinese-sentiment DATA_DIR ...`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bertology.runs.finetune import Finetuning, load_config

ROWS = (("character BERT", "character", ""), ("ChineseBERT (glyph + pinyin)", "chinesebert", ""),
        ("AMBERT (characters + words, agreement 1.0)", "ambert", "regularizers: {agreement: {weight: 1.0}}\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work")
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="runs/chinese-ft")
    args = parser.parse_args()
    work, data, out = Path(args.work).resolve(), Path(args.data).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    table = ["| model | parameters | dev accuracy | test accuracy | test macro-F1 | seconds |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, name, extra in ROWS:
        config = out / f"{name}.yaml"
        config.write_text(
            f"model: {work / name / 'model'}\nrun_dir: {out / name}\n{extra}tasks:\n  sentiment:\n"
            f"    kind: classification\n    train: {data / 'train.jsonl'}\n    dev: {data / 'dev.jsonl'}\n"
            f"    test: {data / 'test.jsonl'}\n    labels: {data / 'labels.txt'}\n    max_length: 128\n"
            "    head: {layers: top, pooling: cls}\n"
            f"train: {{epochs: {args.epochs}, batch_size: 32, learning_rate: 1.0e-4, warmup_ratio: 0.06, bf16: true,"
            " plot: false}\n", encoding="utf-8")
        results = Finetuning(load_config(config)).run()
        dev = next(r for r in results if r["split"] == "dev")
        test = next(r for r in results if r["split"] == "test")
        table.append(f"| {label} | {test['trainable_parameters']:,} | {dev['accuracy']:.4f} | {test['accuracy']:.4f} "
                     f"| {test['macro_f1']:.4f} | {test['seconds']:.0f} |")
        (out / "table.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    print("\n".join(table))
    json.dumps(table)


if __name__ == "__main__":
    main()
