"""Every compression method on one fine-tuned model and its task, through the commands users run, into one
table and one metric-against-speed plot. Writes OUT/tables.md, OUT/combined/ (report.md, results.json,
metric_vs_speed.png) and a run folder per variant.

    python scripts/compress_task.py MODEL DATA OUT [--qat-epochs 1] [--recover-epochs 1]

MODEL: a fine-tuned model folder (e.g. scripts/distill_wordnet.py's OUT/teacher/model); DATA: a folder with
train.jsonl, dev.jsonl and test.jsonl (e.g. `bertology task-data wordnet-lexnames DATA`). Variants: torch
dynamic int8 (with and without 8-bit embeddings), static int8 (calibrated on the training texts), Q8BERT
quantization-aware training then int8, 8-bit embeddings only; onnxruntime fp32, dynamic and static int8;
half the heads removed by importance and at random (each with recovery fine-tuning), half the feed-forward
neurons removed, the top two layers dropped. Then the head sweep: 10% ... 90% of the heads removed by
importance and at random, no recovery, scored on dev (importance measured on 512 training examples), and the
speed of the half-heads model at sequence 128 and 512. A variant whose results exist is read, not rerun.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from bertology.cli.main import main as cli
from bertology.compression.report import CompressionReport, VariantMeasure, measure_speed
from bertology.utils.table import format_table


def run(out: Path, name: str, argv: list[str]) -> list[dict]:
    """One command writing into OUT/name (skipped when its results exist); its report's variants."""
    folder = out / name
    if not (folder / "results.json").is_file():
        if folder.exists():  # an unfinished variant of this script's own: start it again
            shutil.rmtree(folder)
        code = cli(argv)
        if code != 0:
            sys.exit(f"{name}: the command failed ({code})")
    return json.loads((folder / "results.json").read_text())["variants"]


def head_sweep(model: Path, data: Path, fractions: list[float]) -> tuple[list[list[str]], dict]:
    """Dev accuracy with a fraction of the heads removed (by importance, at random), no recovery; and the
    speed of the model with half its heads removed at sequence 128 and 512."""
    from bertology.compression.pruning import (
        head_importance,
        plan_head_pruning,
        prune_heads,
        random_head_importance,
    )
    from bertology.finetuning.multitask import TaskCollate
    from bertology.finetuning.session import load_for_inference

    session = load_for_inference(model, device="cpu")
    train = session.read(data / "train.jsonl", "train").features["train"][:512]
    collate = TaskCollate(session.collate, session.name)
    batches = [collate(train[i:i + 32]) for i in range(0, len(train), 32)]
    dev = session.read(data / "dev.jsonl", "dev")
    importance = head_importance(session.model, batches)
    total = sum(len(importance.present(layer)) for layer in range(importance.num_layers))
    rows, speeds = [], {}
    base = session.evaluate(dev)["accuracy"]
    rows.append(["0%", "0", f"{base:.4f}", f"{base:.4f}"])
    for fraction in fractions:
        scores = []
        for ranking in (importance, random_head_importance(session.model, seed=0)):
            pruned = load_for_inference(model, device="cpu")
            prune_heads(pruned.model, plan_head_pruning(ranking, fraction))
            scores.append(pruned.evaluate(dev)["accuracy"])
            if fraction == 0.5 and ranking is importance:
                for seq, batch in ((128, 32), (512, 8)):
                    seq = min(seq, session.model.encoder.config.max_position_embeddings)
                    speeds[seq] = [measure_speed(lambda ids, m=m: m.encoder(ids, torch.ones_like(ids)), batch, seq,
                                                 session.model.encoder.config.vocab_size, repeats=3).tokens_per_s
                                   for m in (session.model, pruned.model)]
        rows.append([f"{100 * fraction:.0f}%", str(round(fraction * total)), f"{scores[0]:.4f}", f"{scores[1]:.4f}"])
    return rows, speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--recover-epochs", type=int, default=1)
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    out, model, data = args.out.resolve(), str(args.model.resolve()), args.data.resolve()
    out.mkdir(parents=True, exist_ok=True)
    test, train, dev = str(data / "test.jsonl"), str(data / "train.jsonl"), str(data / "dev.jsonl")
    variants: dict[str, dict] = {}

    def keep(found: list[dict], label: str | None = None, reference: bool = False) -> None:
        for v in found:
            if (v["name"] in ("original", "torch")) != reference:
                continue
            name = "original (torch fp32)" if reference else (label or v["name"])
            variants[name] = {**v, "name": name}

    def quantize(name: str, *extra: str) -> list[dict]:
        return run(out, name, ["quantize", model, str(out / name), "--test", test, *extra])

    found = quantize("q-dynamic", "--method", "dynamic")
    keep(found, reference=True)
    keep(found, "torch dynamic int8")
    keep(quantize("q-dynamic-emb", "--method", "dynamic", "--embeddings"), "torch dynamic int8 + int8 embeddings")
    keep(quantize("q-static", "--method", "static", "--calibration", train), "torch static int8 (calibrated)")
    keep(quantize("q-qat", "--method", "qat", "--train", train, "--epochs", str(args.qat_epochs)),
         f"Q8BERT QAT ({args.qat_epochs} epoch) + int8")
    keep(quantize("q-embeddings", "--method", "embeddings"), "int8 embeddings only")
    for mode in ("dynamic", "static"):
        extra = ["--calibration", train] if mode == "static" else []
        found = run(out, f"onnx-{mode}", ["export", model, str(out / f"onnx-{mode}"), "--test", test, "--int8", mode,
                                           *extra])
        for v in found:
            if v["name"] == "onnx fp32":
                variants["onnxruntime fp32"] = {**v, "name": "onnxruntime fp32"}
            elif v["name"] not in ("torch", "original"):
                variants[f"onnxruntime {mode} int8"] = {**v, "name": f"onnxruntime {mode} int8"}
    prune = ["prune", model]
    recover = ["--recover-epochs", str(args.recover_epochs), "--train", train]
    for name, extra, label in (
            ("p-heads-importance", ["--heads", "0.5", *recover], f"half the heads (by importance) + {args.recover_epochs} epoch"),
            ("p-heads-random", ["--heads", "0.5", "--by", "random", *recover], f"half the heads (random) + {args.recover_epochs} epoch"),
            ("p-neurons", ["--neurons", "0.5", *recover], f"half the FFN neurons + {args.recover_epochs} epoch"),
            ("p-top2", ["--drop-layers", "top:2", *recover], f"top 2 layers dropped + {args.recover_epochs} epoch")):
        found = run(out, name, [*prune, str(out / name), "--data", dev, "--test", test, *extra])
        keep([v for v in found if v["name"] == "pruned"], label)

    report = CompressionReport(reference="original (torch fp32)", title="Every compression method on one model")
    for v in variants.values():
        report.add(VariantMeasure.from_dict(v))
    report.write(out / "combined")
    lines = [f"Model: {model}; task data: {data}\n", report.render_markdown()]
    if not args.no_sweep:
        rows, speeds = head_sweep(Path(model), data, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
        sweep = format_table(["heads removed", "heads", "dev accuracy, by importance", "dev accuracy, random"], rows,
                             markdown=True)
        lines += ["\nHeads removed without recovery (dev accuracy):\n", sweep]
        for seq, (before, after) in sorted(speeds.items()):
            lines.append(f"\nHalf the heads removed, sequence {seq}: {after:,.0f} against {before:,.0f} tokens/s "
                         f"({after / before:.2f}x)")
        print(format_table(["heads removed", "heads", "by importance", "random"], rows))
    (out / "tables.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(report.render_terminal())


if __name__ == "__main__":
    main()
