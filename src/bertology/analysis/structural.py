"""Structural probes (Hewitt and Manning 2019, "A Structural Probe for Finding Syntax in Word Representations").

A distance probe learns a linear map B under which squared distances between word vectors, ||B(h_i - h_j)||^2,
match path lengths in the dependency tree; a depth probe learns B with ||B h_i||^2 matching each word's depth.
If a low-rank B does this well on held-out sentences, the layer encodes the tree (up to a linear map).

Metrics follow the paper: UUAS (share of gold undirected edges found by the minimum spanning tree over the
predicted distances), distance Spearman (DSpr.), root accuracy and depth Spearman (NSpr.). The Spearman
scores are averaged per sentence length and then macro-averaged over lengths 5-50, so that the many short
sentences do not dominate. The minimum spanning tree (Prim) and Spearman's rho (ties get the mean rank) are
written here, so the library needs no scipy.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from .trees import Sentence, check_heads, tree_depths, tree_distances

__all__ = ["LENGTHS", "PUNCTUATION_TAGS", "DepthProbe", "DistanceProbe", "ProbeResult", "TrainedProbe", "depth_spearman",
           "distance_spearman", "minimum_spanning_tree", "probe_layers", "root_accuracy", "spearman",
           "train_probe", "uuas"]

#: Hewitt and Manning's punctuation (Penn Treebank XPOS tags), plus UD's UPOS tag PUNCT
PUNCTUATION_TAGS = frozenset({"''", ",", ".", ":", "``", "-LRB-", "-RRB-", "PUNCT"})

#: sentence lengths the Spearman scores are macro-averaged over, as in the paper
LENGTHS = (5, 50)

Kind = Literal["distance", "depth"]
Tree = Sentence | Sequence[int]


# --- probes ---------------------------------------------------------------------------------------------


class _Probe(nn.Module):
    def __init__(self, hidden: int, rank: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        rank = hidden if rank is None else rank
        if hidden < 1 or rank < 1:
            raise ConfigError(f"a structural probe needs positive hidden size and rank, got {hidden} and {rank}")
        self.hidden, self.rank = hidden, rank
        #: B, stored as (hidden, rank) so that B h is `h @ proj`; the paper's uniform(-0.05, 0.05) start
        self.proj = nn.Parameter(torch.empty(hidden, rank).uniform_(-0.05, 0.05, generator=generator))


class DistanceProbe(_Probe):
    """Predicted squared distance ||B(h_i - h_j)||^2 between every two words of a sentence."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(..., n, hidden) -> (..., n, n)."""
        t = h @ self.proj
        # |t_i|^2 + |t_j|^2 - 2 t_i.t_j: memory n^2 per sentence, not n^2 * rank as with explicit differences
        sq = t.pow(2).sum(-1)
        d = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * t @ t.transpose(-1, -2)).clamp_min(0)
        n = t.shape[-2]
        return d.masked_fill(torch.eye(n, dtype=torch.bool, device=t.device), 0.0)


class DepthProbe(_Probe):
    """Predicted squared depth ||B h_i||^2 of every word."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(..., n, hidden) -> (..., n)."""
        return (h @ self.proj).pow(2).sum(-1)


# --- metrics --------------------------------------------------------------------------------------------


def _heads(tree: Tree) -> list[int]:
    return list(tree.heads) if isinstance(tree, Sentence) else [int(h) for h in tree]


def _excluded(tree: Tree, exclude_tags: Iterable[str] | None) -> set[int]:
    """0-based words whose UPOS or XPOS tag is in `exclude_tags` (none for a bare list of heads)."""
    if not exclude_tags or not isinstance(tree, Sentence):
        return set()
    tags = set(exclude_tags)
    return {i for i in range(len(tree)) if tree.upos[i] in tags or tree.xpos[i] in tags}


def _numpy(x: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def minimum_spanning_tree(distances: torch.Tensor | np.ndarray, nodes: Sequence[int] | None = None
                          ) -> list[tuple[int, int]]:
    """Prim's MST over a symmetric (n, n) distance matrix, as sorted (i, j) pairs with i < j.

    `nodes` restricts the tree to those words (punctuation left out); ties go to the lower index, so the
    result is deterministic.
    """
    d = _numpy(distances)
    keep = list(range(d.shape[0])) if nodes is None else sorted(nodes)
    if len(keep) < 2:
        return []
    sub = d[np.ix_(keep, keep)]
    sub = (sub + sub.T) / 2  # a probe's matrix is symmetric up to rounding; Prim needs one value per edge
    m = len(keep)
    in_tree = np.zeros(m, dtype=bool)
    best = np.full(m, np.inf)
    parent = np.full(m, -1)
    best[0] = 0.0
    edges: list[tuple[int, int]] = []
    for _ in range(m):
        candidates = np.where(in_tree, np.inf, best)
        k = int(np.argmin(candidates))
        in_tree[k] = True
        if parent[k] >= 0:
            a, b = keep[parent[k]], keep[k]
            edges.append((min(a, b), max(a, b)))
        closer = ~in_tree & (sub[k] < best)
        best[closer] = sub[k][closer]
        parent[closer] = k
    return sorted(edges)


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2  # mean of ranks start+1 .. end
            start = end
    return ranks


def spearman(x: torch.Tensor | np.ndarray | Sequence[float], y: torch.Tensor | np.ndarray | Sequence[float]
             ) -> float:
    """Spearman's rho: the Pearson correlation of the ranks (ties averaged); nan if either side is constant."""
    a, b = _numpy(x).ravel(), _numpy(y).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman needs two sequences of one length, got {a.shape[0]} and {b.shape[0]}")
    if len(a) < 2:
        return math.nan
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum()) / denominator if denominator > 0 else math.nan


def _check(predictions: Sequence, trees: Sequence[Tree], square: bool) -> None:
    if len(predictions) != len(trees):
        raise ValueError(f"{len(predictions)} predictions for {len(trees)} trees")
    for k, (p, tree) in enumerate(zip(predictions, trees, strict=True)):
        n = len(_heads(tree))
        shape = tuple(p.shape)
        if shape != ((n, n) if square else (n,)):
            where = tree.where if isinstance(tree, Sentence) else ""
            raise ValueError(f"{where}sentence {k} has {n} words but its prediction has shape {shape}")


def _macro_by_length(by_length: dict[int, list[float]], lengths: tuple[int, int]) -> float:
    """Mean per sentence length, then the mean over lengths in `lengths` (inclusive); nan when none is there."""
    low, high = lengths
    means = [float(np.mean(v)) for n, v in sorted(by_length.items()) if low <= n <= high and v]
    return float(np.mean(means)) if means else math.nan


def uuas(predicted: Sequence[torch.Tensor | np.ndarray], trees: Sequence[Tree],
         exclude_tags: Iterable[str] | None = None) -> float:
    """Undirected unlabelled attachment score of the MSTs over predicted distances, over the whole corpus.

    Words tagged (UPOS or XPOS) with one of `exclude_tags` are left out of both the predicted and the gold
    tree, as the paper leaves out punctuation; pass `PUNCTUATION_TAGS` for that. nan with no gold edge.
    """
    _check(predicted, trees, square=True)
    correct = total = 0
    for p, tree in zip(predicted, trees, strict=True):
        heads = _heads(tree)
        skip = _excluded(tree, exclude_tags)
        gold = {(min(i, h - 1), max(i, h - 1)) for i, h in enumerate(heads)
                if h and i not in skip and h - 1 not in skip}
        keep = [i for i in range(len(heads)) if i not in skip]
        correct += len(gold & set(minimum_spanning_tree(p, keep)))
        total += len(gold)
    return correct / total if total else math.nan


def distance_spearman(predicted: Sequence[torch.Tensor | np.ndarray], trees: Sequence[Tree],
                      lengths: tuple[int, int] = LENGTHS, include_self: bool = False) -> float:
    """DSpr.: per word, Spearman between its predicted and gold distances to the other words; averaged per
    sentence, per sentence length, then over lengths in `lengths`.

    `include_self=True` keeps each word's zero distance to itself in its row, as Hewitt's released code does.
    A word whose gold distances are all equal (the centre of a star) has no defined correlation and is skipped.
    """
    _check(predicted, trees, square=True)
    by_length: dict[int, list[float]] = defaultdict(list)
    for p, tree in zip(predicted, trees, strict=True):
        gold = tree_distances(_heads(tree))
        pred = _numpy(p)
        n = len(gold)
        rhos = []
        for i in range(n):
            cols = [j for j in range(n) if include_self or j != i]
            rho = spearman(pred[i, cols], gold[i, cols])
            if not math.isnan(rho):
                rhos.append(rho)
        if rhos:
            by_length[n].append(float(np.mean(rhos)))
    return _macro_by_length(by_length, lengths)


def root_accuracy(predicted: Sequence[torch.Tensor | np.ndarray], trees: Sequence[Tree],
                  exclude_tags: Iterable[str] | None = None) -> float:
    """Share of sentences whose shallowest predicted word (excluded tags left out) is the gold root."""
    _check(predicted, trees, square=False)
    hits = counted = 0
    for p, tree in zip(predicted, trees, strict=True):
        heads = _heads(tree)
        skip = _excluded(tree, exclude_tags)
        keep = [i for i in range(len(heads)) if i not in skip]
        if not keep:
            continue
        pred = _numpy(p)
        guess = keep[int(np.argmin(pred[keep]))]
        hits += guess == heads.index(0)
        counted += 1
    return hits / counted if counted else math.nan


def depth_spearman(predicted: Sequence[torch.Tensor | np.ndarray], trees: Sequence[Tree],
                   lengths: tuple[int, int] = LENGTHS) -> float:
    """NSpr.: per sentence, Spearman between predicted and gold depths; averaged per length, then over lengths."""
    _check(predicted, trees, square=False)
    by_length: dict[int, list[float]] = defaultdict(list)
    for p, tree in zip(predicted, trees, strict=True):
        heads = _heads(tree)
        rho = spearman(p, tree_depths(heads))
        if not math.isnan(rho):
            by_length[len(heads)].append(rho)
    return _macro_by_length(by_length, lengths)


# --- training -------------------------------------------------------------------------------------------


@dataclass
class TrainedProbe:
    """A probe with its best dev loss (L1, normalised as in training) and when early stopping found it."""

    probe: DistanceProbe | DepthProbe
    kind: str
    dev_loss: float
    best_epoch: int
    epochs: int
    train_losses: list[float] = field(default_factory=list)
    dev_losses: list[float] = field(default_factory=list)

    def predict(self, representations: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Predicted squared distances (n, n) or depths (n,) per sentence."""
        self.probe.eval()
        with torch.no_grad():
            return [self.probe(h.to(self.probe.proj).float()) for h in representations]


def _targets(trees: Sequence[Tree], kind: str) -> list[torch.Tensor]:
    fn = tree_distances if kind == "distance" else tree_depths
    return [torch.from_numpy(fn(_heads(t))).float() for t in trees]


def _check_representations(representations: Sequence[torch.Tensor], trees: Sequence[Tree], what: str) -> None:
    if len(representations) != len(trees):
        raise DataError(f"{what}: {len(representations)} sentence representations for {len(trees)} trees")
    hidden = None
    for k, (h, tree) in enumerate(zip(representations, trees, strict=True)):
        heads = _heads(tree)
        check_heads(heads, (tree.where.rstrip(": ") if isinstance(tree, Sentence) else "") or f"{what} tree {k}")
        if h.dim() != 2 or h.shape[0] != len(heads):
            where = tree.where if isinstance(tree, Sentence) else ""
            raise DataError(f"{where}{what} sentence {k} has {len(heads)} words but its representation has shape "
                            f"{tuple(h.shape)}; one (n_words, hidden) row per word is needed")
        if hidden is None:
            hidden = h.shape[1]
        elif h.shape[1] != hidden:
            raise DataError(f"{what} sentence {k} has hidden size {h.shape[1]}, the first has {hidden}")


class _Split:
    """A split's vectors and gold targets, padded per batch (never all at once: a treebank padded to its longest
    sentence would not fit in memory)."""

    def __init__(self, reps: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], kind: str) -> None:
        self.reps = [h.detach().float().cpu() for h in reps]
        self.targets = list(targets)
        self.lengths = torch.tensor([h.shape[0] for h in reps])
        self.kind = kind

    def __len__(self) -> int:
        return len(self.reps)

    def batch(self, idx: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor]:
        """Vectors (b, n, hidden), targets, their mask and the lengths, padded to the batch's longest sentence."""
        idx = [int(i) for i in idx]
        lengths = self.lengths[idx]
        h = nn.utils.rnn.pad_sequence([self.reps[i] for i in idx], batch_first=True)
        n = h.shape[1]
        words = torch.arange(n) < lengths[:, None]  # (b, n)
        if self.kind == "distance":
            gold = torch.zeros(len(idx), n, n)
            for b, i in enumerate(idx):
                m = int(lengths[b])
                gold[b, :m, :m] = self.targets[i]
            return h, gold, words[:, :, None] & words[:, None, :], lengths
        return h, nn.utils.rnn.pad_sequence([self.targets[i] for i in idx], batch_first=True), words, lengths


def _loss(pred: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, kind: str
          ) -> torch.Tensor:
    """L1 per sentence over its pairs (divided by n^2) or words (divided by n), averaged over sentences."""
    err = (pred - gold).abs() * mask
    per_sentence = err.flatten(1).sum(1)
    norm = lengths.float().pow(2) if kind == "distance" else lengths.float()
    return (per_sentence / norm).mean()


def _evaluate_loss(probe: nn.Module, data: _Split, batch_size: int) -> float:
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(data)))
            h, gold, mask, lengths = data.batch(idx)
            total += float(_loss(probe(h), gold, mask, lengths, data.kind)) * len(idx)
    return total / max(len(data), 1)


def train_probe(train: Sequence[torch.Tensor], trees_train: Sequence[Tree], dev: Sequence[torch.Tensor],
                trees_dev: Sequence[Tree], kind: Kind = "distance", *, rank: int | None = None,
                epochs: int = 40, lr: float = 1e-3, batch_size: int = 20, patience: int = 4,
                min_improvement: float = 1e-4, seed: int = 0) -> TrainedProbe:
    """Fit a distance or depth probe with Adam on the paper's L1 loss, keeping the best dev epoch.

    As in the released code, the learning rate drops tenfold whenever dev loss fails to improve, and training
    stops once it has not improved by `min_improvement` for `patience` epochs. The same seed gives the same
    probe (initial B and batch order both come from it).
    """
    if kind not in ("distance", "depth"):
        raise ConfigError(f"unknown probe kind {kind!r} (known: distance, depth)")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not train or not dev:
        raise DataError(f"a structural probe needs training and dev sentences, got {len(train)} and {len(dev)}")
    _check_representations(train, trees_train, "train")
    _check_representations(dev, trees_dev, "dev")
    hidden = train[0].shape[1]
    if dev[0].shape[1] != hidden:
        raise DataError(f"dev representations have hidden size {dev[0].shape[1]}, train ones {hidden}")
    generator = torch.Generator().manual_seed(seed)
    probe: DistanceProbe | DepthProbe = (DistanceProbe if kind == "distance" else DepthProbe)(
        hidden, rank, generator=generator)
    train_data = _Split(train, _targets(trees_train, kind), kind)
    dev_data = _Split(dev, _targets(trees_dev, kind), kind)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=0)
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(probe.state_dict())
    train_losses: list[float] = []
    dev_losses: list[float] = []
    epoch = 0
    for epoch in range(1, epochs + 1):
        probe.train()
        order = torch.randperm(len(train_data), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            h, gold, mask, lengths = train_data.batch(idx)
            loss = _loss(probe(h), gold, mask, lengths, kind)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        train_losses.append(total / len(train_data))
        probe.eval()
        dev_loss = _evaluate_loss(probe, dev_data, batch_size)
        dev_losses.append(dev_loss)
        scheduler.step(dev_loss)
        if dev_loss < best_loss - min_improvement:
            best_loss, best_epoch, best_state = dev_loss, epoch, copy.deepcopy(probe.state_dict())
        elif epoch - best_epoch >= patience:
            break
    probe.load_state_dict(best_state)
    probe.eval()
    return TrainedProbe(probe, kind, best_loss, best_epoch, epoch, train_losses, dev_losses)


# --- one probe per layer --------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    """One layer's probe and its scores on the evaluation sentences (dev, or test when given)."""

    layer: int
    kind: str
    #: distance: "uuas", "dspr"; depth: "root_acc", "nspr"
    metrics: dict[str, float]
    trained: TrainedProbe

    def row(self) -> dict[str, float | int]:
        """The layer and its scores, for a table with one row per layer."""
        return {"layer": self.layer, **self.metrics, "dev_loss": self.trained.dev_loss,
                "best_epoch": self.trained.best_epoch}


def _split(layer: Sequence[torch.Tensor], counts: Sequence[int], k: int) -> list[list[torch.Tensor]]:
    if len(layer) != sum(counts):
        names = ("train", "dev", "test")[:len(counts)]
        listed = " + ".join(f"{c} {name}" for c, name in zip(counts, names, strict=True))
        raise DataError(f"layer {k} has {len(layer)} sentence representations but there are {listed} trees "
                        f"({sum(counts)}); give one per tree, train first, then dev, then test")
    out, start = [], 0
    for c in counts:
        out.append(list(layer[start:start + c]))
        start += c
    return out


def probe_layers(representations_per_layer: Sequence[Sequence[torch.Tensor]], trees_train: Sequence[Tree],
                 trees_dev: Sequence[Tree], kind: Kind = "distance", *, trees_test: Sequence[Tree] | None = None,
                 exclude_tags: Iterable[str] | None = PUNCTUATION_TAGS, lengths: tuple[int, int] = LENGTHS,
                 rank: int | None = None, epochs: int = 40, lr: float = 1e-3, batch_size: int = 20,
                 patience: int = 4, seed: int = 0) -> list[ProbeResult]:
    """Train one probe per layer and score it, for a table of where syntax lives.

    `representations_per_layer[l]` holds one (n_words, hidden) tensor per sentence, in the order of
    `trees_train`, then `trees_dev`, then `trees_test` if given (run the model over every sentence once).
    Probes are early-stopped on dev and scored on test when given, else on dev. Every layer's probe starts
    from the same seed.
    """
    counts = [len(trees_train), len(trees_dev)] + ([len(trees_test)] if trees_test is not None else [])
    evaluation = trees_test if trees_test is not None else trees_dev
    results = []
    for k, layer in enumerate(representations_per_layer):
        parts = _split(layer, counts, k)
        if trees_test is not None:
            _check_representations(parts[2], trees_test, "test")
        trained = train_probe(parts[0], trees_train, parts[1], trees_dev, kind, rank=rank, epochs=epochs,
                              lr=lr, batch_size=batch_size, patience=patience, seed=seed)
        predicted = trained.predict(parts[-1])
        if kind == "distance":
            metrics = {"uuas": uuas(predicted, evaluation, exclude_tags),
                       "dspr": distance_spearman(predicted, evaluation, lengths)}
        else:
            metrics = {"root_acc": root_accuracy(predicted, evaluation, exclude_tags),
                       "nspr": depth_spearman(predicted, evaluation, lengths)}
        results.append(ProbeResult(k, kind, metrics, trained))
    return results
