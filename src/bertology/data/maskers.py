"""Masking strategies for masked-language-model pretraining: which tokens to predict, and how to hide them.

A strategy (token, whole word, span, entity) only *selects* the positions to predict; the base class then
corrupts them the BERT way (replacement token / random token / unchanged, 80/10/10 by default), so the
strategies compare on selection alone. Strategies are chosen by name from :data:`MASKERS`: a new one is one
module with a class decorated `@MASKERS.register("name")` (with `options=OptionsDataclass` if it takes options
of its own, given as `masking.options`). Work is numpy, per sequence, and every draw comes from the Generator passed
in, so a mask is reproducible from (seed, epoch, index) alone (see :meth:`Masker.rng_for`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import ConfigError
from ..utils.registry import Registry
from ..utils.typed import Where, as_where, check_choice, check_fields, from_mapping

if TYPE_CHECKING:
    from ..tokenization.base import BaseTokenizer

__all__ = [
    "IGNORE_INDEX", "MASKERS", "EntityMasker", "Masker", "MaskingConfig", "Span", "SpanMasker",
    "TokenMasker", "UnitMasker", "WholeWordMasker", "build_masker", "read_lexicon", "word_units",
]

#: Label of positions that are not predicted (what torch's cross-entropy ignores by default).
IGNORE_INDEX = -100
REPLACEMENTS = ("mask", "unk")
MODES = ("dynamic", "static")

#: Strategies by name; MaskingConfig.strategy must be a key.
MASKERS: Registry[type[Masker]] = Registry("masker")


@dataclass
class MaskingConfig:
    #: a key of MASKERS: "token", "whole_word", "span" or "entity"
    strategy: str = "token"
    #: share of the maskable (non-special) tokens to predict
    rate: float = 0.15
    #: of the predicted tokens, the share replaced by the replacement token
    mask_prob: float = 0.8
    #: ... and the share replaced by a random non-special token (the rest keep the original)
    random_prob: float = 0.1
    #: "mask" ([MASK]) or "unk" ([UNK] in its place, a variant the literature compares)
    replacement: str = "mask"
    #: cap on predictions per sequence (BERT used 20 for 128 tokens); None: no cap
    max_predictions: int | None = None
    #: geometric parameter of span lengths, in words (SpanBERT: 0.2)
    span_p: float = 0.2
    #: longest span, in words (lengths follow the geometric distribution truncated here and renormalised)
    span_max: int = 10
    #: phrase/entity lexicon, one phrase per line (strategy "entity")
    lexicon: str | None = None
    #: "dynamic" (a new mask each epoch) or "static" (static_copies fixed masks per sequence)
    mode: str = "dynamic"
    #: number of distinct masks per sequence in static mode
    static_copies: int = 10
    #: options of a strategy registered with an options dataclass of its own (the built-in ones read the
    #: fields above)
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        """Raise ConfigError naming the first field with a wrong type or an impossible value."""
        where = as_where(where)
        check_fields(self, where)
        check_choice(where, "strategy", self.strategy, MASKERS)
        self.strategy_options(where)

        def prob(x: float) -> bool:
            return 0.0 <= x <= 1.0

        checks = [
            # rate 0 would still predict one token per sequence (the budget is at least 1): refuse it.
            ("rate", 0.0 < self.rate <= 1.0, "lie in (0, 1]"),
            ("mask_prob", prob(self.mask_prob), "lie in [0, 1]"),
            ("random_prob", prob(self.random_prob), "lie in [0, 1]"),
            ("max_predictions", self.max_predictions is None or self.max_predictions >= 1, "be >= 1 or null"),
            ("span_p", 0.0 < self.span_p <= 1.0, "lie in (0, 1]"),
            ("span_max", self.span_max >= 1, "be >= 1"),
            ("lexicon", self.lexicon is None or self.lexicon.strip() != "", "be a file path or null"),
            ("static_copies", self.static_copies >= 1, "be >= 1"),
        ]
        for name, ok, must in checks:
            if not ok:
                raise ConfigError(f"{where}field '{name}' must {must}, got {getattr(self, name)!r}")
        check_choice(where, "replacement", self.replacement, REPLACEMENTS)
        check_choice(where, "mode", self.mode, MODES)
        if self.mask_prob + self.random_prob > 1.0 + 1e-9:
            raise ConfigError(
                f"{where}fields 'mask_prob' + 'random_prob' must sum to at most 1, got "
                f"{self.mask_prob} + {self.random_prob}"
            )

    def strategy_options(self, where: str | Where = "") -> Any:
        """`options` parsed into the dataclass the strategy was registered with (None if it takes none)."""
        return MASKERS.options(self.strategy, self.options, as_where(where).child("options"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> MaskingConfig:
        config = from_mapping(cls, data, where)
        config.validate(where)
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- helpers


def word_units(maskable: np.ndarray, word_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole words of the maskable positions: (unit id per position, -1 where not maskable; starts; lengths).

    A unit begins at a word start or right after a non-maskable position, so a unit never crosses a
    special token even when the caller's `word_starts` forgot to mark the token after it.
    """
    prev = np.zeros_like(maskable)
    prev[1:] = maskable[:-1]
    begins = maskable & (word_starts | ~prev)
    unit_of = np.cumsum(begins) - 1
    unit_of[~maskable] = -1
    starts = np.flatnonzero(begins)
    lengths = np.bincount(unit_of[maskable], minlength=starts.size)
    return unit_of, starts, lengths


def _greedy_fill(lengths: np.ndarray, budget: int) -> np.ndarray:
    """Which units, visited in the given order, are taken: each one that still fits in the budget.

    This is create_pretraining_data's rule (skip a word that would overshoot, stop at the budget). The
    budget only shrinks, so a skipped unit can never fit later: the loop jumps over prefixes with cumsum
    and runs at most once per skip.
    """
    taken = np.zeros(lengths.size, dtype=bool)
    remaining, p = budget, 0
    while remaining > 0 and p < lengths.size:
        sums = np.cumsum(lengths[p:])
        k = int(np.searchsorted(sums, remaining, side="right"))
        if k:
            taken[p:p + k] = True
            remaining -= int(sums[k - 1])
            p += k
        if remaining == 0 or p >= lengths.size:
            break
        fits = np.flatnonzero(lengths[p:] <= remaining)
        if fits.size == 0:
            break
        p += int(fits[0])
    return taken


# ---------------------------------------------------------------------------------------------- maskers


class Masker:
    """Base class: a selection strategy (:meth:`select`, in subclasses) plus BERT's corruption.

    `special_ids` are never predicted and never drawn as random replacements; [MASK] and [UNK] are
    always among them. `lexicon_ids` (token-id phrases) is used by strategies that need one.
    """

    #: whether build_masker should read and tokenize config.lexicon for this strategy
    uses_lexicon = False

    def __init__(self, config: MaskingConfig, mask_token_id: int, unk_token_id: int, vocab_size: int,
                 special_ids: set[int] | None = None, lexicon_ids: list[list[int]] | None = None) -> None:
        config.validate()
        if vocab_size <= 0:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        for name, value in (("mask_token_id", mask_token_id), ("unk_token_id", unk_token_id)):
            if not 0 <= value < vocab_size:
                raise ValueError(f"{name}={value} lies outside the vocabulary [0, {vocab_size})")
        self.config = config
        self.mask_token_id = int(mask_token_id)
        self.unk_token_id = int(unk_token_id)
        self.vocab_size = int(vocab_size)
        always = {self.mask_token_id, self.unk_token_id}
        self.special_ids = frozenset(int(i) for i in (special_ids or ())) | always
        self._special = np.array(sorted(self.special_ids), dtype=np.int64)
        # Random replacements: any ordinary token, never a special one (it would leak structure).
        self._random_pool = np.setdiff1d(np.arange(self.vocab_size, dtype=np.int64), self._special)
        if config.random_prob > 0 and self._random_pool.size == 0:
            raise ValueError("random_prob > 0 but every vocabulary id is special: nothing to draw from")
        self.replacement_id = self.mask_token_id if config.replacement == "mask" else self.unk_token_id
        #: the strategy's own options (its registered options dataclass), None for the built-in strategies
        self.options = config.strategy_options()
        self.lexicon_ids = [list(map(int, p)) for p in lexicon_ids] if lexicon_ids is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    # ------------------------------------------------------------------------------------ selection

    def budget(self, n_maskable: int) -> int:
        """How many tokens to predict: round(rate * maskable), at least 1, at most max_predictions."""
        if n_maskable <= 0:
            return 0
        n = max(1, round(self.config.rate * n_maskable))  # Python's round, as create_pretraining_data
        if self.config.max_predictions is not None:
            n = min(n, self.config.max_predictions)
        return min(n, n_maskable)

    def select(self, tokens: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """Bool mask of the positions to predict (only maskable ones, at most the budget)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------- corruption

    def __call__(self, tokens: Any, maskable: Any, word_starts: Any,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(corrupted tokens, labels), both int64; labels hold the original id where predicted, else -100."""
        tokens, maskable, word_starts = self._check(tokens, maskable, word_starts)
        selected = np.asarray(self.select(tokens, maskable, word_starts, rng), dtype=bool)
        if selected.shape != tokens.shape or (selected & ~maskable).any():
            raise RuntimeError(f"{type(self).__name__}.select chose a position that is not maskable")
        positions = np.flatnonzero(selected)
        labels = np.full(tokens.shape, IGNORE_INDEX, dtype=np.int64)
        labels[positions] = tokens[positions]
        corrupted = tokens.copy()
        # Decided per position, as BERT does, even inside a whole word or an entity.
        u = rng.random(positions.size)
        replace = u < self.config.mask_prob
        randomise = ~replace & (u < self.config.mask_prob + self.config.random_prob)
        corrupted[positions[replace]] = self.replacement_id
        if randomise.any():
            draws = rng.integers(self._random_pool.size, size=int(randomise.sum()))
            corrupted[positions[randomise]] = self._random_pool[draws]
        return corrupted, labels

    def _check(self, tokens: Any, maskable: Any,
               word_starts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not (tokens.size == 0 or np.issubdtype(tokens.dtype, np.integer)):
            raise ValueError(
                f"tokens must be a 1-D array of ids, got shape {tokens.shape} dtype {tokens.dtype}"
            )
        tokens = tokens.astype(np.int64)
        maskable = np.asarray(maskable, dtype=bool)
        word_starts = np.asarray(word_starts, dtype=bool)
        for name, arr in (("maskable", maskable), ("word_starts", word_starts)):
            if arr.shape != tokens.shape:
                raise ValueError(f"{name} has shape {arr.shape}, tokens {tokens.shape}: one flag per token")
        # A special id is never predicted, whatever the caller's flags say.
        maskable = maskable & ~np.isin(tokens, self._special)
        return tokens, maskable, word_starts

    # ---------------------------------------------------------------------------------- randomness

    def rng_for(self, seed: int, epoch: int, index: int) -> np.random.Generator:
        """The generator for sequence `index` in `epoch`: a pure function of its arguments.

        Dynamic mode gives a new mask every epoch; static mode reuses `static_copies` masks in turn
        (epoch e and e + K mask alike), as the original BERT data with its K duplicated copies did.
        """
        if self.config.mode == "static":
            epoch = epoch % self.config.static_copies
        return np.random.default_rng([seed, epoch, index])


@MASKERS.register("token")
class TokenMasker(Masker):
    """Original BERT: `budget` maskable positions uniformly at random, without replacement."""

    def select(self, tokens: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        candidates = np.flatnonzero(maskable)
        selected = np.zeros(tokens.shape, dtype=bool)
        n = self.budget(candidates.size)
        if n:
            selected[rng.choice(candidates, size=n, replace=False)] = True
        return selected


class UnitMasker(Masker):
    """Masks whole units (:meth:`units`) visited in random order, each taken if it fits the budget."""

    def units(self, tokens: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray) -> np.ndarray:
        """Unit id per position (0..m-1, contiguous runs), -1 where not maskable."""
        raise NotImplementedError

    def select(self, tokens: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        unit_of = self.units(tokens, maskable, word_starts)
        inside = unit_of >= 0
        selected = np.zeros(tokens.shape, dtype=bool)
        n = self.budget(int(inside.sum()))
        if not n:
            return selected
        lengths = np.bincount(unit_of[inside])
        order = rng.permutation(lengths.size)
        chosen = np.zeros(lengths.size, dtype=bool)
        chosen[order[_greedy_fill(lengths[order], n)]] = True
        selected[inside] = chosen[unit_of[inside]]
        return selected


@MASKERS.register("whole_word")
class WholeWordMasker(UnitMasker):
    """Whole-word masking (BERT's 2019 update): the pieces of a word are predicted together or not at all."""

    def units(self, tokens: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray) -> np.ndarray:
        return word_units(maskable, word_starts)[0]


@MASKERS.register("entity")
class EntityMasker(UnitMasker):
    """ERNIE-style phrase/entity masking: lexicon phrases found in the text are units, as are other words.

    Occurrences are found by greedy longest match on token ids, left to right, non-overlapping, and
    must begin and end on word boundaries (a phrase never takes half a word, so every unit is whole
    words). Phrases holding a special id (e.g. [UNK] for out-of-vocabulary text) can never match.
    """

    uses_lexicon = True

    def __init__(self, config: MaskingConfig, mask_token_id: int, unk_token_id: int, vocab_size: int,
                 special_ids: set[int] | None = None, lexicon_ids: list[list[int]] | None = None) -> None:
        super().__init__(config, mask_token_id, unk_token_id, vocab_size, special_ids, lexicon_ids)
        if self.lexicon_ids is None:
            raise ConfigError("field 'lexicon' must name a phrase file for strategy 'entity'")
        self._phrases: dict[int, set[tuple[int, ...]]] = {}
        for phrase in self.lexicon_ids:
            if phrase and not self.special_ids.intersection(phrase):
                self._phrases.setdefault(len(phrase), set()).add(tuple(phrase))
        self._longest = max(self._phrases, default=0)
        self._known_length = np.zeros(self._longest + 1, dtype=bool)
        self._known_length[list(self._phrases)] = True
        # Window hashes prefilter matches in one vectorised pass; candidates are then checked exactly.
        self._mult = np.random.default_rng(0).integers(1, 2**63, size=self._longest, dtype=np.uint64)
        self._hashes = np.unique(np.concatenate(
            [self._hash(np.array(sorted(ps), dtype=np.int64))[:, -1] for ps in self._phrases.values()]
            or [np.zeros(0, dtype=np.uint64)]
        ))

    def _hash(self, windows: np.ndarray) -> np.ndarray:
        """Hashes of every prefix of each window row: [:, l - 1] is the hash of its first l tokens."""
        # uint64 arithmetic wraps silently: a hash, verified afterwards.
        products = windows.astype(np.uint64) * self._mult[: windows.shape[1]]
        return np.cumsum(products, axis=1, dtype=np.uint64)

    def occurrences(self, tokens: np.ndarray, maskable: np.ndarray,
                    word_starts: np.ndarray) -> list[tuple[int, int]]:
        """Lexicon occurrences as (start, stop) positions: leftmost-longest, non-overlapping, whole words."""
        tokens, maskable, word_starts = self._check(tokens, maskable, word_starts)
        n, longest = tokens.size, self._longest
        if n == 0 or longest == 0:
            return []
        _, starts, _ = word_units(maskable, word_starts)
        begins = np.zeros(n + 1, dtype=bool)
        begins[starts] = True
        begins[n] = True
        ends_ok = begins.copy()  # a phrase may stop before a word start, a special token, or the end
        ends_ok[:n] |= ~maskable
        unmaskable_before = np.concatenate(([0], np.cumsum(~maskable)))
        # Every (start i, length l) at once: an (n, longest) grid.
        first = np.arange(n)[:, None]
        stop = first + np.arange(1, longest + 1)[None, :]
        clipped = np.minimum(stop, n)
        ok = (
            begins[:n, None] & (stop <= n) & ends_ok[clipped] & self._known_length[None, 1:]
            & (unmaskable_before[clipped] == unmaskable_before[first])
        )
        if not ok.any():
            return []
        windows = np.lib.stride_tricks.sliding_window_view(
            np.concatenate([tokens, np.zeros(longest - 1, dtype=np.int64)]), longest
        )
        rows = np.flatnonzero(ok.any(axis=1))
        ok[rows] &= np.isin(self._hash(windows[rows]), self._hashes)
        best = np.zeros(n, dtype=np.int64)
        for i, l_minus_1 in np.argwhere(ok):  # row-major: per start, ascending lengths
            length = int(l_minus_1) + 1
            if tuple(tokens[i:i + length].tolist()) in self._phrases[length]:
                best[i] = length  # a later (longer) verified match overwrites: longest wins
        found, cursor = [], 0
        for i in np.flatnonzero(best):
            if i >= cursor:
                found.append((int(i), int(i + best[i])))
                cursor = int(i + best[i])
        return found

    def units(self, tokens: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray) -> np.ndarray:
        unit_of = word_units(maskable, word_starts)[0]
        for start, stop in self.occurrences(tokens, maskable, word_starts):
            unit_of[start:stop] = unit_of[start]
        inside = unit_of >= 0
        unit_of[inside] = np.unique(unit_of[inside], return_inverse=True)[1]
        return unit_of


class Span(NamedTuple):
    """One span drawn by SpanMasker: positions [start, stop), `words` covered of the `sampled` length."""

    start: int
    stop: int
    words: int
    sampled: int
    #: True when the budget cut the span short
    trimmed: bool


@MASKERS.register("span")
class SpanMasker(Masker):
    """SpanBERT span masking: contiguous runs of whole words with geometric lengths.

    Repeat until the budget is met: draw a length L in words from Geometric(span_p) truncated at span_max
    and renormalised, P(L = k) = p (1-p)^(k-1) / (1 - (1-p)^span_max) for k = 1..span_max (the paper's
    distribution: mean 3.8 for p = 0.2 and span_max 10; a longer draw is as if drawn again, never clipped),
    and a start word uniformly among the unpredicted words that still fit the remaining budget; the span
    covers L words from there, stopping early at a special token or the sequence end (spans never cross
    them). Words already predicted inside a span count towards L but add nothing. Budget: the span's words
    are added in order while they fit, so the last span is trimmed at a word boundary and the count never
    exceeds the budget.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._length_cdf = np.cumsum(self.length_probabilities())

    def length_probabilities(self) -> np.ndarray:
        """P(L = k) for k = 1..span_max: the geometric distribution truncated at span_max, renormalised."""
        p, cap = self.config.span_p, self.config.span_max
        weights = p * (1.0 - p) ** np.arange(cap, dtype=np.float64)
        return weights / weights.sum()

    def span_length(self, rng: np.random.Generator) -> int:
        """One span length in words, from the truncated geometric distribution.

        Drawing Geometric(span_p) again until it is <= span_max gives this distribution; inverting its
        cumulative distribution gives it from one uniform draw, so a tiny span_p with a small span_max
        cannot loop for long.
        """
        k = int(np.searchsorted(self._length_cdf, rng.random() * self._length_cdf[-1], side="right"))
        return min(k, self.config.span_max - 1) + 1

    def select(self, tokens: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        return self.select_spans(tokens, maskable, word_starts, rng)[0]

    def select_spans(self, tokens: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, list[Span]]:
        """The selection and the spans that made it (for inspection and tests)."""
        unit_of, starts, lengths = word_units(maskable, word_starts)
        selected = np.zeros(tokens.shape, dtype=bool)
        spans: list[Span] = []
        remaining = self.budget(int(lengths.sum()))
        if not remaining:
            return selected, spans
        m = starts.size
        # Last word of each word's run of maskable positions: spans stop there.
        run_break = np.ones(m, dtype=bool)
        run_break[:-1] = starts[1:] != starts[:-1] + lengths[:-1]
        run_id = np.concatenate(([0], np.cumsum(run_break)[:-1]))
        run_last = np.flatnonzero(run_break)[run_id]
        taken = np.zeros(m, dtype=bool)
        while remaining > 0:
            eligible = np.flatnonzero(~taken & (lengths <= remaining))
            if eligible.size == 0:
                break  # only words longer than what is left: stop just under the budget
            sampled = self.span_length(rng)
            first = int(eligible[rng.integers(eligible.size)])
            end = min(first + sampled, int(run_last[first]) + 1)
            new = first + np.flatnonzero(~taken[first:end])
            sums = np.cumsum(lengths[new])
            k = int(np.searchsorted(sums, remaining, side="right"))  # >= 1: `first` fits
            taken[new[:k]] = True
            remaining -= int(sums[k - 1])
            trimmed = k < new.size
            last = int(new[k] - 1) if trimmed else end - 1
            spans.append(Span(int(starts[first]), int(starts[last] + lengths[last]), last - first + 1,
                              sampled, trimmed))
        inside = unit_of >= 0
        selected[inside] = taken[unit_of[inside]]
        return selected, spans


# ---------------------------------------------------------------------------------------------- building


def read_lexicon(path: str | os.PathLike, tokenizer: BaseTokenizer) -> list[list[int]]:
    """Token-id phrases from a lexicon file (one phrase per line; blank lines skipped, repeats dropped)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"field 'lexicon': no such file {path}")
    phrases: dict[tuple[int, ...], None] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
                if ids:
                    phrases[tuple(ids)] = None
    return [list(p) for p in phrases]


def build_masker(config: MaskingConfig, tokenizer: BaseTokenizer) -> Masker:
    """The masker `config.strategy` names, with ids (and the lexicon, if it needs one) from `tokenizer`."""
    config.validate()
    cls = MASKERS.entry(config.strategy).obj
    lexicon_ids = None
    if cls.uses_lexicon:
        if config.lexicon is None:
            raise ConfigError(f"field 'lexicon' must name a phrase file for strategy {config.strategy!r}")
        lexicon_ids = read_lexicon(config.lexicon, tokenizer)
    return cls(config, tokenizer.mask_token_id, tokenizer.unk_token_id, tokenizer.vocab_size,
               tokenizer.special_token_ids, lexicon_ids)
