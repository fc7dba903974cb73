"""Each pretraining objective added to MLM against MLM alone, on People's Daily, at a scale that fits 2 CPU cores.

Every row pretrains the same model (L4/H256, `chinese-wwm`'s whole-word masking and optimiser, doc_sentences
input so every objective can read several sentences of one document) for the same steps with the same seed;
only the objectives differ. Each model is then scored two ways:

- held-out MLM accuracy, measured the same way for all (the plain whole-word-masked held-out instances of the
  MLM-only run, read through each exported masked-LM head), so an objective that changes its own inputs is
  not scored on them;
- Chinese review sentiment: fine-tuned 2 epochs on 4,000 reviews, test accuracy.

    python scripts/compare_objectives.py OUT [--steps 400] [--only mlm,sbo,...]

OUT/corpus and OUT/tokenizer are prepared first (scripts/prepare_peoples_daily.sh) unless present. A row whose
results exist is read, not rerun. Writes OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from distill_wordnet import finetune_row  # noqa: E402

from bertology import load  # noqa: E402
from bertology.datasets import write_task  # noqa: E402
from bertology.objectives import OBJECTIVES  # noqa: E402
from bertology.runs.pretrain import Pretraining, load_config  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402

#: row name -> (objectives with weights, objective options, extra overrides)
ROWS: dict[str, tuple[dict[str, float], dict, list[str]]] = {
    "mlm": ({"mlm": 1.0}, {}, []),
    "mlm + sbo (SpanBERT)": ({"mlm": 1.0, "sbo": 1.0}, {}, []),
    "mlm + word_order (StructBERT)": ({"mlm": 1.0, "word_order": 1.0}, {}, []),
    "mlm + token_document (ERNIE 2.0)": ({"mlm": 1.0, "token_document": 1.0}, {}, []),
    "mlm + sentence_reordering (ERNIE 2.0)": ({"mlm": 1.0, "sentence_reordering": 1.0}, {}, []),
    "mlm + infoword (InfoWord)": ({"mlm": 1.0, "infoword": 1.0}, {}, []),
    "mlm + simcse (SimCSE)": ({"mlm": 1.0, "simcse": 1.0}, {}, []),
    "mlm + pmlm (UniLMv2)": ({"mlm": 1.0, "pmlm": 1.0}, {}, ["model.type_vocab_size=3"]),
    "mlm + denoise (BART)": ({"mlm": 1.0, "denoise": 1.0}, {}, []),
}


def overrides(out: Path, run_dir: Path, steps: int, objectives: dict, options: dict, extra: list[str]) -> list[str]:
    return [f"corpus={out / 'corpus'}", f"tokenizer={out / 'tokenizer'}", f"run_dir={run_dir}",
            "data.format=doc_sentences", "data.short_seq_prob=0.0", f"objectives={json.dumps(objectives)}",
            f"objective_options={json.dumps(options)}", f"train.max_steps={steps}", f"train.eval_every={steps}",
            f"train.save_every={steps}", "train.progress=false", "train.plot=false",
            f"train.loss_weights={json.dumps(objectives)}", *extra]


@torch.no_grad()
def heldout_mlm_accuracy(model_dir: Path, reference: Pretraining, batches: int = 40) -> float:
    """Masked-token accuracy on the reference run's held-out instances and masks (identical for every row)."""
    model = load(model_dir).eval()
    if not hasattr(model, "mlm_head"):
        return float("nan")
    correct = total = 0
    data = reference.eval_set
    for start in range(0, min(len(data), batches * 32), 32):
        batch = reference.collator([data[i] for i in range(start, min(start + 32, len(data)))], epoch=0)
        labels = batch["labels"]
        out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], labels=labels)
        logits = out.logits if hasattr(out, "logits") else out.prediction_logits
        target = labels[labels != -100]
        correct += int((logits.argmax(-1) == target).sum())
        total += int(target.numel())
    return correct / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--train", type=int, default=4000, help="sentiment training reviews")
    parser.add_argument("--only", help="comma-separated objective names: rows whose objectives include one")
    args = parser.parse_args()
    out = args.out.resolve()
    if not (out / "corpus" / "meta.json").is_file():
        subprocess.run(["bash", str(Path(__file__).resolve().parent / "prepare_peoples_daily.sh"), str(out)], check=True)
    data = out / "data" / "sentiment"
    if not (data / "stats.json").is_file():
        write_task("chinese-sentiment", data, seed=0, limit={"train": args.train, "dev": 1000, "test": 2000})
    base = load_config("chinese-wwm", overrides(out, out / "reference", args.steps, {"mlm": 1.0}, {}, []))
    reference = Pretraining.build(base)
    wanted = set(args.only.split(",")) if args.only else None
    rows = []
    for name, (objectives, options, extra) in ROWS.items():
        missing = [o for o in objectives if o not in OBJECTIVES]
        if missing or (wanted and not wanted & set(objectives)):
            print(f"skip {name}: " + (f"objective {missing} not registered" if missing else "not asked for"))
            continue
        run_dir = out / "runs" / ("-".join(objectives))
        model_dir = run_dir / "model"
        if not (model_dir / "config.json").is_file():
            start = time.perf_counter()
            Pretraining.build(load_config("chinese-wwm", overrides(out, run_dir, args.steps, objectives, options,
                                                                   extra))).run()
            (run_dir / "seconds.txt").write_text(f"{time.perf_counter() - start:.0f}")
        seconds = float((run_dir / "seconds.txt").read_text())
        accuracy = heldout_mlm_accuracy(model_dir, reference)
        sentiment = finetune_row(run_dir / "sentiment", {
            "model": str(model_dir), "run_dir": str(run_dir / "sentiment"), "seed": 0,
            "tasks": {"sentiment": {"kind": "classification", "train": str(data / "train.jsonl"),
                                    "dev": str(data / "dev.jsonl"), "test": str(data / "test.jsonl"),
                                    "max_length": 128, "head": {"layers": "top", "pooling": "cls"}}},
            "train": {"epochs": 2, "batch_size": 32, "learning_rate": 1e-4, "warmup_ratio": 0.06, "bf16": True,
                      "progress": False, "plot": False, "log_every": 50}})
        rows.append([name, f"{accuracy:.4f}", f"{sentiment['test']:.4f}", f"{seconds / args.steps:.2f}"])
        print(format_table(["objectives", "held-out MLM accuracy", "sentiment test accuracy", "s/step"], rows))
    table = format_table(["objectives", "held-out MLM accuracy", "sentiment test accuracy", "s/step"], rows,
                         markdown=True)
    (out / "table.md").write_text(f"{args.steps} pretraining steps each, seed 42, L4/H256, whole-word masking, "
                                  f"doc_sentences; sentiment fine-tuned 2 epochs on {args.train} reviews.\n\n"
                                  f"{table}\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
