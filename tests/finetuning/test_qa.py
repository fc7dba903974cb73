"""Extractive QA post-processing and SQuAD metrics."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bertology.finetuning.qa import NO_SPAN, answer_across_windows, best_span, normalize_answer, squad_em_f1

CONTEXT = "The decoy city is Paris but the real answer is New York City today"
WORDS = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", CONTEXT)]
# 0 The 1 decoy 2 city 3 is 4 Paris 5 but 6 the 7 real 8 answer 9 is 10 New 11 York 12 City 13 today
LOW = -5.0


def make_window(first: int, last: int, starts: dict[str, float], ends: dict[str, float]) -> dict:
    """A window over context words ``first..last`` laid out as [CLS] q q [SEP] context... [SEP].

    The question and special tokens get huge logits to check that ``context_mask`` excludes them.
    """
    offsets: list[tuple[int, int] | None] = [None, (0, 4), (5, 8), None]
    start_logits = [20.0, 15.0, 15.0, 20.0]
    end_logits = [20.0, 15.0, 15.0, 20.0]
    mask = [False] * 4
    for word, s, e in WORDS[first : last + 1]:
        offsets.append((s, e))
        start_logits.append(starts.get(word, LOW))
        end_logits.append(ends.get(word, LOW))
        mask.append(True)
    offsets.append(None)
    start_logits.append(20.0)
    end_logits.append(20.0)
    mask.append(False)
    return {
        "start_logits": np.array(start_logits),
        "end_logits": np.array(end_logits),
        "offsets": offsets,
        "context_mask": np.array(mask),
    }


def test_answer_only_complete_in_second_window_beats_decoy() -> None:
    # Window 1 covers words 0..11 and cuts "New York City" after "York"; window 2 covers 6..13.
    # Window 1 best: "Paris" (5 + 5 = 10) beats the truncated "New York" (8 + 1 = 9).
    # Window 2 best: "New York City" (8 + 8 = 16), which must win overall.
    w1 = make_window(0, 11, starts={"Paris": 5.0, "New": 8.0}, ends={"Paris": 5.0, "York": 1.0})
    w2 = make_window(6, 13, starts={"New": 8.0}, ends={"York": 1.0, "City": 8.0})
    assert best_span(**w1) == (CONTEXT.index("Paris"), CONTEXT.index("Paris") + 5, 10.0)
    assert best_span(**w2)[2] == 16.0
    assert answer_across_windows([w1, w2], CONTEXT) == "New York City"
    assert answer_across_windows([w2, w1], CONTEXT) == "New York City"  # order does not matter
    assert answer_across_windows([w1], CONTEXT) == "Paris"


def test_same_answer_in_overlapping_windows() -> None:
    # "real answer" lies inside both windows with different scores; either way the text is the same.
    w1 = make_window(0, 11, starts={"real": 3.0}, ends={"answer": 3.0})
    w2 = make_window(6, 13, starts={"real": 4.0}, ends={"answer": 4.0})
    assert answer_across_windows([w1, w2], CONTEXT) == "real answer"


def test_best_span_rejects_invalid_spans() -> None:
    offsets = [(0, 1), (2, 3), (4, 5), (6, 7)]
    mask = [True, True, True, True]
    # Highest start at 2, highest end at 0: end before start is invalid; next best is start 2 / end 3.
    starts = [0.0, 0.0, 9.0, 0.0]
    ends = [9.0, 0.0, 0.0, 5.0]
    assert best_span(starts, ends, offsets, mask) == (4, 7, 14.0)
    # Length cap: the 4-token span 0..3 (score 9 + 5) is too long for max_answer_tokens=3.
    starts = [9.0, 0.0, 0.0, 0.0]
    ends = [0.0, 0.0, 1.0, 5.0]
    assert best_span(starts, ends, offsets, mask, max_answer_tokens=4) == (0, 7, 14.0)
    assert best_span(starts, ends, offsets, mask, max_answer_tokens=3) == (0, 5, 10.0)
    # No context tokens: nothing valid.
    assert best_span(starts, ends, offsets, [False] * 4) == NO_SPAN
    assert answer_across_windows([], CONTEXT) == ""
    with pytest.raises(ValueError):
        best_span(starts, ends[:3], offsets, mask)


def test_normalize_answer() -> None:
    assert normalize_answer("  The  Eiffel-Tower, an icon!  ") == "eiffeltower icon"
    assert normalize_answer("Theatre and a thesis") == "theatre and thesis"  # only whole-word articles


def test_squad_em_f1_by_hand() -> None:
    # Normalisation makes these identical: EM 1, F1 1.
    assert squad_em_f1("The Eiffel Tower!", ["eiffel tower"]) == (1.0, 1.0)
    # pred tokens [in, eiffel, tower, in, paris] (5), gold [eiffel, tower] (2), overlap 2:
    # P = 2/5, R = 2/2, F1 = 2 * 0.4 * 1 / 1.4 = 4/7.
    em, f1 = squad_em_f1("in the Eiffel Tower in Paris", ["Eiffel Tower"])
    assert em == 0.0
    assert f1 == pytest.approx(4 / 7)
    # Max over gold answers: vs "Paris" tokens [paris, france] overlap 1 -> P 1/2, R 1, F1 2/3;
    # vs "the Eiffel Tower" overlap 0 -> F1 0. Max = 2/3; EM 0 for both.
    em, f1 = squad_em_f1("Paris, France", ["the Eiffel Tower", "Paris"])
    assert em == 0.0
    assert f1 == pytest.approx(2 / 3)
    # Repeated tokens count once per match: pred [new, new] vs gold [new, york]: overlap 1 -> F1 1/2.
    assert squad_em_f1("new new", ["New York"]) == (0.0, 0.5)
    # Answer that normalises to nothing only matches an answer that also does.
    assert squad_em_f1("The", ["a"]) == (1.0, 1.0)
    assert squad_em_f1("the", ["Paris"]) == (0.0, 0.0)
    with pytest.raises(ValueError):
        squad_em_f1("x", [])
