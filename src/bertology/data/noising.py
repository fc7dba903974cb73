"""BART's noising functions (Lewis et al., 2020): ways to corrupt a text that a decoder must then undo.

Each function is pure: it maps (the body of an instance as a `Text`, a numpy generator, the options, the
[MASK] id) to a new `Text`, and draws every random choice from the generator, so the collator's
(seed, epoch, instance) generator makes it reproducible. The body is what lies between [CLS] and the last
[SEP]; those two are never passed in. Separators inside the body (the document boundaries of packed
`full_sentences` instances) are `fixed`: no function masks, deletes or covers them, and sentence
permutation shuffles sentences only between two of them (never across a document boundary).

A `Text` keeps, for every token, the body position it came from (`origin`, -1 for a [MASK] that stands for a
span) and its sentence, so the caller can carry every per-token field (labels, word starts, ...) along and
rebuild sentence starts after tokens moved or vanished.

The functions, in the order they are applied when several are on (the registration order below, as in
fairseq's BART): sentence permutation, token masking, token deletion, text infilling, document rotation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..utils.registry import Registry
from ..utils.typed import Where, as_where, check_fields


@dataclass
class NoisingOptions:
    """Which noising functions run and how hard. Defaults: BART's best (text infilling of 30% of the tokens
    in Poisson(3) spans, plus sentence permutation)."""

    #: token masking: each token becomes [MASK] with this probability (0: off)
    mask_rate: float = 0.0
    #: token deletion: each token is deleted with this probability (0: off)
    delete_rate: float = 0.0
    #: text infilling: the share of tokens covered by spans, each span replaced by one [MASK] (0: off)
    infill_rate: float = 0.3
    #: text infilling: the mean span length (span lengths ~ Poisson(infill_lambda); 0-length spans insert a [MASK])
    infill_lambda: float = 3.0
    #: sentence permutation: shuffle the sentences (marked by `sentence_starts`)
    permute_sentences: bool = True
    #: document rotation: a token chosen uniformly at random becomes the first, the body rotated
    rotate: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        for name in ("mask_rate", "delete_rate", "infill_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{where}field '{name}' must lie in [0, 1), got {value}")
        if not self.infill_lambda > 0:
            raise ConfigError(f"{where}field 'infill_lambda' must be positive, got {self.infill_lambda}")


@dataclass(frozen=True)
class Text:
    """A body being noised: token ids, each token's sentence (0 for the piece before the first sentence start,
    the continuation of a sentence cut at the front), its origin in the un-noised body (-1: a [MASK] made by
    the noise that stands for a span or an insertion), and whether it is fixed (a separator no noise touches)."""

    ids: np.ndarray
    sentence: np.ndarray
    origin: np.ndarray
    fixed: np.ndarray

    @classmethod
    def of(cls, ids: np.ndarray, sentence_starts: np.ndarray, fixed: np.ndarray | None = None) -> Text:
        ids = np.asarray(ids, dtype=np.int64)
        starts = np.asarray(sentence_starts, dtype=bool)
        fixed = np.zeros(len(ids), bool) if fixed is None else np.asarray(fixed, dtype=bool)
        return cls(ids, np.cumsum(starts).astype(np.int64), np.arange(len(ids), dtype=np.int64), fixed)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def sentence_starts(self) -> np.ndarray:
        """A token starts a sentence where the sentence changes, at a sentence that began in this instance (the
        continuation piece, sentence 0, stays unmarked; a sentence split by rotation is marked at both pieces)."""
        change = np.ones(len(self.sentence), bool)
        change[1:] = self.sentence[1:] != self.sentence[:-1]
        return change & (self.sentence > 0)

    def take(self, index: np.ndarray) -> Text:
        """The tokens at `index`, in that order."""
        return Text(self.ids[index], self.sentence[index], self.origin[index], self.fixed[index])


NoisingFunction = Callable[[Text, np.random.Generator, NoisingOptions, int], Text]

#: name -> noising function; each entry's `switch` names the option that turns it on (a rate > 0 or True)
NOISING: Registry[NoisingFunction] = Registry("noising function")


def active_noising(options: NoisingOptions) -> list[str]:
    """The functions `options` turn on, in application order (registration order)."""
    return [name for name in NOISING if getattr(options, NOISING.get_entry(name).info["switch"])]  # type: ignore[union-attr]


def apply_noising(text: Text, rng: np.random.Generator, options: NoisingOptions, mask_id: int) -> Text:
    """Every function `options` turn on, in order, each on the previous one's output."""
    for name in active_noising(options):
        text = NOISING[name](text, rng, options, mask_id)
    return text


@NOISING.register("sentence_permutation", switch="permute_sentences")
def sentence_permutation(text: Text, rng: np.random.Generator, options: NoisingOptions, mask_id: int) -> Text:
    """The sentences (runs of one sentence index) shuffled uniformly; fixed tokens stay where they are and cut
    the body into stretches, each shuffled on its own (so no sentence crosses a document boundary)."""
    order: list[int] = []
    n = len(text)
    i = 0
    while i < n:
        if text.fixed[i]:
            order.append(i)
            i += 1
            continue
        end = i
        while end < n and not text.fixed[end]:
            end += 1
        cuts = [i] + [j for j in range(i + 1, end) if text.sentence[j] != text.sentence[j - 1]] + [end]
        pieces = [range(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        for p in rng.permutation(len(pieces)):
            order.extend(pieces[p])
        i = end
    return text.take(np.asarray(order, dtype=np.int64))


@NOISING.register("token_masking", switch="mask_rate")
def token_masking(text: Text, rng: np.random.Generator, options: NoisingOptions, mask_id: int) -> Text:
    """Each non-fixed token replaced by [MASK] with probability `mask_rate` (it keeps its origin)."""
    hit = (rng.random(len(text)) < options.mask_rate) & ~text.fixed
    return Text(np.where(hit, mask_id, text.ids), text.sentence, text.origin, text.fixed)


@NOISING.register("token_deletion", switch="delete_rate")
def token_deletion(text: Text, rng: np.random.Generator, options: NoisingOptions, mask_id: int) -> Text:
    """Each non-fixed token deleted with probability `delete_rate`; the rest keep their order."""
    gone = (rng.random(len(text)) < options.delete_rate) & ~text.fixed
    return text.take(np.flatnonzero(~gone))


def span_lengths(rng: np.random.Generator, poisson_lambda: float, budget: int) -> np.ndarray:
    """Poisson span lengths drawn until they cover `budget` tokens; the last one cut to fit exactly (so it is
    at least 1), then shuffled so the cut one is not always last."""
    if budget <= 0:
        return np.zeros(0, dtype=np.int64)
    lengths = np.zeros(0, dtype=np.int64)
    while lengths.sum() < budget:
        lengths = np.concatenate([lengths, rng.poisson(poisson_lambda, size=max(4, budget // 2))])
    cum = np.cumsum(lengths)
    last = int(np.searchsorted(cum, budget))  # first index covering the budget
    lengths = lengths[:last + 1].copy()
    lengths[-1] = budget - (cum[last - 1] if last else 0)
    return lengths[rng.permutation(len(lengths))].astype(np.int64)


def span_plan(rng: np.random.Generator, eligible: int, rate: float, poisson_lambda: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Where the infilling spans go among `eligible` tokens: (starts, lengths) in reading order, starts as
    indices into the eligible tokens (a 0-length span at `eligible` inserts at the end).

    round(rate * eligible) tokens are covered exactly. The spans are placed uniformly among the arrangements
    of s spans and the uncovered tokens (s slots chosen out of uncovered + s), so they never overlap, any two
    may touch, and the lengths keep their Poisson distribution (no rejection of long spans)."""
    budget = int(round(rate * eligible))
    lengths = span_lengths(rng, poisson_lambda, budget)
    s = len(lengths)
    if s == 0:
        return np.zeros(0, dtype=np.int64), lengths
    slots = np.sort(rng.choice(eligible - budget + s, size=s, replace=False))
    before = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return (slots - np.arange(s) + before).astype(np.int64), lengths


@NOISING.register("text_infilling", switch="infill_rate")
def text_infilling(text: Text, rng: np.random.Generator, options: NoisingOptions, mask_id: int) -> Text:
    """Spans of Poisson(`infill_lambda`) length covering about `infill_rate` of the non-fixed tokens, each
    replaced by ONE [MASK] (a 0-length span inserts one); a fixed token inside a span stays, after its mask."""
    eligible = np.flatnonzero(~text.fixed)
    n = len(text)
    starts, lengths = span_plan(rng, len(eligible), options.infill_rate, options.infill_lambda)
    if len(starts) == 0:
        return text
    removed = np.zeros(n, bool)
    inserts = np.zeros(n + 1, dtype=np.int64)  # masks to put before body position i (n: at the end)
    for start, length in zip(starts, lengths, strict=True):
        inserts[eligible[start] if start < len(eligible) else n] += 1
        removed[eligible[start:start + length]] = True
    order: list[int] = []
    for i in range(n + 1):
        order.extend([-1] * int(inserts[i]))
        if i < n and not removed[i]:
            order.append(i)
    index = np.asarray(order, dtype=np.int64)
    new = index < 0
    # a mask belongs to the sentence of the token it stands before (the span's first token), or the last one
    anchor = index.copy()
    positions = np.repeat(np.arange(n + 1), inserts)  # the body position of each mask, in output order
    anchor[new] = np.minimum(positions, n - 1)
    return Text(np.where(new, mask_id, text.ids[anchor]), text.sentence[anchor],
                np.where(new, -1, text.origin[anchor]), np.where(new, False, text.fixed[anchor]))


@NOISING.register("document_rotation", switch="rotate")
def document_rotation(text: Text, rng: np.random.Generator, options: NoisingOptions, mask_id: int) -> Text:
    """A token chosen uniformly at random becomes the first: the body rotated left by that many positions."""
    n = len(text)
    if n == 0:
        return text
    r = int(rng.integers(0, n))
    return text.take(np.roll(np.arange(n), -r))


__all__ = ["NOISING", "NoisingFunction", "NoisingOptions", "Text", "active_noising", "apply_noising",
           "document_rotation", "sentence_permutation", "span_lengths", "span_plan", "text_infilling",
           "token_deletion", "token_masking"]
