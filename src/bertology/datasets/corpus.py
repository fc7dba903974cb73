"""What every real-task builder shares: parsed records, their cleaning counts, and train/dev/test splits.

Records are plain dicts ({"text", "label"} or {"doc", "chars", "tags"}); cleaning and splitting go
through `splits.py`, the same code that `clean:` and `split:` in a fine-tuning config use.
"""

from __future__ import annotations

import importlib.metadata
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BertologyError, ConfigError
from .splits import cut_points, deduplicate_by, seeded_split, stratified_order

SPLITS = ("train", "dev", "test")
FRACTIONS = (0.8, 0.1, 0.1)

Limit = int | Mapping[str, int] | None

__all__ = ["FRACTIONS", "SPLITS", "Corpus", "CorpusFormatError", "Limit", "deduplicate", "document_split",
           "stratified_sample", "stratified_split"]


class CorpusFormatError(BertologyError, ValueError):
    """A corpus file has a line that does not follow its documented format."""


@dataclass
class Corpus:
    """Parsed, cleaned records of one task (plain dicts) and the counts of what cleaning did."""

    records: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)


def package_version(name: str) -> str | None:
    """The installed version of a package (recorded in stats.json), or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def deduplicate(items: Iterable[tuple[str, str]]) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Keep one copy of each (text, label); drop every copy of a text seen with two labels.

    First-seen order is kept. The counts add up: examples_in = examples + duplicates_dropped + conflicts_dropped.
    """
    items = list(items)
    result = deduplicate_by(items, text=lambda item: item[0], label=lambda item: item[1])
    records = [{"text": text, "label": label} for text, label in result.kept]
    stats = {
        "examples_in": result.total,
        "unique_texts": len(result.firsts),
        "duplicates_dropped": result.duplicates,
        "conflicting_texts": len(result.conflicting),
        "conflicts_dropped": result.conflicts_dropped,
        "examples": len(records),
    }
    return records, stats


def _text(record: dict) -> str:
    return record["text"]


def _label(record: dict) -> str:
    return record["label"]


def stratified_split(records: Sequence[dict], seed: int = 0,
                     fractions: Sequence[float] = FRACTIONS) -> dict[str, list[dict]]:
    """Split labelled records into train/dev/test so each label keeps its share in every split."""
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be {len(SPLITS)} non-negative numbers summing to 1, got {fractions}")
    parts = seeded_split(records, fractions, seed, key=_text, label=_label, within="shuffle")
    return dict(zip(SPLITS, parts, strict=True))


def stratified_sample(records: Sequence[dict], n: int, seed: int = 0) -> list[dict]:
    """At most `n` records with the label proportions of `records` (each label within one of its share)."""
    if n >= len(records):
        return list(records)
    return stratified_order(records, random.Random(seed), key=_text, label=_label)[:n]


def document_split(records: Sequence[dict], seed: int = 0,
                   fractions: Sequence[float] = FRACTIONS) -> dict[str, list[dict]]:
    """Split by article (the records' "doc") so that one article's sentences share a split."""
    docs: dict[str, list[dict]] = {}
    for record in records:
        docs.setdefault(record["doc"], []).append(record)
    parts = seeded_split(list(docs), fractions, seed, key=str, within="keep")
    return {name: [r for key in part for r in docs[key]] for name, part in zip(SPLITS, parts, strict=True)}


def check_limit(limit: Limit) -> None:
    """A limit is a non-negative total or a mapping of split name to a non-negative cap."""
    if limit is None:
        return
    if isinstance(limit, Mapping):
        unknown = sorted(set(limit) - set(SPLITS))
        if unknown:
            raise ConfigError(f"limit names unknown split(s) {unknown}; splits are {list(SPLITS)}")
        values = dict(limit)
    else:
        values = {"limit": limit}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"limit {key!r} must be a non-negative integer, got {value!r}")


def split_caps(limit: Limit) -> dict[str, int | None]:
    """Per-split caps: an int is an overall total shared 80/10/10, a mapping caps the splits it names."""
    if limit is None:
        return dict.fromkeys(SPLITS)
    if isinstance(limit, Mapping):
        return {name: limit.get(name) for name in SPLITS}
    cuts = cut_points(limit, FRACTIONS)
    return {name: cuts[i + 1] - cuts[i] for i, name in enumerate(SPLITS)}
