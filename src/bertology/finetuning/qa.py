"""Extractive question answering post-processing (SQuAD v1.1 style).

A QA head emits a start and an end logit per token; the answer is the span maximising
``start_logit + end_logit`` among *valid* spans (end not before start, not too long, both ends inside
the context rather than the question or special tokens).  Long contexts are split into overlapping
windows (``stride`` / ``return_overflowing_tokens``); token ``offsets`` map back to characters of the
original context so spans from different windows are comparable and the best one simply wins.

No null-answer (SQuAD 2.0) handling: a best span is always returned when any valid span exists.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

NO_SPAN: tuple[int, int, float] = (0, 0, float("-inf"))
"""Returned by :func:`best_span` when a window has no valid span (e.g. no context tokens)."""


def best_span(
    start_logits: Sequence[float] | np.ndarray,
    end_logits: Sequence[float] | np.ndarray,
    offsets: Sequence[tuple[int, int] | None],
    context_mask: Sequence[bool | int] | np.ndarray,
    max_answer_tokens: int = 30,
    n_best: int = 20,
) -> tuple[int, int, float]:
    """Best valid span of one window as ``(start_char, end_char, score)``, ``end_char`` exclusive.

    Only the ``n_best`` highest start and end logits among context tokens are paired (as in the
    Hugging Face reference post-processing): the best-scoring span almost always uses them, and it keeps
    the search at ``n_best**2`` instead of ``seq_len**2``.  Returns :data:`NO_SPAN` if nothing is valid.
    """
    starts = np.asarray(start_logits, dtype=np.float64)
    ends = np.asarray(end_logits, dtype=np.float64)
    mask = np.asarray(context_mask, dtype=bool)
    if not (starts.shape == ends.shape == mask.shape == (len(offsets),)):
        raise ValueError("start_logits, end_logits, offsets and context_mask must have equal length")
    context = np.flatnonzero(mask)
    top_starts = context[np.argsort(-starts[context], kind="stable")[:n_best]]
    top_ends = context[np.argsort(-ends[context], kind="stable")[:n_best]]
    best = NO_SPAN
    for s in top_starts:
        for e in top_ends:
            if e < s or e - s + 1 > max_answer_tokens:
                continue
            if offsets[s] is None or offsets[e] is None:
                continue
            score = float(starts[s] + ends[e])
            if score > best[2]:
                best = (int(offsets[s][0]), int(offsets[e][1]), score)
    return best


def answer_across_windows(
    windows: Sequence[Mapping[str, Any]],
    context: str,
    max_answer_tokens: int = 30,
    n_best: int = 20,
) -> str:
    """Answer text for a context split into document-stride windows.

    Each window is a mapping with ``start_logits``, ``end_logits``, ``offsets`` (character offsets into
    ``context``, as ``return_offsets_mapping`` gives them) and ``context_mask``.  The highest-scoring
    span over all windows wins; the same span seen in two overlapping windows is just two candidates
    with the same characters, so no deduplication is needed.  Returns ``""`` if no window has a span.
    """
    best = NO_SPAN
    for window in windows:
        span = best_span(
            window["start_logits"],
            window["end_logits"],
            window["offsets"],
            window["context_mask"],
            max_answer_tokens=max_answer_tokens,
            n_best=n_best,
        )
        if span[2] > best[2]:
            best = span
    if best[2] == float("-inf"):
        return ""
    return context[best[0] : best[1]]


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower-case, drop punctuation, drop articles, collapse whitespace.

    Same order as the official evaluation script, so scores match it exactly.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 between two answers after normalisation (bag of tokens, with counts)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_em_f1(prediction: str, answers: Sequence[str]) -> tuple[float, float]:
    """Exact match and token F1 of one prediction, each the max over the gold ``answers``.

    SQuAD has several annotator answers per question; taking the max credits any acceptable one.
    """
    if not answers:
        raise ValueError("at least one gold answer is required")
    em = max(float(normalize_answer(prediction) == normalize_answer(a)) for a in answers)
    f1 = max(_f1(prediction, a) for a in answers)
    return em, f1
