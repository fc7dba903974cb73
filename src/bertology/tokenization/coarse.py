"""AMBERT's coarse-grained vocabulary: whole words, each a tuple of fine token ids.

A coarse token is the run of fine tokens from one word start to the next (a jieba word of Chinese
characters, an English word of word pieces), so the coarse sequence follows from the fine one and the two
stay aligned word for word. The vocabulary is built from a prepared corpus for pretraining
(data/coarse.py), and read from raw text by :class:`~bertology.tokenization.ambert.AmbertTokenizer` at
fine-tuning and prediction time; it lives here so that the tokenizer needs nothing from the data package.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bertology.utils.io import atomic_write

__all__ = ["CLS", "COARSE_SPECIALS", "COARSE_VOCAB_FILE", "MASK", "PAD", "SEP", "UNK", "CoarseVocabulary", "words"]

#: The coarse vocabulary's file, in a pretraining run folder and beside an AMBERT tokenizer's vocabulary.
COARSE_VOCAB_FILE = "coarse_vocab.json"
COARSE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(5)


def words(ids: np.ndarray, word_starts: np.ndarray) -> list[tuple[int, ...]]:
    """The words of a token sequence, each the tuple of its ids (the first token always opens one)."""
    starts = np.flatnonzero(word_starts)
    if len(ids) and (len(starts) == 0 or starts[0] != 0):
        starts = np.concatenate([[0], starts])
    return [tuple(int(t) for t in ids[a:b]) for a, b in zip(starts, [*starts[1:], len(ids)], strict=True)]


class CoarseVocabulary:
    """Word (tuple of fine ids) <-> coarse id; ids 0-4 are the special tokens."""

    def __init__(self, entries: list[tuple[int, ...]]) -> None:
        self.entries = entries
        self.index = {w: i + len(COARSE_SPECIALS) for i, w in enumerate(entries)}

    def __len__(self) -> int:
        return len(self.entries) + len(COARSE_SPECIALS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CoarseVocabulary) and self.entries == other.entries

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return f"CoarseVocabulary({len(self)} coarse tokens)"

    @classmethod
    def build(cls, corpus: Any, documents: Iterable[int], size: int, min_frequency: int = 2) -> CoarseVocabulary:
        """The `size` most frequent words of the given documents (ties broken by the words themselves).

        `corpus` is anything with `document_sentences(d)`, `sentence(s)` and `word_starts(s)` (a
        TokenCorpus), so this module needs nothing from the data package.
        """
        counts: Counter[tuple[int, ...]] = Counter()
        for d in documents:
            for s in corpus.document_sentences(int(d)):
                counts.update(words(corpus.sentence(s), corpus.word_starts(s)))
        ranked = sorted((w for w, c in counts.items() if c >= min_frequency), key=lambda w: (-counts[w], w))
        return cls(ranked[:size])

    def lookup(self, word: tuple[int, ...]) -> int:
        return self.index.get(word, UNK)

    def save(self, path: str | os.PathLike) -> Path:
        with atomic_write(path) as handle:
            json.dump({"specials": list(COARSE_SPECIALS), "words": [list(w) for w in self.entries]}, handle)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CoarseVocabulary:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls([tuple(w) for w in data["words"]])
