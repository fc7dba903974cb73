"""The demo's report: plots (loss curves, accuracy against latency, probe accuracy per layer), report.md with
every table, and the summary table printed in the terminal."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ...utils.io import atomic_write
from ...utils.plot import pyplot, save_png
from ...utils.table import format_table
from .stages import DemoContext


def _curve(path: Path, key: str = "loss") -> tuple[list[int], list[float]]:
    steps, values = [], []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("split", "train") == "train" and key in row:
                steps.append(int(row["step"]))
                values.append(float(row[key]))
    return steps, values


def plot_losses(ctx: DemoContext, path: Path) -> str | None:
    plt = pyplot("the loss curves")
    if plt is None:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(*_curve(ctx.path("pretrain", "metrics.jsonl")), label="whole-word masked LM")
    left.set(title="pretraining (news and reviews)", xlabel="step", ylabel="training loss")
    for name, label in (("pretrained", "from the pretrained model"), ("random-init", "from random initialisation")):
        metrics = ctx.path("finetune", name, "metrics.jsonl")
        right.plot(*_curve(metrics), label=label)
    right.set(title="fine-tuning on review sentiment", xlabel="step", ylabel="training loss")
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    return save_png(figure, path)


def plot_tradeoff(rows: list[dict[str, Any]], path: Path) -> str | None:
    plt = pyplot("the accuracy-latency plot")
    if plt is None:
        return None
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for row in rows:
        axis.scatter(row["latency_ms"], row["accuracy"], s=40)
        axis.annotate(row["name"], (row["latency_ms"], row["accuracy"]), textcoords="offset points", xytext=(5, 4),
                      fontsize=8)
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    times = [row["latency_ms"] for row in rows]
    axis.set(xscale="log", xlabel="milliseconds per review (batch 1, log scale)", ylabel="test accuracy",
             title="review sentiment: accuracy against latency", xlim=(min(times) / 1.5, max(times) * 4))
    axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.grid(alpha=0.3)
    return save_png(figure, path)


def plot_probe(results: dict[str, list[dict[str, Any]]], path: Path) -> str | None:
    plt = pyplot("the probe plot")
    if plt is None:
        return None
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for name, label in (("pretrained", "pretrained"), ("random_init", "random initialisation")):
        rows = results.get(name, [])
        axis.plot([r["layer"] for r in rows], [r["accuracy"] for r in rows], marker="o", label=label)
    axis.set(xlabel="layer (0 = embeddings)", ylabel="part-of-speech accuracy (linear probe)",
             title="what each layer knows of part of speech")
    axis.legend()
    axis.grid(alpha=0.3)
    return save_png(figure, path)


def _rel(path: str | Path, base: Path) -> str:
    return os.path.relpath(path, base)


def chinese_rows(ctx: DemoContext) -> list[list[str]]:
    """The summary table: each sentiment model's accuracy, latency and size."""
    measured = ctx.results.get("measure", {}).get("variants", [])
    rows = []
    for row in measured:
        size = f"{row['size_bytes'] / 1e6:.1f}" if row.get("size_bytes") else "-"
        rows.append([row["name"], f"{row['accuracy']:.4f}", f"{row['latency_ms']:.2f}", size])
    return rows


def sentiment_verdicts(results: dict[str, Any]) -> list[str]:
    """Plain sentences on the sentiment models: pretrained against random init, and against the TF-IDF baseline."""
    tuned, base = results["finetune"], results.get("baseline")
    n = max(int(results.get("data", {}).get("sentiment", {}).get("test", 0) or 0), 1)
    a, b = tuned["pretrained"]["accuracy"], tuned["random_init"]["accuracy"]
    gap, two_se = a - b, 2 * math.sqrt(a * (1 - a) / n + b * (1 - b) / n)
    clearly = ("helps clearly" if gap > 0 else "hurts clearly") if abs(gap) > two_se else "no clear difference"
    said = [f"pretraining: {gap:+.4f} over the same model from random initialisation, {clearly} (two standard "
            f"errors on {n} test reviews: {two_se:.4f}; one seed: `bertology reproduce pretraining-helps` runs three)"]
    if base:
        beat = a > base["accuracy"]
        said.append(f"the fine-tuned model {'beats' if beat else 'does NOT beat'} the character n-gram TF-IDF + "
                    f"logistic regression baseline ({base['accuracy']:.4f} on the same training reviews)")
    return said


def probe_verdict(probe: dict[str, list[dict[str, Any]]]) -> str:
    """Pretrained against random weights on part of speech, best layer against best layer: where a short
    pretraining shows what it learnt even when the sentiment task does not (docs/demo.md)."""
    ours, theirs = (max(probe[k], key=lambda r: r["accuracy"]) for k in ("pretrained", "random_init"))
    gap = ours["accuracy"] - theirs["accuracy"]
    return (f"part of speech: the pretrained encoder {'beats' if gap > 0 else 'does NOT beat'} the same architecture "
            f"at random weights by {gap:+.4f} at their best layers ({ours['accuracy']:.4f} against "
            f"{theirs['accuracy']:.4f}; selectivity {ours['selectivity']:.3f} against {theirs['selectivity']:.3f})")


def write(ctx: DemoContext) -> Path:
    """Plots, report.md and the terminal summary from every stage result there is."""
    out, results = ctx.out, ctx.results
    figures = ctx.path("figures")
    lines = ["# bertology demo", "",
             f"The whole life of an encoder on real data, on {os.cpu_count()} CPU cores"
             f"{' (--quick: every stage at toy scale)' if ctx.quick else ''}. Stage results: `stages/*.json`.", ""]
    if "pretrain" in results:
        pre, data = results["pretrain"], results.get("data", {})
        lines += ["## A small Chinese BERT, pretrained and fine-tuned", "",
                  f"A {data.get('vocab_size', '?'):,}-token WordPiece vocabulary and a {pre['preset']} model, "
                  f"pretrained with whole-word masking (jieba words), masked LM alone, on {data.get('lines', 0):,} "
                  f"lines of People's Daily and {data.get('reviews', 0):,} unlabelled training reviews "
                  f"({data.get('tokens', 0):,} tokens) for {pre['steps']} steps. Held-out accuracy on the tokens "
                  f"the input hides: {pre['hidden_accuracy']:.4f}, against {pre['unigram_accuracy']:.4f} for always "
                  f"guessing the most frequent token (on every labelled token, including those left visible, which a "
                  f"model learns to copy first: {pre['mlm_accuracy']:.4f}).", ""]
        if plot_losses(ctx, figures / "losses.png"):
            lines += ["![loss curves](figures/losses.png)", ""]
    if "finetune" in results:
        tuned = results["finetune"]
        counts = results.get("data", {}).get("sentiment", {})
        lines += [f"Review sentiment ({counts.get('train', '?')} training, {counts.get('test', '?')} test reviews; "
                  f"majority class {tuned['majority']:.4f}):", ""]
        lines += [f"- {v}." for v in sentiment_verdicts(results)] + [""]
    if "measure" in results:
        measured = results["measure"]
        lines += ["### Every model variant: accuracy, latency, size", "",
                  f"Latency: median over {measured['texts']} test reviews classified one at a time through the "
                  f"inference session `bertology predict` and `serve` use, {measured['threads']} threads.", "",
                  format_table(["model", "test accuracy", "ms per review", "size MB"], chinese_rows(ctx),
                               markdown=True), ""]
        if plot_tradeoff(measured["variants"], figures / "tradeoff.png"):
            lines += ["![accuracy against latency](figures/tradeoff.png)", ""]
    if "distill" in results:
        d = results["distill"]
        lines += [f"The TinyBERT student has {d['parameters']:,} parameters against the teacher's "
                  f"{d['teacher_parameters']:,} and keeps {d['accuracy'] / d['teacher_accuracy']:.1%} of its accuracy "
                  f"(report: `{_rel(ctx.path('distill', 'report.md'), out)}`).", ""]
    if "probe" in results:
        probe = results["probe"]
        best = max(probe["pretrained"], key=lambda r: r["accuracy"])
        lines += ["## Inside the model", "",
                  f"A linear part-of-speech probe per layer (People's Daily tags, a control task beside it): best at "
                  f"layer {best['layer']} ({best['accuracy']:.4f}, selectivity {best['selectivity']:.3f}).", "",
                  f"- {probe_verdict(probe)}.", ""]
        if plot_probe(probe, figures / "probe.png"):
            lines += ["![probe accuracy per layer](figures/probe.png)", ""]
    if "attention" in results and Path(results["attention"]["heatmap"]).is_file():
        lines += ["One attention head of each behaviour group (see `attention/report.md`):", "",
                  f"![attention heads]({_rel(results['attention']['heatmap'], out)})", ""]
    if "english" in results:
        eng = results["english"]
        rows = [[m, f"{eng[m]['accuracy']:.4f}", f"{eng[m]['macro_f1']:.4f}", f"{eng[m]['parameters']:,}",
                 f"{eng[m]['train_seconds']:.0f}"] for m in ("full", "lora")]
        lines += ["## English: the real MiniLM on WordNet glosses", "",
                  f"all-MiniLM-L6-v2 fine-tuned on {eng['train']:,} glosses for {eng['epochs']} epoch(s) to name "
                  f"their lexicographer file ({eng['classes']} classes):", "",
                  format_table(["method", "accuracy", "macro F1", "trainable parameters", "seconds"], rows,
                               markdown=True), "",
                  f"New definitions labelled by the {eng['best']} model:", "",
                  format_table(["definition", "predicted", "expected"],
                               [[g["text"], g["predicted"], g["expected"]] for g in eng["new_glosses"]], markdown=True),
                  ""]
    timings = [[name, f"{r.get('seconds', 0):.0f}"] for name, r in results.items()]
    lines += ["## Time per stage", "", format_table(["stage", "seconds"], timings, markdown=True), ""]
    report = out / "report.md"
    with atomic_write(report) as handle:
        handle.write("\n".join(lines))
    with atomic_write(out / "results.json") as handle:
        json.dump(results, handle, indent=2)
    return report


def print_summary(ctx: DemoContext, report: Path) -> None:
    results = ctx.results
    print("\n== summary")
    if "measure" in results:
        print("\nChinese review sentiment, every model variant:")
        print(format_table(["model", "test accuracy", "ms per review", "size MB"], chinese_rows(ctx)))
        print(f"majority class {results['finetune']['majority']:.4f}")
    said = [*(sentiment_verdicts(results) if "finetune" in results else []),
            *([probe_verdict(results["probe"])] if "probe" in results else [])]
    if said:
        print("\nwhat it shows:\n" + "\n".join(f"- {line}" for line in said))
    if "english" in results:
        eng = results["english"]
        print(f"\nEnglish, MiniLM on WordNet glosses: full tuning {eng['full']['accuracy']:.4f}, "
              f"LoRA {eng['lora']['accuracy']:.4f}")
    total = sum(r.get("seconds", 0) for r in results.values())
    print(f"\nreport: {report} (plots in {ctx.path('figures')}); stages took {total:.0f} s")
