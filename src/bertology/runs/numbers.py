"""`bertology numbers`: how a model's tokenizer splits numbers and whether its layers hold their magnitude.

Samples distinct integers log-uniformly up to a maximum (seeded), counts the word pieces of each per digit
count, and fits the ridge magnitude probe of `analysis/numbers.py` on each layer (80/20 split of the
numbers). Writes report.md, results.json and numbers.png (R² and decoding accuracy per layer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.numbers import magnitude_probe, piece_splits, results_table, sample_numbers, splits_table
from ..errors import ConfigError
from ..utils.io import atomic_write
from ..utils.plot import pyplot, save_png
from .probe import load_encoder, load_folder_tokenizer


@dataclass
class NumbersRun:
    model: str
    out: str
    count: int = 1000
    maximum: int = 10**6
    template: str = "there are {} of them"
    random_init: bool = False
    alpha: float = 1.0
    seed: int = 0


def _plot(results, path: Path, title: str) -> str | None:
    plt = pyplot("numbers plot")
    if plt is None:
        return None
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([r.layer for r in results], [r.r2 for r in results], marker="o", label="R² of log10(n+1)")
    axis.plot([r.layer for r in results], [r.within_10 for r in results], marker="s", label="decoded within 10%")
    axis.set_xlabel("layer (0 = embeddings)")
    axis.set_ylim(min(0.0, *(r.r2 for r in results)), 1.0)
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    save_png(figure, path, dpi=120)
    return str(path)


def numbers(run: NumbersRun) -> dict[str, Any]:
    """Piece splits and the per-layer magnitude probe; returns the summary written to results.json."""
    if run.template.split().count("{}") != 1:
        raise ConfigError(f"--template {run.template!r}: needs exactly one {{}} standing alone as a word, where the "
                          "number goes")
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    values = sample_numbers(run.count, run.maximum, run.seed)
    tokenizer = load_folder_tokenizer(run.model)
    encoder = load_encoder(run.model, run.random_init, run.seed)
    splits = piece_splits(tokenizer, values)
    results = magnitude_probe(encoder, tokenizer, values, run.template, seed=run.seed, alpha=run.alpha)
    best = max(results, key=lambda r: r.r2)
    summary = {"model": run.model, "random_init": run.random_init, "numbers": len(values), "maximum": run.maximum,
               "template": run.template,
               "splits": {str(d): dict(sorted(c.items())) for d, c in splits.items()},
               "layers": [r.__dict__ for r in results], "best_layer": best.layer, "best_r2": best.r2}
    with atomic_write(out / "results.json") as handle:
        json.dump(summary, handle, indent=2)
    picture = _plot(results, out / "numbers.png", f"number magnitude per layer{' (random init)' if run.random_init else ''}")
    lines = ["# Numbers", "", f"Model {run.model}{' (random initialisation)' if run.random_init else ''}; "
             f"{len(values)} distinct integers, log-uniform in 0..{run.maximum} (seed {run.seed}), written in digits.",
             "", "## Word pieces per number", "", splits_table(splits, markdown=True), "",
             "## Magnitude probe", "", f"Each number in the carrier {run.template!r}, represented by the mean of its "
             "pieces; a ridge regression to log10(n + 1) per layer on 80% of the numbers, scored on the rest.", "",
             results_table(results, markdown=True), ""]
    if picture:
        lines.append("![magnitude probe per layer](numbers.png)")
    with atomic_write(out / "report.md") as handle:
        handle.write("\n".join(lines) + "\n")
    print(splits_table(splits))
    print(results_table(results))
    return summary


__all__ = ["NumbersRun", "numbers"]
