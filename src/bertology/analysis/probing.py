"""Probing classifiers on frozen representations, with control tasks so that accuracy means something.

A probe (linear, or an MLP with one hidden layer; registry `PROBES`) learns a word's label (part of speech,
entity tag, any column) from one layer's representation. Hewitt and Liang (2019): a probe expressive enough
learns any labelling, so each result is paired with a *control task*: every word type gets a label drawn at
random from the training labels' distribution (fixed per type), and the same probe is trained on it.
**Selectivity** = task accuracy - control accuracy; a probe that reads the property from the
representation, rather than memorising word types, is accurate and selective. `probe_layers` runs both for
every layer and returns a per-layer table.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..utils.plot import pyplot, save_png
from ..utils.registry import Registry
from ..utils.table import format_table


@dataclass
class ProbeOptions:
    #: MLP hidden width (mlp probes only)
    hidden: int = 256
    epochs: int = 20
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    #: epochs without a better dev accuracy before stopping
    patience: int = 3
    seed: int = 0


PROBES: Registry[type[nn.Module]] = Registry("probe")


@PROBES.register("linear", options=ProbeOptions)
class LinearProbe(nn.Module):
    def __init__(self, width: int, classes: int, options: ProbeOptions) -> None:
        super().__init__()
        self.out = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x)


@PROBES.register("mlp", options=ProbeOptions)
class MLPProbe(nn.Module):
    def __init__(self, width: int, classes: int, options: ProbeOptions) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, options.hidden), nn.ReLU(), nn.Linear(options.hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_probe(kind: str, train_x: torch.Tensor, train_y: torch.Tensor, dev_x: torch.Tensor, dev_y: torch.Tensor,
                classes: int, options: ProbeOptions | None = None) -> tuple[nn.Module, float]:
    """A probe of `kind` trained with Adam on cross-entropy, keeping the epoch with the best dev accuracy;
    returns it and that accuracy. Deterministic for `options.seed`."""
    options = options or ProbeOptions()
    entry = PROBES.entry(kind)
    generator = torch.Generator().manual_seed(options.seed)
    with torch.random.fork_rng():
        torch.manual_seed(options.seed)
        probe = entry.obj(train_x.shape[1], classes, options)
    optimizer = torch.optim.Adam(probe.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    best, best_state, waited = -1.0, None, 0
    for _ in range(options.epochs):
        probe.train()
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), options.batch_size):
            rows = order[start:start + options.batch_size]
            loss = F.cross_entropy(probe(train_x[rows]), train_y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        score = accuracy(probe, dev_x, dev_y)
        if score > best:
            best, best_state, waited = score, {k: v.clone() for k, v in probe.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= options.patience:
                break
    probe.load_state_dict(best_state)
    return probe.eval(), best


@torch.no_grad()
def accuracy(probe: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    probe.eval()
    return float((probe(x).argmax(-1) == y).float().mean()) if len(y) else 0.0


def control_labels(words: Sequence[str], train_labels: Sequence[str], seed: int = 0,
                   vocabulary: Sequence[str] | None = None) -> dict[str, str]:
    """Hewitt and Liang's control task: each word type gets a label drawn from the empirical distribution of
    the training labels, once, so the same word always has the same control label. `vocabulary`: every type
    that needs one (train, dev and test words), in a fixed order for reproducibility."""
    counts = Counter(train_labels)
    names, weights = zip(*sorted(counts.items()), strict=True)
    rng = random.Random(seed)
    types = sorted(set(vocabulary if vocabulary is not None else words))
    return {word: rng.choices(names, weights=weights)[0] for word in types}


def selectivity(task_accuracy: float, control_accuracy: float) -> float:
    """Hewitt and Liang's selectivity: how much more the probe gets right on the task than on the control."""
    return task_accuracy - control_accuracy


@dataclass
class LayerResult:
    layer: int
    accuracy: float
    control_accuracy: float
    majority: float
    extra: dict = field(default_factory=dict)

    @property
    def selectivity(self) -> float:
        return selectivity(self.accuracy, self.control_accuracy)


def probe_layers(layers: Sequence[torch.Tensor], words: Sequence[str], labels: Sequence[str],
                 splits: Sequence[str], kind: str = "linear", options: ProbeOptions | None = None,
                 control: bool = True) -> list[LayerResult]:
    """Probe every layer for `labels` (one per row of each layer tensor, `words` its word form, `splits`
    "train"/"dev"/"test" per row); test accuracy, control-task test accuracy and the majority baseline."""
    if not (len(words) == len(labels) == len(splits) == len(layers[0])):
        raise ConfigError(f"probe: {len(layers[0])} representations but {len(words)} words, {len(labels)} labels, "
                          f"{len(splits)} split marks")
    options = options or ProbeOptions()
    index = {s: torch.tensor([i for i, x in enumerate(splits) if x == s], dtype=torch.long)
             for s in ("train", "dev", "test")}
    if len(index["train"]) == 0 or len(index["test"]) == 0:
        raise ConfigError("probe: needs train and test rows (dev defaults to test when absent)")
    if len(index["dev"]) == 0:
        index["dev"] = index["test"]
    names = sorted(set(labels))
    ids = torch.tensor([names.index(label) for label in labels])
    train_labels = [labels[i] for i in index["train"].tolist()]
    majority_label = Counter(train_labels).most_common(1)[0][0]
    majority = float((ids[index["test"]] == names.index(majority_label)).float().mean())
    control_ids = None
    if control:
        mapping = control_labels(words, train_labels, options.seed, vocabulary=words)
        control_ids = torch.tensor([names.index(mapping[w]) for w in words])
    results = []
    for layer, x in enumerate(layers):
        x = x.float()
        probe, _ = train_probe(kind, x[index["train"]], ids[index["train"]], x[index["dev"]], ids[index["dev"]],
                               len(names), options)
        task = accuracy(probe, x[index["test"]], ids[index["test"]])
        ctrl = float("nan")
        if control_ids is not None:
            cprobe, _ = train_probe(kind, x[index["train"]], control_ids[index["train"]], x[index["dev"]],
                                    control_ids[index["dev"]], len(names), options)
            ctrl = accuracy(cprobe, x[index["test"]], control_ids[index["test"]])
        results.append(LayerResult(layer, task, ctrl, majority))
    return results


def results_table(results: Sequence[LayerResult], markdown: bool = False) -> str:
    rows = [[str(r.layer), f"{r.accuracy:.4f}", f"{r.control_accuracy:.4f}", f"{r.selectivity:.4f}",
             f"{r.majority:.4f}"] for r in results]
    return format_table(["layer", "accuracy", "control accuracy", "selectivity", "majority"], rows, markdown=markdown)


def plot_results(results: Sequence[LayerResult], path, title: str = "probe accuracy per layer") -> str | None:
    """A PNG of accuracy, control accuracy and selectivity against the layer (None without matplotlib)."""
    plt = pyplot("probe plot")
    if plt is None:
        return None
    layers = [r.layer for r in results]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(layers, [r.accuracy for r in results], marker="o", label="task accuracy")
    axis.plot(layers, [r.control_accuracy for r in results], marker="s", label="control accuracy")
    axis.plot(layers, [r.selectivity for r in results], marker="^", label="selectivity")
    axis.axhline(results[0].majority, color="grey", linestyle="--", label="majority label")
    axis.set_xlabel("layer (0 = embeddings)")
    axis.set_ylabel("test accuracy")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    save_png(figure, path, dpi=120)
    return str(path)


__all__ = ["PROBES", "LayerResult", "LinearProbe", "MLPProbe", "ProbeOptions", "accuracy", "control_labels",
           "plot_results", "probe_layers", "results_table", "selectivity", "train_probe"]
