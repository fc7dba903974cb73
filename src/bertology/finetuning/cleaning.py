"""Cleaning and splitting examples: duplicates and conflicting labels dropped, then train/dev/test cut."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..datasets.splits import deduplicate_by, seeded_split
from ..errors import DataError
from .examples import Example

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
    none is kept.  Run it before :func:`split`. The same deduplication builds the real task data sets
    (`bertology.datasets`).
    """
    result = deduplicate_by(examples, text=_text_key, label=_label_key)
    report = CleanReport(total=result.total, kept=len(result.kept), duplicates=result.duplicates,
                         conflicting_texts=len(result.conflicting), conflicting_examples=result.conflicts_dropped)
    firsts = {_text_key(e): e.source for e in result.firsts}
    report.conflicts = [firsts[key] for key in result.conflicting[:20]]
    return result.kept, report


def shared_texts(train: Sequence[Example], other: Sequence[Example]) -> list[str]:
    """Rows of `other` whose text(s) also occur in `train` (file:line), e.g. a test set that leaks.

    Scores on such rows measure memory, not generalisation; separately supplied splits are checked.
    """
    seen = {_text_key(e) for e in train}
    return [e.source for e in other if _text_key(e) in seen]


def _stratum(example: Example) -> Any:
    if isinstance(example.label, list) or example.label is None:
        raise DataError(f"{example.source}: stratified splitting needs one label per example, got {example.label!r}")
    return example.label


def split(
    examples: Sequence[Example],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify: bool = False,
) -> list[list[Example]]:
    """Cut `examples` into parts of the given fractions (which must sum to 1), deterministic in `seed`.

    The same examples, fractions and seed always give the same parts, whatever the file order; within a
    part the file order is kept.  ``stratify=True`` keeps each label's share in every part, so a rare
    class reaches every part in proportion (classification and multiple choice labels; not tags). This
    is the split of the real task data sets (`bertology.datasets`).
    """
    return seeded_split(examples, fractions, seed, key=lambda e: repr(_text_key(e)),
                        label=_stratum if stratify else None, within="original")


__all__ = ["CleanReport", "clean", "shared_texts", "split"]
