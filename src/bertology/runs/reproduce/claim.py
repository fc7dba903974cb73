"""A claim from the literature as a small experiment: arms measured per seed, and a verdict from their spread.

A claim names its arms (the settings it compares), measures each arm once per seed (`measure(workspace, seed)`
returns {arm: value}), and says what would make it hold (`test`). The statistics are deliberately plain:
means and sample standard deviations over seeds, and for a comparison the paired difference per seed with
its standard error; "holds" and "does not hold" need the difference to clear two standard errors (and any
margin the claim allows), anything in between is "inconclusive at this scale".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive at this scale"


@dataclass(frozen=True)
class Spread:
    mean: float
    std: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        values = tuple(float(v) for v in values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, values)

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f}"


def paired(better: Sequence[float], worse: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the per-seed differences better - worse."""
    diffs = [b - w for b, w in zip(better, worse, strict=True)]
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("inf")
    return mean, se


def greater(better: Sequence[float], worse: Sequence[float], margin: float = 0.0) -> tuple[str, str]:
    """Verdict for "better > worse (by more than `margin`)" from paired differences over seeds."""
    mean, se = paired(better, worse)
    detail = f"difference {mean:+.4f} (standard error {se:.4f})"
    if mean - margin > 2 * se:
        return HOLDS, detail
    if mean - margin < -2 * se:
        return FAILS, detail
    return INCONCLUSIVE, detail


def not_worse(candidate: Sequence[float], reference: Sequence[float], margin: float) -> tuple[str, str]:
    """Verdict for "candidate is no worse than reference, within `margin`": holds when the difference is
    above -margin by two standard errors, fails when it is below -margin by two."""
    mean, se = paired(candidate, reference)
    detail = f"difference {mean:+.4f} (standard error {se:.4f}; allowed loss {margin:.4f})"
    if mean + margin > 2 * se:
        return HOLDS, detail
    if mean + margin < -2 * se:
        return FAILS, detail
    return INCONCLUSIVE, detail


def all_of(parts: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """A claim made of several comparisons (label -> (verdict, detail)): it holds when all hold, does not hold
    when any does not, and is inconclusive otherwise."""
    verdicts = [verdict for verdict, _ in parts.values()]
    verdict = HOLDS if all(v == HOLDS for v in verdicts) else FAILS if FAILS in verdicts else INCONCLUSIVE
    return verdict, "; ".join(f"{label}: {detail}" for label, (_, detail) in parts.items())


@dataclass(frozen=True)
class Claim:
    name: str
    #: the claim in one sentence, as the literature states it
    statement: str
    #: the seed paper and its own number, in words
    paper: str
    #: what we measure, and on what
    setup: str
    #: the arms, in the order the report shows them; the metric's name
    arms: tuple[str, ...]
    metric: str
    #: (workspace, seed) -> {arm: value}
    measure: Callable[[Any, int], dict[str, float]]
    #: {arm: values over seeds} -> (verdict, detail)
    test: Callable[[dict[str, list[float]]], tuple[str, str]]
    #: rough minutes per seed on 2 CPU cores once the shared pretrained models exist
    minutes: float = 1.0
    #: what the shared workspace must build first (pretraining variants), for the cost estimate
    needs: tuple[str, ...] = field(default_factory=tuple)
