"""Run the fine-tuning comparisons of docs/finetuning.md and print their tables.

    python scripts/finetune_tables.py OUT [--chinese-model DIR --chinese-tokenizer DIR] [--only GROUP]

Writes the real task files under OUT/data, one run folder per row under OUT/<group>/<name>, and
OUT/tables.md. A row whose run already has results.json is read, not rerun, so an interrupted sweep
resumes. Groups: wordnet (MiniLM: layer strategies frozen and tuned, adapters and LoRA against full
tuning), sentiment and ner (the Chinese model pretrained by scripts/pretrain_chinese_wwm.sh: full,
frozen, LoRA, adapters), regularizers (full tuning with each regularizer on a small sentiment training set:
the first 1,000 training examples, where regularizers matter most; the same dev and test sets).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bertology.datasets import write_task
from bertology.runs.finetune import Finetuning, load_config
from bertology.utils.table import format_table

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "finetune"
LAYERS = [("embeddings", ["layers=embeddings"]), ("top layer", ["layers=top"]),
          ("layer 3 of 6", ["layers=layer", "layer=3"]), ("scalar mix", ["layers=scalar_mix"]),
          ("last four concatenated", ["layers=concat_last_four"])]
FROZEN = ["method=frozen", "train.epochs=10", "train.learning_rate=2e-3"]
PEFT = ["train.epochs=3", "train.learning_rate=1e-3"]


def wordnet_rows() -> list[tuple[str, list[str]]]:
    rows = []
    for method, extra in (("frozen", FROZEN), ("tuned", [])):
        for name, head in LAYERS:
            rows.append((f"{name}, {method}", extra + [f"tasks.lexname.head.{h}" for h in head]))
    rows += [("top layer, LoRA r=8 (q, v)", ["method=lora", "peft={kind: lora, rank: 8}", *PEFT]),
             ("top layer, bottleneck adapters (64)", ["method=adapter", "peft={kind: adapter, bottleneck: 64}",
                                                      *PEFT])]
    return rows


def chinese_rows() -> list[tuple[str, list[str]]]:
    return [("full tuning", []), ("frozen features", FROZEN),
            ("LoRA r=8 (q, v)", ["method=lora", "peft={kind: lora, rank: 8}", *PEFT]),
            ("bottleneck adapters (64)", ["method=adapter", "peft={kind: adapter, bottleneck: 64}", *PEFT])]


def regularizer_rows() -> list[tuple[str, list[str]]]:
    return [("none", []), ("FGM (epsilon 1)", ["regularizers={fgm: {epsilon: 1.0}}"]),
            ("PGD (3 steps)", ["regularizers={pgd: {steps: 3}}"]),
            ("FreeLB (2 steps)", ["regularizers={freelb: {adv_steps: 2}}"]),
            ("SMART (weight 1, epsilon 1e-3)", ["regularizers={smart: {weight: 1.0, epsilon: 1e-3}}"]),
            ("Mixout 0.1", ["regularizers={mixout: {p: 0.1}}"])]


def data_overrides(task: str, folder: Path, suffix: str) -> list[str]:
    return [f"tasks.{task}.{split}={folder / (split + suffix)}" for split in ("train", "dev", "test")] + \
           [f"tasks.{task}.labels={folder / 'labels.txt'}"]


def run_row(config: Path, run_dir: Path, overrides: list[str]) -> list[dict]:
    done = run_dir / "results.json"
    if not done.is_file():
        job = Finetuning(load_config(config, [*overrides, f"run_dir={run_dir}", "train.progress=false"]))
        job.run()
    return json.loads(done.read_text())


def table(rows: list[tuple[str, list[dict]]], metric: str) -> str:
    lines = []
    for name, results in rows:
        by_split = {r["split"]: r for r in results}
        test, dev = by_split["test"], by_split["dev"]
        lines.append([name, f"{dev[metric]:.4f}", f"{test[metric]:.4f}", f"{test['trainable_parameters']:,}",
                      f"{test['seconds']:.0f}"])
    return format_table(["setting", f"dev {metric}", f"test {metric}", "trainable parameters", "seconds"], lines,
                        markdown=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--chinese-model", type=Path, default=Path("runs/peoples-daily/wwm/model"))
    parser.add_argument("--chinese-tokenizer", type=Path, default=Path("runs/peoples-daily/tokenizer"))
    parser.add_argument("--only", action="append", choices=("wordnet", "sentiment", "ner", "regularizers"))
    args = parser.parse_args()
    groups = args.only or ["wordnet", "sentiment", "ner", "regularizers"]
    data = args.out / "data"
    sizes = {"wordnet-lexnames": {"train": 12000, "dev": 2000, "test": 4000},
             "chinese-sentiment": None, "peoples-daily-ner": {"train": 8000, "dev": 2000, "test": 4000}}
    for name, limit in sizes.items():
        if not (data / name / "stats.json").is_file():
            write_task(name, data / name, seed=0, limit=limit)
    small = data / "chinese-sentiment-small"
    if not (small / "train.jsonl").is_file():
        small.mkdir(parents=True, exist_ok=True)
        lines = (data / "chinese-sentiment" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (small / "train.jsonl").write_text("".join(lines[:1000]), encoding="utf-8")
    chinese = [f"model={args.chinese_model.resolve()}", f"tokenizer={args.chinese_tokenizer.resolve()}"]
    plans = {
        "wordnet": ("wordnet-minilm.yaml", data_overrides("lexname", data / "wordnet-lexnames", ".jsonl"),
                    wordnet_rows(), "accuracy"),
        "sentiment": ("chinese-sentiment.yaml",
                      chinese + data_overrides("sentiment", data / "chinese-sentiment", ".jsonl"),
                      chinese_rows()[:2], "accuracy"),
        "ner": ("peoples-daily-ner.yaml", chinese + data_overrides("ner", data / "peoples-daily-ner", ".conll"),
                chinese_rows()[:2] + [("full tuning, lr 5e-4, 5 epochs", ["train.learning_rate=5e-4",
                                                                          "train.epochs=5"])], "f1"),
        "regularizers": ("chinese-sentiment.yaml",
                         chinese + data_overrides("sentiment", data / "chinese-sentiment", ".jsonl")
                         + [f"tasks.sentiment.train={small / 'train.jsonl'}"],
                         regularizer_rows(), "accuracy"),
    }
    report = []
    for group in groups:
        config, common, rows, metric = plans[group]
        done = []
        for name, overrides in rows:
            slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
            done.append((name, run_row(CONFIGS / config, args.out / group / slug, [*common, *overrides])))
            print(f"[{group}] {name}: done", flush=True)
        report += [f"## {group}", "", table(done, metric), ""]
        (args.out / "tables.md").write_text("\n".join(report), encoding="utf-8")
    print("\n".join(report))


if __name__ == "__main__":
    main()
