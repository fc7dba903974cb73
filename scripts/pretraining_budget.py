"""Does a few minutes of pretraining on 2 CPU cores beat random initialisation on review sentiment?

The experiment behind docs/demo.md's section of that name: the quick demo's data and model size (a 2-layer,
128-wide BERT, 4,000 lines of People's Daily and 4,000 unlabelled reviews), pretraining variants that a reader
would try first (a higher learning rate, 40% masking, three times the steps, in-domain text only), each
fine-tuned on 800 and on 200 labelled reviews with three seeds and scored on the whole test split (1,736
reviews), beside the same architecture from random weights. One more arm keeps only the embeddings of the longest
pretraining (the rest at random weights): do they carry what the task needs?

    python scripts/pretraining_budget.py runs/pretraining-budget      # about 25 minutes on 2 cores

An interrupted training continues from its checkpoints when the script runs again on the same folder; results
land in OUT/results.json and a Markdown table in OUT/report.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import time
from pathlib import Path

from bertology.runs.demo.chinese import (
    _unlabelled_reviews,
    finetune_model,
    pretrain_model,
    random_init_folder,
    sentiment_task,
)
from bertology.runs.demo.plan import QUICK
from bertology.utils.table import format_table

#: name -> (plan changes, config overrides, pretraining text: "demo" = news and 4,000 reviews, "reviews" = all
#: 13,890 unlabelled training reviews)
VARIANTS = {
    "quick demo (lr 1e-3, 800 steps)": ({}, [], "demo"),
    "learning rate 2e-3": ({"pretrain_learning_rate": 2e-3}, [], "demo"),
    "40% masking": ({}, ["masking.rate=0.4"], "demo"),
    "3x steps (2,400)": ({"pretrain_steps": 2400}, [], "demo"),
    "3x steps, reviews only": ({"pretrain_steps": 2400}, [], "reviews"),
}
#: labelled reviews -> epochs (the same number of optimizer steps, give or take)
LABELS = {800: 3, 200: 15}
SEEDS = (0, 1, 2)
LEARNING_RATE = 5e-4


def demo_data(out: Path) -> Path:
    """The quick demo's data stage (tokenizer, corpus, sentiment splits with the whole test split)."""
    from bertology.cli.main import main

    if not (out / "demo" / "stages" / "data.json").is_file() and main(
            ["demo", "--quick", "--stages", "data", "--out", str(out / "demo")]) != 0:
        raise SystemExit("the demo's data stage failed (its message is above)")
    return out / "demo" / "data"


def reviews_corpus(data: Path, out: Path) -> Path:
    """A data folder whose corpus is every unlabelled training review alone (the demo's tokenizer)."""
    from bertology.data.prepare import prepare_corpus
    from bertology.tokenization import Tokenizer

    folder = out / "reviews-data"
    if not (folder / "corpus" / "meta.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _unlabelled_reviews(folder / "reviews.txt", None)
        prepare_corpus([folder / "reviews.txt"], folder / "corpus", Tokenizer.from_pretrained(data / "tokenizer"),
                       input_format="text", doc_per_line=True, chinese_words="jieba", overwrite=True, workers=1)
        shutil.copytree(data / "tokenizer", folder / "tokenizer", dirs_exist_ok=True)
    return folder


def labelled(data: Path, out: Path, n: int) -> dict:
    """The sentiment task with only the first `n` training reviews."""
    folder = out / f"labels-{n}"
    if not (folder / "sentiment" / "train.jsonl").is_file():
        shutil.copytree(data / "sentiment", folder / "sentiment", dirs_exist_ok=True)
        rows = (data / "sentiment" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (folder / "sentiment" / "train.jsonl").write_text("".join(rows[:n]), encoding="utf-8")
    return sentiment_task(folder, QUICK.max_length)


def embeddings_only(pretrained: Path, random: Path, folder: Path) -> Path:
    """`random` with the word, position and type embeddings (and their LayerNorm) of `pretrained`."""
    from safetensors.torch import load_file, save_file

    if not (folder / "model.safetensors").is_file():
        shutil.copytree(random, folder, dirs_exist_ok=True)
        weights = load_file(str(random / "model.safetensors"))
        for key, value in load_file(str(pretrained / "model.safetensors")).items():
            key = key.removeprefix("bert.")
            if key.startswith("embeddings.") and key in weights:
                weights[key] = value
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def scores(model: Path, name: str, tasks: dict[int, dict], out: Path) -> dict[int, list[float]]:
    return {n: [finetune_model(task, str(model), out / "finetune" / name / f"{n}-{seed}", LEARNING_RATE,
                               LABELS[n], seed=seed)["accuracy"] for seed in SEEDS] for n, task in tasks.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    data = demo_data(out)
    tasks = {n: labelled(data, out, n) for n in LABELS}
    rows: dict[str, dict] = {}
    for i, (name, (plan, overrides, text)) in enumerate(VARIANTS.items()):
        source = data if text == "demo" else reviews_corpus(data, out)
        start = time.perf_counter()
        pre = pretrain_model(source, out / "pretrain" / str(i), dataclasses.replace(QUICK, **plan), overrides=overrides)
        rows[name] = {"pretrain_seconds": time.perf_counter() - start, "hidden_accuracy": pre["hidden_accuracy"],
                      "unigram_accuracy": pre["unigram_accuracy"],
                      "scores": scores(Path(pre["model"]), str(i), tasks, out)}
    random = random_init_folder(out / "pretrain" / "0" / "model", out / "random-init")
    rows["random initialisation"] = {"scores": scores(random, "random", tasks, out)}
    longest = out / "pretrain" / str(list(VARIANTS).index("3x steps (2,400)")) / "model"
    rows["3x steps: embeddings only"] = {"scores": scores(embeddings_only(longest, random, out / "embeddings-only"),
                                                          "embeddings-only", tasks, out)}
    (out / "results.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")

    def cell(values: list[float]) -> str:
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

    table = format_table(
        ["pretraining", "seconds", "hidden-token acc. (unigram)", *[f"{n} labels ({LABELS[n]} epochs)" for n in LABELS]],
        [[name, f"{r['pretrain_seconds']:.0f}" if "pretrain_seconds" in r else "-",
          f"{r['hidden_accuracy']:.3f} ({r['unigram_accuracy']:.3f})" if "hidden_accuracy" in r else "-",
          *[cell(r["scores"][n]) for n in LABELS]] for name, r in rows.items()], markdown=True)
    (out / "report.md").write_text(f"Test accuracy on 1,736 reviews, mean ± std over seeds {SEEDS}:\n\n{table}\n",
                                   encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
