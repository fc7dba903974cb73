"""The verdict arithmetic of `bertology reproduce`, by hand on small numbers."""

from __future__ import annotations

import math

import pytest

from bertology.runs.reproduce.claim import FAILS, HOLDS, INCONCLUSIVE, Spread, greater, not_worse, paired


def test_spread_is_mean_and_sample_standard_deviation():
    spread = Spread.of([0.70, 0.72, 0.74])
    assert spread.mean == pytest.approx(0.72)
    assert spread.std == pytest.approx(math.sqrt(((0.02 ** 2) * 2) / 2))  # n - 1 in the denominator
    assert str(spread) == "0.7200 ± 0.0200"


def test_paired_difference_and_its_standard_error():
    mean, se = paired([0.80, 0.82, 0.78], [0.70, 0.71, 0.70])
    diffs = [0.10, 0.11, 0.08]
    sd = math.sqrt(sum((d - sum(diffs) / 3) ** 2 for d in diffs) / 2)
    assert mean == pytest.approx(sum(diffs) / 3) and se == pytest.approx(sd / math.sqrt(3))


def test_greater_needs_two_standard_errors_either_way():
    assert greater([0.80, 0.82, 0.78], [0.70, 0.71, 0.70])[0] == HOLDS
    assert greater([0.70, 0.71, 0.70], [0.80, 0.82, 0.78])[0] == FAILS
    assert greater([0.80, 0.70, 0.75], [0.75, 0.76, 0.74])[0] == INCONCLUSIVE  # noisy: +0.05, -0.06, +0.01
    verdict, detail = greater([0.80, 0.82, 0.78], [0.78, 0.80, 0.76], margin=0.05)
    assert verdict == FAILS and "difference +0.0200" in detail  # better, but by less than the margin claimed


def test_not_worse_allows_the_stated_loss():
    assert not_worse([0.795, 0.805, 0.80], [0.80, 0.80, 0.80], margin=0.01)[0] == HOLDS
    assert not_worse([0.70, 0.71, 0.70], [0.80, 0.80, 0.80], margin=0.01)[0] == FAILS
    assert not_worse([0.79, 0.80, 0.77], [0.80, 0.80, 0.80], margin=0.01)[0] == INCONCLUSIVE
