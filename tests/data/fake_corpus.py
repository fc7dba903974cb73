"""An in-memory stand-in with TokenCorpus's reading API, for testing what sits on top of it."""

from __future__ import annotations

import numpy as np


class FakeCorpus:
    def __init__(self, documents: list[list[list[int]]], vocab_size: int = 100, case: bool = False) -> None:
        self.sentences = [np.asarray(s, dtype=np.int64) for doc in documents for s in doc]
        self.doc_bounds = np.cumsum([0] + [len(doc) for doc in documents])
        self.vocab_size = vocab_size
        self.with_case = case

    @property
    def num_documents(self) -> int:
        return len(self.doc_bounds) - 1

    @property
    def num_sentences(self) -> int:
        return len(self.sentences)

    @property
    def num_tokens(self) -> int:
        return sum(len(s) for s in self.sentences)

    def document_sentences(self, d: int) -> range:
        return range(int(self.doc_bounds[d]), int(self.doc_bounds[d + 1]))

    def document_of_sentence(self, s: int) -> int:
        return int(np.searchsorted(self.doc_bounds, int(s), side="right")) - 1

    def sentence(self, s: int) -> np.ndarray:
        return self.sentences[s]

    def word_starts(self, s: int) -> np.ndarray:
        # even ids start words, odd ids continue them (a word-piece stand-in)
        starts = self.sentences[s] % 2 == 0
        if starts.size:
            starts[0] = True
        return starts

    def case(self, s: int) -> np.ndarray | None:
        return (self.sentences[s] % 5).astype(np.uint8) if self.with_case else None

    def sentence_lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sentences], dtype=np.int64)


def numbered_documents(n_docs: int, sentences_per_doc: int, seed: int = 0, lo: int = 3, hi: int = 12):
    """Documents whose token ids encode (document, sentence) so tests can trace where tokens came from."""
    rng = np.random.default_rng(seed)
    docs = []
    for d in range(n_docs):
        doc = []
        for s in range(sentences_per_doc):
            n = int(rng.integers(lo, hi))
            doc.append([10 + (d * sentences_per_doc + s) % 80] * n)
        docs.append(doc)
    return docs
