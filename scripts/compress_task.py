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
Finally every variant is timed again in this one process (`speed_pass`), so the table's speeds compare.
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
    from bertology.finetuning.session import load_for_inference

    session = load_for_inference(model, device="cpu")
    batches = session.batches(session.read(data / "train.jsonl", "train"), 32, limit=16)  # 512 examples
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


def speed_pass(model: str, out: Path, variants: dict[str, dict], folders: dict[str, Path]) -> None:
    """Every variant's latency (batch 1) and tokens/s (batch 32) timed again in this one process, twice in
    turn, medians: the commands' own reports time each variant beside its original in separate processes,
    and those numbers move by up to a third between runs. Replaces the variants' speed fields."""
    import statistics

    from bertology.compression.report import DEFAULT_SEQ, THROUGHPUT_BATCH
    from bertology.finetuning.session import load_for_inference
    from bertology.inference.onnx_runtime import OnnxModel

    calls, vocab, seq = {}, None, DEFAULT_SEQ
    for name, folder in folders.items():
        if folder.suffix == ".onnx":
            graph = OnnxModel(folder, threads=torch.get_num_threads())
            calls[name] = graph.speed_call()
            continue
        encoder = load_for_inference(folder, device="cpu").model.encoder.eval()
        vocab = vocab or encoder.config.vocab_size
        seq = min(seq, encoder.config.max_position_embeddings)
        calls[name] = lambda ids, e=encoder: e(ids, torch.ones_like(ids))
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for _ in range(2):
        for name, call in calls.items():
            one = measure_speed(call, 1, seq, vocab, repeats=5)
            many = measure_speed(call, THROUGHPUT_BATCH, seq, vocab, repeats=3)
            timings[name].append((one.latency_ms, many.tokens_per_s))
    for name, values in timings.items():
        variants[name]["latency_ms"] = statistics.median(v[0] for v in values)
        variants[name]["tokens_per_s"] = statistics.median(v[1] for v in values)
        variants[name]["threads"] = torch.get_num_threads()
        variants[name]["seq_len"] = seq


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
    pruned: dict[str, str] = {}
    for name, extra, label in (
            ("p-heads-importance", ["--heads", "0.5", *recover], f"half the heads (by importance) + {args.recover_epochs} epoch"),
            ("p-heads-random", ["--heads", "0.5", "--by", "random", *recover], f"half the heads (random) + {args.recover_epochs} epoch"),
            ("p-neurons", ["--neurons", "0.5", *recover], f"half the FFN neurons + {args.recover_epochs} epoch"),
            ("p-top2", ["--drop-layers", "top:2", *recover], f"top 2 layers dropped + {args.recover_epochs} epoch")):
        found = run(out, name, [*prune, str(out / name), "--data", dev, "--test", test, *extra])
        keep([v for v in found if v["name"] == "pruned"], label)
        pruned[name] = label

    folders = {"original (torch fp32)": Path(model), "torch dynamic int8": out / "q-dynamic" / "model",
               "torch dynamic int8 + int8 embeddings": out / "q-dynamic-emb" / "model",
               "torch static int8 (calibrated)": out / "q-static" / "model",
               f"Q8BERT QAT ({args.qat_epochs} epoch) + int8": out / "q-qat" / "model",
               "int8 embeddings only": out / "q-embeddings" / "model",
               "onnxruntime fp32": out / "onnx-dynamic" / "model.onnx",
               "onnxruntime dynamic int8": out / "onnx-dynamic" / "model-int8.onnx",
               "onnxruntime static int8": out / "onnx-static" / "model-int8.onnx"}
    folders.update({label: out / name / "model" for name, label in pruned.items()})
    speed_pass(model, out, variants, {k: v for k, v in folders.items() if k in variants})
    report = CompressionReport(reference="original (torch fp32)", title="Every compression method on one model")
    for v in variants.values():
        report.add(VariantMeasure.from_dict(v))
    report.write(out / "combined")
    lines = [f"Model: {model}; task data: {data}\n", report.render_markdown()]
    if not args.no_sweep:
        saved = out / "head_sweep.json"
        if saved.is_file():
            rows, speeds = (lambda d: (d["rows"], {int(k): v for k, v in d["speeds"].items()}))(
                json.loads(saved.read_text()))
        else:
            rows, speeds = head_sweep(Path(model), data, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
            saved.write_text(json.dumps({"rows": rows, "speeds": speeds}))
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
