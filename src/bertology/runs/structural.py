"""`bertology structural`: Hewitt and Manning's structural probes per layer on a CoNLL-U file, into a report.

Reads dependency trees, splits them by sentence (80/10/10, seeded), computes every layer's word
representations once (cached in the output folder; the same cache `bertology probe` keeps), trains the
distance probe and the depth probe on each layer and scores them on the test sentences: UUAS and distance
Spearman, root accuracy and depth Spearman. Writes report.md, results.json and structural.png.

A sentence whose words do not all fit in `max_length` tokens is left out, not cut: half a tree is not a
tree, and its distances would be wrong.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..analysis.structural import PUNCTUATION_TAGS, probe_layers, uuas
from ..analysis.trees import read_conllu
from ..errors import DataError
from ..utils.io import atomic_write
from ..utils.plot import pyplot, save_png
from ..utils.table import format_table
from .probe import cached_representations, select_layers

KINDS = ("distance", "depth")


@dataclass
class StructuralRun:
    model: str
    data: str
    out: str
    kinds: tuple[str, ...] = KINDS
    sentences: int = 2000
    pooling: str = "mean"
    #: rank of the probe's map B (None: full rank, as wide as the model)
    rank: int | None = None
    epochs: int = 40
    random_init: bool = False
    seed: int = 0
    max_length: int = 128
    layers: list[int] | None = None


def _splits(count: int, seed: int) -> dict[str, list[int]]:
    order = list(range(count))
    random.Random(seed).shuffle(order)
    cut1, cut2 = int(0.8 * count), int(0.9 * count)
    return {"train": sorted(order[:cut1]), "dev": sorted(order[cut1:cut2]), "test": sorted(order[cut2:])}


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> str | None:
    """Two panels against the layer: UUAS and distance Spearman; root accuracy and depth Spearman."""
    plt = pyplot("structural plot")
    if plt is None:
        return None
    panels = [("distance probe", ("uuas", "dspr")), ("depth probe", ("root_acc", "nspr"))]
    panels = [(name, keys) for name, keys in panels if any(k in rows[0] for k in keys)]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    labels = {"uuas": "UUAS", "dspr": "distance Spearman", "root_acc": "root accuracy", "nspr": "depth Spearman"}
    for axis, (name, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            axis.plot([r["layer"] for r in rows], [r[key] for r in rows], marker="o", label=labels[key])
        axis.set_xlabel("layer (0 = embeddings)")
        axis.set_title(name)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_png(figure, path, dpi=120)
    return str(path)


def structural(run: StructuralRun) -> dict[str, Any]:
    """Train and score the structural probes on every layer; returns the summary written to results.json."""
    out = Path(run.out)
    trees = read_conllu(run.data)[:run.sentences]
    if len(trees) < 10:
        raise DataError(f"{run.data}: {len(trees)} sentences; structural probes need at least 10 (80/10/10 split)")
    reps = cached_representations(run.model, [list(t.words) for t in trees], out, run.pooling, run.random_init,
                                  run.seed, run.max_length, key=[run.data, "trees", run.sentences])
    layers = select_layers(reps, run.layers, run.model)
    whole = [i for i, t in enumerate(trees) if reps.kept[i] == len(t)]
    dropped = len(trees) - len(whole)
    splits = {name: [whole[i] for i in idx] for name, idx in _splits(len(whole), run.seed).items()}
    if not splits["test"] or not splits["dev"]:
        raise DataError(f"{run.data}: only {len(whole)} sentences fit in {run.max_length} tokens; need at least 10")
    order = splits["train"] + splits["dev"] + splits["test"]
    per_layer = [[reps.sentence(k, i) for i in order] for k in layers]
    rows: dict[int, dict[str, Any]] = {k: {"layer": k} for k in layers}
    for kind in run.kinds:
        results = probe_layers(per_layer, [trees[i] for i in splits["train"]], [trees[i] for i in splits["dev"]],
                               kind, trees_test=[trees[i] for i in splits["test"]], rank=run.rank,
                               epochs=run.epochs, seed=run.seed)
        for result, k in zip(results, layers, strict=True):
            rows[k].update(result.metrics)
            rows[k][f"{kind}_dev_loss"] = result.trained.dev_loss
    table_rows = list(rows.values())
    # What a probe must beat: the tree that links each word to the next (Hewitt and Manning's linear baseline)
    test_trees = [trees[i] for i in splits["test"]]
    chain = [torch.cdist(torch.arange(len(t), dtype=torch.float)[:, None], torch.arange(len(t), dtype=torch.float)[:, None])
             for t in test_trees]
    chain_uuas = uuas(chain, test_trees, PUNCTUATION_TAGS)
    keys = [key for key in ("uuas", "dspr", "root_acc", "nspr") if key in table_rows[0]]
    headers = {"uuas": "UUAS", "dspr": "distance Spearman", "root_acc": "root accuracy", "nspr": "depth Spearman"}

    def table(markdown: bool) -> str:
        return format_table(["layer", *(headers[k] for k in keys)],
                            [[str(r["layer"]), *(f"{r[k]:.4f}" for k in keys)] for r in table_rows], markdown=markdown)

    summary: dict[str, Any] = {"model": run.model, "data": run.data, "random_init": run.random_init,
                               "pooling": run.pooling, "rank": run.rank, "sentences": len(whole),
                               "left_out_too_long": dropped, "split": {k: len(v) for k, v in splits.items()},
                               "linear_chain_uuas": chain_uuas, "layers": table_rows}
    for key in keys:
        best = max(table_rows, key=lambda r: r[key])
        summary[f"best_{key}"] = {"layer": best["layer"], "value": best[key]}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "results.json") as handle:
        json.dump(summary, handle, indent=2)
    picture = plot(table_rows, out / "structural.png",
                   f"structural probes{' (random init)' if run.random_init else ''}")
    lines = ["# Structural probes per layer", "",
             f"Model {run.model}{' (random initialisation)' if run.random_init else ''}; trees {run.data} "
             f"({len(whole)} sentences: {len(splits['train'])} train, {len(splits['dev'])} dev, "
             f"{len(splits['test'])} test{f'; {dropped} longer than {run.max_length} tokens left out' if dropped else ''}"
             f"); each word the {run.pooling} of its pieces; probe rank {run.rank or 'full'}. Scores on the test "
             "sentences (Hewitt and Manning 2019: UUAS without punctuation, Spearman averaged per sentence length "
             "over lengths 5-50).", "", table(True), "",
             f"Baseline: the chain linking each word to the next has UUAS {chain_uuas:.4f} on the same sentences.", ""]
    if picture:
        lines.append("![structural probes per layer](structural.png)")
    with atomic_write(out / "report.md") as handle:
        handle.write("\n".join(lines) + "\n")
    print(table(False))
    print(f"linear chain baseline: UUAS {chain_uuas:.4f}")
    return summary


__all__ = ["KINDS", "StructuralRun", "structural"]
