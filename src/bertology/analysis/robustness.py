"""Robustness: how much a classifier's predictions move when its input is disturbed.

The primer reports BERT surprisingly insensitive to shuffled or truncated input. Each perturbation
(registry `PERTURBATIONS`: shuffle the word order, keep the first half, replace one word by another word of
the texts, remove one word) is applied to every text with a seeded random source; for each, the share of
texts whose predicted class changes and the mean drop of the probability of the originally predicted class.
Words are whitespace-separated, or characters for text without spaces (Chinese).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..utils.registry import Registry
from ..utils.table import format_table

Perturbation = Callable[[list[str], random.Random, Sequence[str]], list[str]]
PERTURBATIONS: Registry[Perturbation] = Registry("perturbation")


def words_of(text: str) -> list[str]:
    """Whitespace words, or characters for a text without spaces (Chinese)."""
    return text.split() if " " in text.strip() else list(text.strip())


def join(words: Sequence[str], spaced: bool) -> str:
    return " ".join(words) if spaced else "".join(words)


@PERTURBATIONS.register("shuffle")
def shuffle(words: list[str], rng: random.Random, pool: Sequence[str]) -> list[str]:
    """The same words in a random order."""
    out = list(words)
    rng.shuffle(out)
    return out


@PERTURBATIONS.register("truncate")
def truncate(words: list[str], rng: random.Random, pool: Sequence[str]) -> list[str]:
    """The first half of the words (at least one)."""
    return list(words[:max(1, len(words) // 2)])


@PERTURBATIONS.register("replace")
def replace(words: list[str], rng: random.Random, pool: Sequence[str]) -> list[str]:
    """One word, chosen at random, replaced by a random word of the texts."""
    out = list(words)
    if out and pool:
        out[rng.randrange(len(out))] = rng.choice(pool)
    return out


@PERTURBATIONS.register("remove")
def remove(words: list[str], rng: random.Random, pool: Sequence[str]) -> list[str]:
    """One word, chosen at random, left out (a one-word text stays as it is)."""
    out = list(words)
    if len(out) > 1:
        del out[rng.randrange(len(out))]
    return out


@dataclass
class RobustnessResult:
    perturbation: str
    changed: float  #: share of texts whose predicted class changed
    drop: float  #: mean drop of the probability of the originally predicted class
    texts: int


def measure(predict: Callable[[list[str]], np.ndarray], texts: Sequence[str],
            perturbations: Sequence[str] = ("shuffle", "truncate", "replace", "remove"), seed: int = 0
            ) -> list[RobustnessResult]:
    """`predict(texts) -> (texts, classes)` probabilities; one result per perturbation."""
    texts = list(texts)
    base = np.asarray(predict(texts))
    chosen = base.argmax(-1)
    original = base[np.arange(len(texts)), chosen]
    split = [words_of(t) for t in texts]
    spaced = [" " in t.strip() for t in texts]
    pool = [w for words in split for w in words]
    results = []
    for name in perturbations:
        function = PERTURBATIONS.entry(name).obj
        rng = random.Random(f"{seed}:{name}")
        disturbed = [join(function(words, rng, pool), s) for words, s in zip(split, spaced, strict=True)]
        probs = np.asarray(predict(disturbed))
        changed = float((probs.argmax(-1) != chosen).mean())
        drop = float((original - probs[np.arange(len(texts)), chosen]).mean())
        results.append(RobustnessResult(name, changed, drop, len(texts)))
    return results


def results_table(results: Sequence[RobustnessResult], markdown: bool = False) -> str:
    rows = [[r.perturbation, f"{r.changed:.3f}", f"{r.drop:.3f}", str(r.texts)] for r in results]
    return format_table(["perturbation", "prediction changed", "probability drop", "texts"], rows, markdown=markdown)


__all__ = ["PERTURBATIONS", "RobustnessResult", "measure", "remove", "replace", "results_table", "shuffle",
           "truncate", "words_of"]
