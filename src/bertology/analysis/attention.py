"""What attention heads look at: per-head statistics, head groups, heatmaps and attention rollout.

Clark et al. ("What Does BERT Look At?", 2019) describe each head by where its attention mass goes: to
[CLS], to [SEP], to punctuation, to the previous or next token, to the token itself, and how spread out it
is (entropy); heads with the same habits are then grouped. Here the statistics are averaged over the real
(non-padding) query tokens of any number of batches (`AttentionAccumulator`, or `collect` over a model),
so a corpus of any size reduces to one small (layers, heads, statistics) table. `group_heads` clusters the
heads' standardised statistic vectors with a seeded k-means, and names each group after its dominant habit.
`attention_rollout` (Abnar and Zuidema, "Quantifying Attention Flow in Transformers", 2020) follows
attention through the layers, the residual stream counted as attention to oneself.
"""

from __future__ import annotations

import logging
import math
import os
import string
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..utils.plot import INSTALL, pyplot, save_png
from ..utils.table import format_table

logger = logging.getLogger("bertology")

#: The per-head statistics, in the order of `AttentionStats.values`' last axis.
STATISTICS: tuple[str, ...] = ("entropy", "cls", "sep", "punctuation", "previous", "next", "self")

#: What a group whose mean share of a statistic dominates is called.
_GROUP_NAMES = {
    "cls": "attends to [CLS]",
    "sep": "attends to [SEP]",
    "punctuation": "attends to punctuation",
    "previous": "previous token",
    "next": "next token",
    "self": "attends to itself",
}
_SHORT = {"cls": "[CLS]", "sep": "[SEP]", "punctuation": "punctuation", "previous": "previous token",
          "next": "next token", "self": "itself"}
_SHARES = STATISTICS[1:]
#: A group is named after a share when its mean share reaches this much of the mass.
DOMINANT_SHARE = 0.5
#: ...or called broad when its mean entropy reaches this fraction of uniform attention's entropy.
BROAD_ENTROPY = 0.75


# -------------------------------------------------------------------------------------------- checks
def _check_attentions(attentions: Sequence[torch.Tensor], name: str = "attentions") -> tuple[int, int]:
    """Every layer (batch, heads, seq, seq) with one batch and seq; heads may differ (pruned layers)."""
    if isinstance(attentions, torch.Tensor) or not len(attentions):
        raise ValueError(f"{name} must be a non-empty sequence of (batch, heads, seq, seq) tensors, one per "
                         "layer (call the encoder with output_attentions=True)")
    batch, seq = None, None
    for i, layer in enumerate(attentions):
        if not isinstance(layer, torch.Tensor) or layer.dim() != 4 or layer.shape[-1] != layer.shape[-2]:
            shape = tuple(layer.shape) if isinstance(layer, torch.Tensor) else type(layer).__name__
            raise ValueError(f"{name}[{i}] must be (batch, heads, seq, seq), got {shape}")
        if batch is None:
            batch, seq = layer.shape[0], layer.shape[-1]
        elif (layer.shape[0], layer.shape[-1]) != (batch, seq):
            raise ValueError(f"{name}[{i}] has shape {tuple(layer.shape)}; expected "
                             f"({batch}, heads, {seq}, {seq}) like {name}[0]")
    return batch, seq  # type: ignore[return-value]


def _check_mask(mask: torch.Tensor | None, batch: int, seq: int, device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(batch, seq, dtype=torch.bool, device=device)
    if tuple(mask.shape) != (batch, seq):
        raise ValueError(f"attention_mask must be (batch, seq) = ({batch}, {seq}) like the attentions, "
                         f"got {tuple(mask.shape)}")
    return mask.to(device).bool()


def _id_set(value: int | Iterable[int] | None) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int | np.integer):
        return {int(value)}
    return {int(v) for v in value}


# ------------------------------------------------------------------------------------- statistics
@dataclass
class AttentionStats:
    """Per-head means over real query tokens: `values` (layers, heads, len(STATISTICS)), entropy in nats.

    A layer with fewer heads than the widest (a pruned one) has NaN rows for the missing heads."""

    values: torch.Tensor
    tokens: int = 0
    batches: int = 0
    uniform_entropy: float = float("nan")  # mean over the same queries of log(real length): uniform's entropy
    statistics: tuple[str, ...] = STATISTICS

    @property
    def num_layers(self) -> int:
        return self.values.shape[0]

    @property
    def num_heads(self) -> int:
        return self.values.shape[1]

    def stat(self, name: str) -> torch.Tensor:
        """(layers, heads) of one statistic, by name (one of STATISTICS)."""
        if name not in self.statistics:
            raise ConfigError(f"unknown attention statistic {name!r}; known: {', '.join(self.statistics)}")
        return self.values[..., self.statistics.index(name)]

    def heads(self) -> list[tuple[int, int]]:
        """(layer, head) of every head present (not NaN)."""
        present = ~torch.isnan(self.values).any(-1)
        return [(layer, head) for layer in range(self.num_layers) for head in range(self.num_heads)
                if bool(present[layer, head])]

    def table(self, markdown: bool = False) -> str:
        """One row per head: layer, head and each statistic (shares as fractions of the head's mass)."""
        rows = [[str(layer), str(head), *[f"{float(v):.3f}" for v in self.values[layer, head]]]
                for layer, head in self.heads()]
        return format_table(["layer", "head", *self.statistics], rows, markdown=markdown)

    def to_dict(self) -> dict[str, Any]:
        values = [[[None if math.isnan(float(v)) else float(v) for v in head] for head in layer]
                  for layer in self.values]
        return {"statistics": list(self.statistics), "tokens": self.tokens, "batches": self.batches,
                "uniform_entropy": None if math.isnan(self.uniform_entropy) else self.uniform_entropy,
                "values": values}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttentionStats:
        statistics = tuple(data.get("statistics", STATISTICS))
        values = torch.tensor([[[float("nan") if v is None else float(v) for v in head] for head in layer]
                               for layer in data["values"]], dtype=torch.float64)
        if values.dim() != 3 or values.shape[-1] != len(statistics):
            raise ValueError(f"attention statistics 'values' must be (layers, heads, {len(statistics)}), "
                             f"got {tuple(values.shape)}")
        uniform = data.get("uniform_entropy")
        return cls(values, int(data.get("tokens", 0)), int(data.get("batches", 0)),
                   float("nan") if uniform is None else float(uniform), statistics)


class AttentionAccumulator:
    """Sums of the per-head statistics over real query tokens, batch after batch; `result()` averages.

    Token-weighted: one batch holding two batches' sentences gives what the two batches give together."""

    def __init__(self, special_ids: Mapping[str, int | Iterable[int]],
                 punctuation_ids: Iterable[int] = ()) -> None:
        missing = {"cls", "sep"} - set(special_ids)
        if missing:
            raise ConfigError(f"special_ids needs the ids of 'cls' and 'sep' (missing: {sorted(missing)}); "
                              "e.g. {'cls': tokenizer.cls_token_id, 'sep': tokenizer.sep_token_id}")
        self.cls_ids = _id_set(special_ids["cls"])
        self.sep_ids = _id_set(special_ids["sep"])
        self.punctuation_ids = _id_set(punctuation_ids)
        self._sums: list[torch.Tensor] | None = None  # per layer (heads, statistics), float64
        self.tokens = 0
        self.batches = 0
        self._uniform = 0.0

    def _members(self, input_ids: torch.Tensor, ids: set[int]) -> torch.Tensor:
        if not ids:
            return torch.zeros(input_ids.shape, dtype=torch.float64, device=input_ids.device)
        wanted = torch.tensor(sorted(ids), device=input_ids.device, dtype=input_ids.dtype)
        return torch.isin(input_ids, wanted).double()

    @torch.no_grad()
    def add(self, attentions: Sequence[torch.Tensor], input_ids: torch.Tensor,
            attention_mask: torch.Tensor | None = None) -> None:
        """Add one batch: `attentions` per layer (batch, heads, seq, seq), `input_ids` (batch, seq)."""
        batch, seq = _check_attentions(attentions)
        if not isinstance(input_ids, torch.Tensor) or tuple(input_ids.shape) != (batch, seq):
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids)
            raise ValueError(f"input_ids must be (batch, seq) = ({batch}, {seq}) like the attentions, "
                             f"got {shape}")
        device = attentions[0].device
        input_ids = input_ids.to(device)
        real = _check_mask(attention_mask, batch, seq, device)
        heads = [layer.shape[1] for layer in attentions]
        if self._sums is None:
            self._sums = [torch.zeros(h, len(STATISTICS), dtype=torch.float64, device=device) for h in heads]
        elif heads != [s.shape[0] for s in self._sums]:
            raise ValueError(f"attentions have {heads} heads per layer; earlier batches had "
                             f"{[s.shape[0] for s in self._sums]}")
        queries = real.double()  # (batch, seq): weight of each query
        keys = real.double()[:, None, None, :]  # padding keys carry no mass
        members = [self._members(input_ids, ids)
                   for ids in (self.cls_ids, self.sep_ids, self.punctuation_ids)]
        for i, layer in enumerate(attentions):
            probs = layer.detach().double() * keys
            per_query = torch.zeros(*probs.shape[:3], len(STATISTICS), dtype=torch.float64, device=device)
            per_query[..., 0] = -torch.xlogy(probs, probs).sum(-1)
            for j, member in enumerate(members):
                per_query[..., 1 + j] = torch.einsum("bhqk,bk->bhq", probs, member)
            per_query[:, :, 1:, 4] = torch.diagonal(probs, offset=-1, dim1=-2, dim2=-1)
            per_query[:, :, :-1, 5] = torch.diagonal(probs, offset=1, dim1=-2, dim2=-1)
            per_query[..., 6] = torch.diagonal(probs, dim1=-2, dim2=-1)
            self._sums[i] = self._sums[i].to(device) + torch.einsum("bhqs,bq->hs", per_query, queries)
        lengths = real.sum(-1).double()
        self._uniform += float((lengths * torch.log(lengths.clamp(min=1))).sum())
        self.tokens += int(real.sum())
        self.batches += 1

    def result(self) -> AttentionStats:
        """Means over every real query token added so far."""
        if self._sums is None or not self.tokens:
            raise ConfigError("no attention statistics: add at least one batch with a real "
                              "(non-padding) token")
        widest = max(s.shape[0] for s in self._sums)
        values = torch.full((len(self._sums), widest, len(STATISTICS)), float("nan"), dtype=torch.float64)
        for i, sums in enumerate(self._sums):
            values[i, : sums.shape[0]] = sums.cpu() / self.tokens
        return AttentionStats(values, self.tokens, self.batches, self._uniform / self.tokens)


def attention_statistics(attentions: Sequence[torch.Tensor], input_ids: torch.Tensor,
                         attention_mask: torch.Tensor | None, special_ids: Mapping[str, int | Iterable[int]],
                         punctuation_ids: Iterable[int] = ()) -> AttentionStats:
    """The statistics of one batch (an `AttentionAccumulator` with one `add`)."""
    accumulator = AttentionAccumulator(special_ids, punctuation_ids)
    accumulator.add(attentions, input_ids, attention_mask)
    return accumulator.result()


# ------------------------------------------------------------------------------------- tokenizers
def _is_punctuation_char(char: str) -> bool:
    """BERT's rule: Unicode P* categories, plus ASCII symbols such as $ and ^ that BERT splits off."""
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def punctuation_ids(tokenizer: Any) -> set[int]:
    """Ids of vocabulary tokens made only of punctuation (WordPiece's "##" and byte-level "Ġ" ignored)."""
    specials = set(getattr(tokenizer, "special_token_ids", ()) or ())
    found = set()
    for token, token_id in tokenizer.vocab.items():
        text = token[2:] if token.startswith("##") else token
        text = text.lstrip("\u0120")
        if text and token_id not in specials and all(_is_punctuation_char(c) for c in text):
            found.add(int(token_id))
    return found


def special_ids(tokenizer: Any) -> dict[str, int]:
    """{'cls': ..., 'sep': ...} of a tokenizer, as the statistics want them."""
    return {"cls": int(tokenizer.cls_token_id), "sep": int(tokenizer.sep_token_id)}


# ------------------------------------------------------------------------------------------- collect
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@torch.no_grad()
def collect(model: nn.Module, batches: Iterable[Mapping[str, Any]], tokenizer: Any = None,
            special: Mapping[str, int | Iterable[int]] | None = None,
            punctuation: Iterable[int] | None = None,
            accumulator: AttentionAccumulator | None = None) -> AttentionStats:
    """Run `model` with output_attentions=True over tokenized batches and average the head statistics.

    [CLS]/[SEP] and punctuation ids come from `tokenizer` unless given (`special`, `punctuation`); pass an
    `accumulator` to keep adding to earlier batches. The model runs in eval mode (no dropout) and is put
    back as it was."""
    if accumulator is None:
        if special is None:
            if tokenizer is None:
                raise ConfigError("collect needs a tokenizer, or special={'cls': id, 'sep': id}, to know "
                                  "which tokens are [CLS] and [SEP]")
            special = special_ids(tokenizer)
        if punctuation is None:
            punctuation = punctuation_ids(tokenizer) if tokenizer is not None else ()
        accumulator = AttentionAccumulator(special, punctuation)
    device = next(model.parameters()).device
    extra = tuple(getattr(model, "token_inputs", ()) or ())
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            if "input_ids" not in batch:
                raise ConfigError(f"each batch needs 'input_ids' (and usually 'attention_mask'); got keys "
                                  f"{sorted(batch)}")
            inputs = {k: batch[k].to(device) for k in (*_INPUTS, *extra) if batch.get(k) is not None}
            out = model(**inputs, output_attentions=True)
            attentions = getattr(out, "attentions", None)
            if not attentions:
                raise ConfigError(f"{type(model).__name__} returned no attentions with "
                                  "output_attentions=True")
            accumulator.add(attentions, inputs["input_ids"], inputs.get("attention_mask"))
    finally:
        model.train(was_training)
    return accumulator.result()


# ------------------------------------------------------------------------------------- head groups
@dataclass
class HeadCluster:
    """One group of heads: its members, mean raw statistics and a name from its dominant habit."""

    index: int
    name: str
    heads: list[tuple[int, int]]
    means: dict[str, float] = field(default_factory=dict)


@dataclass
class HeadGroups:
    """`labels` (layers, heads): each head's group, -1 for a missing head; `clusters` in label order."""

    labels: torch.Tensor
    clusters: list[HeadCluster]
    seed: int = 0

    def table(self, markdown: bool = False) -> str:
        """One row per group: name, size, members (layer-head) and mean statistics."""
        statistics = list(self.clusters[0].means) if self.clusters else list(STATISTICS)
        rows = [[str(c.index), c.name, str(len(c.heads)),
                 " ".join(f"{layer}-{head}" for layer, head in c.heads),
                 *[f"{c.means[s]:.3f}" for s in statistics]] for c in self.clusters]
        return format_table(["group", "name", "heads", "members", *statistics], rows, markdown=markdown)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "labels": self.labels.tolist(),
                "clusters": [{"index": c.index, "name": c.name, "heads": [list(h) for h in c.heads],
                              "means": c.means} for c in self.clusters]}


def _kmeans_once(x: np.ndarray, k: int, rng: np.random.Generator,
                 iterations: int) -> tuple[np.ndarray, float]:
    """Lloyd's iterations from a k-means++ start; an emptied centre jumps to the worst-served point."""
    n = len(x)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = ((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1).min(1)
        total = d2.sum()
        centres.append(x[rng.choice(n, p=d2 / total)] if total > 0 else x[rng.integers(n)])
    centres_arr = np.asarray(centres, dtype=np.float64)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        d2 = ((x[:, None, :] - centres_arr[None]) ** 2).sum(-1)
        labels = d2.argmin(1)
        new = centres_arr.copy()
        for c in range(k):
            members = labels == c
            new[c] = x[members].mean(0) if members.any() else x[d2.min(1).argmax()]
        if np.allclose(new, centres_arr, rtol=0, atol=1e-12):
            break
        centres_arr = new
    d2 = ((x[:, None, :] - centres_arr[None]) ** 2).sum(-1)
    labels = d2.argmin(1)
    return labels, float(d2[np.arange(n), labels].sum())


def _name(means: Mapping[str, float], centre_z: Mapping[str, float], uniform_entropy: float) -> str:
    share, best = max((means[s], s) for s in _SHARES if s in means)
    if share >= DOMINANT_SHARE:
        return _GROUP_NAMES[best]
    if uniform_entropy > 0 and means["entropy"] >= BROAD_ENTROPY * uniform_entropy:  # False for NaN
        return "broad (high entropy)"
    _, leading = max((z, s) for s, z in centre_z.items())
    if leading == "entropy":
        return "broad (high entropy)"
    return f"mixed, leaning to {_SHORT[leading]}"


def group_heads(stats: AttentionStats, k: int = 5, seed: int = 0, restarts: int = 10,
                iterations: int = 100) -> HeadGroups:
    """Cluster heads by their standardised statistic vectors with k-means (Clark et al. 2019 group heads by
    behaviour); the best of `restarts` seeded k-means++ runs. Labels are numbered in head order, so the
    same statistics and seed always give the same groups; a group left empty (fewer distinct heads than k)
    is dropped."""
    heads = stats.heads()
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"k (the number of head groups) must be a positive integer, got {k!r}")
    if k > len(heads):
        raise ConfigError(f"k={k} groups for {len(heads)} heads; choose k <= {len(heads)}")
    raw = np.asarray([[float(v) for v in stats.values[layer, head]] for layer, head in heads],
                     dtype=np.float64)
    std = raw.std(0)
    x = (raw - raw.mean(0)) / np.where(std > 1e-12, std, 1.0)
    rng = np.random.default_rng(seed)
    best_labels, best_inertia = None, math.inf
    for _ in range(max(1, restarts)):
        labels, inertia = _kmeans_once(x, k, rng, iterations)
        if inertia < best_inertia - 1e-12:
            best_labels, best_inertia = labels, inertia
    assert best_labels is not None
    order: dict[int, int] = {}
    for label in best_labels:
        order.setdefault(int(label), len(order))
    labels = np.asarray([order[int(label)] for label in best_labels])
    grid = torch.full((stats.num_layers, stats.num_heads), -1, dtype=torch.long)
    clusters = []
    for c in range(len(order)):
        members = labels == c
        means = {s: float(v) for s, v in zip(stats.statistics, raw[members].mean(0), strict=True)}
        centre_z = {s: float(v) for s, v in zip(stats.statistics, x[members].mean(0), strict=True)}
        member_heads = [h for h, m in zip(heads, members, strict=True) if m]
        for layer, head in member_heads:
            grid[layer, head] = c
        clusters.append(HeadCluster(c, _name(means, centre_z, stats.uniform_entropy), member_heads, means))
    return HeadGroups(grid, clusters, seed)


# ---------------------------------------------------------------------------------------- heatmaps
def attention_heatmaps(attentions: Sequence[torch.Tensor], tokens: Sequence[str],
                       heads: Sequence[tuple[int, int]], path: str | os.PathLike,
                       title: str | None = None) -> str | None:
    """A PNG with one panel per (layer, head), keys across and queries down, labelled by `tokens`.

    `attentions` are one sentence's maps per layer, (heads, seq, seq) or (1, heads, seq, seq); only the
    first len(tokens) positions are drawn, so padding drops off. Returns None when written, else why not
    (matplotlib missing, logged as a warning), as the other house plots do."""
    maps = []
    for i, layer in enumerate(attentions):
        if isinstance(layer, torch.Tensor) and layer.dim() == 4 and layer.shape[0] == 1:
            layer = layer[0]
        if not isinstance(layer, torch.Tensor) or layer.dim() != 3 or layer.shape[-1] != layer.shape[-2]:
            shape = tuple(layer.shape) if isinstance(layer, torch.Tensor) else type(layer).__name__
            raise ValueError(f"attentions[{i}] must be one sentence's (heads, seq, seq) or "
                             f"(1, heads, seq, seq), got {shape}")
        maps.append(layer)
    if not maps:
        raise ValueError("attentions must hold one (heads, seq, seq) tensor per layer; got none")
    n = len(tokens)
    if not 0 < n <= maps[0].shape[-1]:
        raise ValueError(f"tokens: {n} given for attention maps over {maps[0].shape[-1]} positions; "
                         f"give 1..{maps[0].shape[-1]}")
    if not heads:
        raise ValueError("heads: choose at least one (layer, head) to draw")
    for layer, head in heads:
        if not 0 <= layer < len(maps) or not 0 <= head < maps[layer].shape[0]:
            raise ValueError(f"head ({layer}, {head}) does not exist: layers 0..{len(maps) - 1}"
                             + (f", layer {layer} has heads 0..{maps[layer].shape[0] - 1}"
                                if 0 <= layer < len(maps) else ""))
    plt = pyplot("attention heatmap")
    if plt is None:
        return f"Warning: matplotlib is not installed ({INSTALL}); no attention heatmap written."
    columns = min(4, len(heads))
    rows = math.ceil(len(heads) / columns)
    side = max(2.5, 0.28 * n + 1.2)
    fig, axes = plt.subplots(rows, columns, figsize=(side * columns, side * rows), squeeze=False)
    for ax in axes.flat[len(heads):]:
        ax.axis("off")
    labels = list(tokens)
    for ax, (layer, head) in zip(axes.flat, heads, strict=False):
        grid = maps[layer][head, :n, :n].detach().float().cpu().numpy()
        ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"layer {layer}, head {head}", fontsize=9)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.set_yticklabels(labels, fontsize=7)
    if title:
        fig.suptitle(title)
    with warnings.catch_warnings():  # tokens the font lacks (CJK without a CJK font) draw as boxes
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.tight_layout()
        save_png(fig, path, dpi=100)
    return None


# ------------------------------------------------------------------------------------------ rollout
@torch.no_grad()
def attention_rollout(attentions: Sequence[torch.Tensor],
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """How much each final-layer position draws on each input token through all layers (batch, seq, seq).

    Per layer: the mean over heads plus the identity (the residual), rows renormalised; then the layers
    multiplied from the first up. Padding keys are dropped before renormalising and padding rows and
    columns of the result are zero, so real rows sum to one over real tokens."""
    batch, seq = _check_attentions(attentions)
    device = attentions[0].device
    real = _check_mask(attention_mask, batch, seq, device).double()
    pair = real[:, :, None] * real[:, None, :]
    eye = torch.eye(seq, dtype=torch.float64, device=device)
    rollout = eye.expand(batch, seq, seq) * pair
    for layer in attentions:
        step = (layer.detach().double().mean(1) + eye) * pair
        step = step / step.sum(-1, keepdim=True).clamp(min=1e-30)
        rollout = step @ rollout
    return rollout.to(attentions[0].dtype if attentions[0].is_floating_point() else torch.float32)


__all__ = ["BROAD_ENTROPY", "DOMINANT_SHARE", "STATISTICS", "AttentionAccumulator", "AttentionStats",
           "HeadCluster", "HeadGroups", "attention_heatmaps", "attention_rollout", "attention_statistics",
           "collect", "group_heads", "punctuation_ids", "special_ids"]
