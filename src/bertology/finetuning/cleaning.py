"""Cleaning and splitting examples: duplicates and conflicting labels dropped, then train/dev/test cut."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DataError
from .data import Example

logger = logging.getLogger(__name__)


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _text_key(example: Example) -> Any:
    return (_freeze(example.text), example.text_pair, _freeze(example.choices))


def _label_key(example: Example) -> Any:
    return (_freeze(example.label), _freeze(example.answers))


@dataclass
class CleanReport:
    """What :func:`clean` dropped and why."""

    total: int = 0
    kept: int = 0
    #: exact repeats (same text(s), same label) dropped after their first copy
    duplicates: int = 0
    #: distinct texts seen with more than one label
    conflicting_texts: int = 0
    #: every copy of those texts, all dropped
    conflicting_examples: int = 0
    #: the first row of each conflicting text (up to 20), to look at
    conflicts: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"kept {self.kept} of {self.total} examples: dropped {self.duplicates} exact duplicate(s) and "
                f"{self.conflicting_examples} copies of {self.conflicting_texts} text(s) with conflicting labels")
        if self.conflicts:
            text += f" (e.g. {', '.join(self.conflicts[:5])})"
        return text


def clean(examples: Sequence[Example]) -> tuple[list[Example], CleanReport]:
    """Drop exact duplicates (keeping the first) and every copy of a text labelled in conflicting ways.

    Duplicates inflate some examples' weight and, worse, can land in both train and test after a split;
    a text with two labels cannot be learned and whichever copy reaches the test set is a coin flip, so
    none is kept.  Run it before :func:`split`.
    """
    labels_by_text: dict[Any, set[Any]] = {}
    first_source: dict[Any, str] = {}
    for example in examples:
        key = _text_key(example)
        labels_by_text.setdefault(key, set()).add(_label_key(example))
        first_source.setdefault(key, example.source)
    conflicting = {key for key, labels in labels_by_text.items() if len(labels) > 1}
    report = CleanReport(total=len(examples), conflicting_texts=len(conflicting))
    report.conflicts = [first_source[k] for k in first_source if k in conflicting][:20]
    seen: set[Any] = set()
    kept: list[Example] = []
    for example in examples:
        key = _text_key(example)
        if key in conflicting:
            report.conflicting_examples += 1
            continue
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        kept.append(example)
    report.kept = len(kept)
    return kept, report


def shared_texts(train: Sequence[Example], other: Sequence[Example]) -> list[str]:
    """Rows of `other` whose text(s) also occur in `train` (file:line), e.g. a test set that leaks.

    Scores on such rows measure memory, not generalisation; separately supplied splits are checked.
    """
    seen = {_text_key(e) for e in train}
    return [e.source for e in other if _text_key(e) in seen]


def _sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Split n into parts by largest remainder, so the sizes always add up to n."""
    raw = [f * n for f in fractions]
    sizes = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - sizes[i]), i))
    for i in order[: n - sum(sizes)]:
        sizes[i] += 1
    return sizes


def split(
    examples: Sequence[Example],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify: bool = False,
) -> list[list[Example]]:
    """Shuffle with `seed` and cut into parts of the given fractions (which must sum to 1).

    The same examples, fractions and seed always give the same parts; within a part the file order is
    kept.  ``stratify=True`` splits each label separately, so a rare class reaches every part in
    proportion (classification and multiple choice labels; not tags).
    """
    fractions = [float(f) for f in fractions]
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    rng = random.Random(seed)
    if stratify:
        groups: dict[Any, list[int]] = {}
        for i, example in enumerate(examples):
            if isinstance(example.label, list) or example.label is None:
                raise DataError(f"{example.source}: stratified splitting needs one label per example, "
                                f"got {example.label!r}")
            groups.setdefault(example.label, []).append(i)
        pools = [groups[key] for key in sorted(groups, key=repr)]
    else:
        pools = [list(range(len(examples)))]
    parts: list[list[int]] = [[] for _ in fractions]
    for pool in pools:
        rng.shuffle(pool)
        start = 0
        for part, size in zip(parts, _sizes(len(pool), fractions), strict=True):
            part.extend(pool[start : start + size])
            start += size
    return [[examples[i] for i in sorted(part)] for part in parts]


__all__ = ["CleanReport", "clean", "shared_texts", "split"]
