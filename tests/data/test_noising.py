"""BART's noising functions: each does what it claims, at its rate, with its length distribution, and leaves
fixed separators alone; the registry applies them in order."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from bertology.data.noising import (
    NOISING,
    NoisingOptions,
    Text,
    active_noising,
    apply_noising,
    document_rotation,
    sentence_permutation,
    span_plan,
    text_infilling,
    token_deletion,
    token_masking,
)
from bertology.errors import ConfigError

MASK = 4
OFF = {"infill_rate": 0.0, "permute_sentences": False}


def _text(n=60, starts=(0, 17, 40), fixed=()):
    """Distinct ids (so every token can be traced), sentences beginning at `starts`."""
    ids = np.arange(100, 100 + n)
    sentence_starts = np.isin(np.arange(n), starts)
    return Text.of(ids, sentence_starts, np.isin(np.arange(n), fixed))


def test_registry_and_defaults_are_barts_best():
    assert list(NOISING) == ["sentence_permutation", "token_masking", "token_deletion", "text_infilling",
                             "document_rotation"]
    options = NoisingOptions()
    assert (options.infill_rate, options.infill_lambda, options.permute_sentences) == (0.3, 3.0, True)
    assert active_noising(options) == ["sentence_permutation", "text_infilling"]
    every = NoisingOptions(mask_rate=0.1, delete_rate=0.1, rotate=True)
    assert active_noising(every) == list(NOISING)
    for bad in ({"mask_rate": 1.0}, {"infill_rate": -0.1}, {"infill_lambda": 0.0}):
        with pytest.raises(ConfigError):
            NoisingOptions(**bad)


def test_token_masking_rate_and_nothing_else_changes():
    options = NoisingOptions(mask_rate=0.2, **OFF)
    rng = np.random.default_rng(0)
    text = _text(fixed=(30,))
    hits = total = 0
    for _ in range(400):
        out = token_masking(text, rng, options, MASK)
        assert len(out) == len(text) and np.array_equal(out.origin, text.origin)
        changed = out.ids != text.ids
        assert (out.ids[changed] == MASK).all() and not changed[30]  # fixed separator untouched
        hits += int(changed.sum())
        total += len(text) - 1
    p = hits / total  # 23,600 draws: std 0.0026
    assert abs(p - 0.2) < 0.01


def test_token_deletion_rate_keeps_order():
    options = NoisingOptions(delete_rate=0.3, **OFF)
    rng = np.random.default_rng(1)
    text = _text(fixed=(30,))
    gone = total = 0
    for _ in range(400):
        out = token_deletion(text, rng, options, MASK)
        assert (np.diff(out.origin) > 0).all() and np.array_equal(out.ids, text.ids[out.origin])  # a subsequence
        assert 30 in out.origin
        gone += len(text) - len(out)
        total += len(text) - 1
    assert abs(gone / total - 0.3) < 0.01


def test_infilling_span_lengths_are_poisson_3_with_zero_length_spans():
    rng = np.random.default_rng(2)
    lengths: list[int] = []
    for _ in range(600):
        starts, ls = span_plan(rng, 400, 0.3, 3.0)
        assert ls.sum() == 120  # exactly round(0.3 * 400) covered
        ends = starts + ls
        assert (starts[1:] >= ends[:-1]).all() and ends[-1] <= 400  # in order, never overlapping
        lengths.extend(ls.tolist())
    counts = Counter(lengths)
    n = len(lengths)  # ~24,000 spans; one per plan is cut to fit (at least 1): a 2.5% share
    for k in range(8):
        pmf = math.exp(-3) * 3 ** k / math.factorial(k)
        assert abs(counts[k] / n - pmf) < 0.012, (k, counts[k] / n, pmf)
    assert counts[0] > 0.03 * n  # zero-length spans happen (pmf 0.0498)
    assert abs(np.mean(lengths) - 3.0) < 0.1


def test_infilling_replaces_each_span_by_one_mask():
    options = NoisingOptions(infill_rate=0.3, permute_sentences=False)
    text = _text(n=80)
    for seed in range(50):
        out = text_infilling(text, np.random.default_rng(seed), options, MASK)
        starts, lengths = span_plan(np.random.default_rng(seed), 80, 0.3, 3.0)  # the same draws
        covered = np.zeros(80, bool)
        for s, n in zip(starts, lengths, strict=True):
            covered[s:s + n] = True
        masks = out.ids == MASK
        assert masks.sum() == len(starts) == (out.origin < 0).sum()  # one [MASK] per span, zero-length ones too
        assert np.array_equal(out.ids[~masks], text.ids[~covered])  # the rest, in order
        # each mask sits where its span began: before the first token after the span
        expected = []
        for i in range(81):
            expected += [MASK] * int((starts == i).sum())
            if i < 80 and not covered[i]:
                expected.append(int(text.ids[i]))
        assert out.ids.tolist() == expected


def test_infilling_leaves_fixed_tokens_and_marks_sentences():
    options = NoisingOptions(infill_rate=0.5, permute_sentences=False)
    text = _text(n=40, starts=(0, 10, 21), fixed=(20,))
    for seed in range(30):
        out = text_infilling(text, np.random.default_rng(seed), options, MASK)
        assert (out.ids == 120).sum() == 1 and out.fixed.sum() == 1
        kept = out.origin >= 0
        assert np.array_equal(out.sentence[kept], text.sentence[out.origin[kept]])
        assert out.sentence_starts.sum() <= 3 and (np.diff(out.sentence) >= 0).all()


def test_sentence_permutation_is_a_uniform_permutation_of_the_same_sentences():
    options = NoisingOptions(**{**OFF, "permute_sentences": True})
    text = _text(n=30, starts=(0, 10, 18))
    sentences = [tuple(range(100, 110)), tuple(range(110, 118)), tuple(range(118, 130))]
    rng = np.random.default_rng(3)
    seen: Counter = Counter()
    for _ in range(1200):
        out = sentence_permutation(text, rng, options, MASK)
        cuts = np.flatnonzero(out.sentence_starts).tolist() + [len(out)]
        pieces = [tuple(out.ids[a:b].tolist()) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        assert sorted(pieces) == sorted(sentences) and cuts[0] == 0  # the same sentences, whole, starts marked
        seen[tuple(sentences.index(p) for p in pieces)] += 1
    assert len(seen) == 6 and all(abs(c / 1200 - 1 / 6) < 0.04 for c in seen.values())


def test_sentence_permutation_keeps_fixed_separators_and_continuation():
    text = _text(n=30, starts=(5, 12, 22), fixed=(20,))  # 0..4 continue a sentence cut at the front
    rng = np.random.default_rng(4)
    for _ in range(50):
        out = sentence_permutation(text, rng, NoisingOptions(), MASK)
        assert out.ids[20] == 120  # the separator stays; the sentences move only on their side of it
        assert set(out.ids[:20].tolist()) == set(range(100, 120)) and set(out.ids[21:].tolist()) == set(range(121, 130))
        assert not out.sentence_starts[out.ids == 100].any()  # the continuation piece is never marked a start


def test_document_rotation_is_a_uniform_rotation():
    text = _text(n=12, starts=(0, 5))
    rng = np.random.default_rng(5)
    shifts = Counter()
    for _ in range(2400):
        out = document_rotation(text, rng, NoisingOptions(rotate=True), MASK)
        r = int(out.origin[0])
        assert np.array_equal(out.ids, np.roll(text.ids, -r))
        shifts[r] += 1
    assert set(shifts) == set(range(12)) and all(abs(c / 2400 - 1 / 12) < 0.025 for c in shifts.values())


def test_apply_noising_is_reproducible_from_the_generator():
    options = NoisingOptions(mask_rate=0.1, delete_rate=0.1, rotate=True)
    text = _text()
    a = apply_noising(text, np.random.default_rng([7, 1, 3]), options, MASK)
    b = apply_noising(text, np.random.default_rng([7, 1, 3]), options, MASK)
    c = apply_noising(text, np.random.default_rng([7, 2, 3]), options, MASK)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.origin, b.origin)
    assert not np.array_equal(a.ids, c.ids)
