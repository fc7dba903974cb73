"""Robustness: each perturbation by hand, the change rate and probability drop of a hand-made classifier,
and `bertology robustness` on a toy fine-tuned classifier."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bertology.analysis.robustness import PERTURBATIONS, measure, remove, replace, shuffle, truncate, words_of
from bertology.errors import ConfigError


def test_perturbations_by_hand():
    words = ["a", "b", "c", "d", "e"]
    shuffled = shuffle(words, random.Random(0), [])
    assert sorted(shuffled) == words and shuffled == shuffle(words, random.Random(0), [])
    assert truncate(words, random.Random(0), []) == ["a", "b"] and truncate(["x"], random.Random(0), []) == ["x"]
    replaced = replace(words, random.Random(1), ["z"])
    assert len(replaced) == 5 and sum(a != b for a, b in zip(words, replaced, strict=True)) == 1 and "z" in replaced
    removed = remove(words, random.Random(2), [])
    assert len(removed) == 4 and set(removed) < set(words)
    assert remove(["x"], random.Random(0), []) == ["x"]
    assert words_of("a b  c") == ["a", "b", "c"] and words_of("好电影") == ["好", "电", "影"]
    assert sorted(PERTURBATIONS) == ["remove", "replace", "shuffle", "truncate"]


def _classifier(texts: list[str]) -> np.ndarray:
    """Positive (0.9) when the text holds 'good', else 0.2: a bag of words, blind to order."""
    p = np.array([0.9 if "good" in t.split() else 0.2 for t in texts])
    return np.stack([1 - p, p], axis=1)


def test_change_rate_and_probability_drop_of_a_hand_made_classifier():
    texts = ["good film", "a good long film", "dull film here", "bad"]
    results = {r.perturbation: r for r in measure(_classifier, texts, seed=0)}
    assert results["shuffle"].changed == 0.0 and results["shuffle"].drop == pytest.approx(0.0)
    # truncate: "good" | "a good" | "dull" | "bad": nothing changes
    assert results["truncate"].changed == 0.0
    # remove one word: predictions change exactly for the texts whose 'good' was removed
    rng = random.Random("0:remove")
    removed = [remove(t.split(), rng, []) for t in texts]
    expected = sum(1 for t, r in zip(texts, removed, strict=True) if "good" in t.split() and "good" not in r)
    assert results["remove"].changed == expected / 4
    assert results["remove"].drop == pytest.approx(expected * (0.9 - 0.2) / 4)
    with pytest.raises(ConfigError, match="unknown perturbation 'shufle'"):
        measure(_classifier, texts, ["shufle"])


def test_robustness_command_on_a_toy_classifier(tmp_path, fine_tune_toy, tmp_path_factory):
    from bertology.cli.main import main

    root = fine_tune_toy(tmp_path_factory.mktemp("robust"), "ft", 4)
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(json.loads(line)["text"] + "\n" for line in
                             (root / "cls/test.jsonl").read_text().splitlines()), encoding="utf-8")
    assert main(["robustness", str(root / "ft" / "model"), str(texts), "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["perturbation"] for r in data["results"]] == ["shuffle", "truncate", "replace", "remove"]
    assert all(0.0 <= r["changed"] <= 1.0 for r in data["results"])
