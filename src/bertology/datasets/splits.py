"""The one deduplication and the one seeded split, shared by the real-task builders and `clean:` / `split:`.

Deduplication keeps the first copy of each text and drops *every* copy of a text seen with two labels (no
label for it can be right, and whichever copy reached the test set would be a coin flip). The split orders
items so that every prefix holds each label in its overall share, then cuts that order at the requested
fractions: any cut is stratified and hits the requested sizes. Both work on any items through key
functions, so task records (dicts) and parsed examples go through the same code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from ..errors import ConfigError

T = TypeVar("T")

__all__ = ["Deduplicated", "check_fractions", "cut_points", "deduplicate_by", "seeded_split", "stratified_order"]


@dataclass
class Deduplicated(Generic[T]):
    """What :func:`deduplicate_by` kept and dropped."""

    #: the first copy of every text that was never seen with two labels, in first-seen order
    kept: list[T]
    #: the first copy of every distinct text, conflicting ones included
    firsts: list[T]
    #: the text keys seen with more than one label, in first-seen order
    conflicting: list[Hashable]
    #: items in
    total: int
    #: every copy of a conflicting text
    conflicts_dropped: int

    @property
    def duplicates(self) -> int:
        """Later copies of kept texts (the counts add up: total = kept + duplicates + conflicts_dropped)."""
        return self.total - len(self.kept) - self.conflicts_dropped


def deduplicate_by(items: Sequence[T], text: Callable[[T], Hashable], label: Callable[[T], Hashable]
                   ) -> Deduplicated[T]:
    """Keep one copy of each text; drop every copy of a text seen with two labels."""
    labels: dict[Hashable, set[Hashable]] = {}
    first: dict[Hashable, T] = {}
    for item in items:
        key = text(item)
        labels.setdefault(key, set()).add(label(item))
        first.setdefault(key, item)
    conflicting = [key for key, seen in labels.items() if len(seen) > 1]
    bad = set(conflicting)
    kept = [item for key, item in first.items() if key not in bad]
    dropped = sum(text(item) in bad for item in items) if bad else 0
    return Deduplicated(kept, list(first.values()), conflicting, len(items), dropped)


def cut_points(n: int, fractions: Sequence[float]) -> list[int]:
    """Where to cut n ordered items into parts of the given fractions (0 first, n last)."""
    cuts, total = [0], 0.0
    for fraction in fractions:
        total += fraction
        cuts.append(min(n, round(n * total)))
    cuts[-1] = n
    return cuts


def check_fractions(fractions: Sequence[float]) -> list[float]:
    """The fractions as floats; they must be non-negative and sum to 1."""
    fractions = [float(f) for f in fractions]
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    return fractions


def _groups(indices: list[int], key: Callable[[int], Any], label: Callable[[int], Any] | None,
            rng: random.Random) -> list[list[int]]:
    """Indices by label (labels sorted), each group sorted by key, then shuffled: input order never matters."""
    groups: dict[Any, list[int]] = {}
    for i in indices:
        groups.setdefault(None if label is None else label(i), []).append(i)
    out = []
    for name in sorted(groups):
        group = sorted(groups[name], key=key)
        rng.shuffle(group)
        out.append(group)
    return out


def _interleave(groups: list[list[int]]) -> list[int]:
    """Item k of a group of n sits at (k + 0.5) / n: every prefix holds each group in its share (to +-1)."""
    placed = [((k + 0.5) / len(group), g, i) for g, group in enumerate(groups) for k, i in enumerate(group)]
    placed.sort(key=lambda item: item[:2])
    return [i for _, _, i in placed]


def _by_index(items: Sequence[T], fn: Callable[[T], Any] | None) -> Callable[[int], Any] | None:
    return None if fn is None else (lambda i: fn(items[i]))


def stratified_order(items: Sequence[T], rng: random.Random, key: Callable[[T], Any],
                     label: Callable[[T], Any] | None = None) -> list[T]:
    """All items in one seeded order whose every prefix is a stratified sample of its size."""
    order = _interleave(_groups(list(range(len(items))), _by_index(items, key), _by_index(items, label), rng))
    return [items[i] for i in order]


def seeded_split(items: Sequence[T], fractions: Sequence[float], seed: int, key: Callable[[T], Any],
                 label: Callable[[T], Any] | None = None,
                 within: Literal["shuffle", "keep", "original"] = "shuffle") -> list[list[T]]:
    """Cut `items` into parts of `fractions` (stratified by `label` when given), deterministic in `seed`.

    `key` orders items before the seeded shuffle, so the same items always give the same parts whatever
    their input order. `within` orders each part: "shuffle" (no trace of the label-by-label layout),
    "keep" (the seeded order) or "original" (input order, e.g. file order).
    """
    fractions = check_fractions(fractions)
    rng = random.Random(seed)
    ordered = _interleave(_groups(list(range(len(items))), _by_index(items, key), _by_index(items, label), rng))
    cuts = cut_points(len(ordered), fractions)
    parts = [ordered[cuts[p]:cuts[p + 1]] for p in range(len(fractions))]
    for part in parts:
        if within == "shuffle":
            rng.shuffle(part)
        elif within == "original":
            part.sort()
    return [[items[i] for i in part] for part in parts]
