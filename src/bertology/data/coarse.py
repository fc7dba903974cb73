"""Coarse-grained tokens for AMBERT, derived from a prepared corpus's word starts.

A coarse token is a whole word: the run of fine tokens from one word start to the next (a jieba word of
Chinese characters, an English word of word pieces). The vocabulary keeps the most frequent words; the
coarse sequence of an instance is built from its fine tokens, so no second tokenization pass is needed and
the two sequences stay aligned word for word.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils.io import atomic_write
from .collate import PretrainingCollator

COARSE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(5)


def words(ids: np.ndarray, word_starts: np.ndarray) -> list[tuple[int, ...]]:
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

    @classmethod
    def build(cls, corpus: Any, documents: Iterable[int], size: int, min_frequency: int = 2) -> CoarseVocabulary:
        """The `size` most frequent words of the given documents (ties broken by the words themselves)."""
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


class AmbertCollator:
    """The fine batch as usual (masked by whole words), plus the aligned coarse batch: a word is masked on
    the coarse side exactly when its characters are, replaced the same way ([MASK], random word or kept)."""

    def __init__(self, fine: PretrainingCollator, vocab: CoarseVocabulary, mask_token_id: int) -> None:
        self.fine = fine
        self.vocab = vocab
        self.mask_token_id = mask_token_id

    @property
    def masker(self):
        return self.fine.masker

    def __call__(self, examples: list[dict[str, Any]], epoch: int = 0) -> dict[str, torch.Tensor]:
        batch = self.fine(examples, epoch=epoch)
        rows = []
        for r, ex in enumerate(examples):
            n = len(ex["input_ids"])
            original, starts = ex["input_ids"], ex["word_starts"]
            corrupted = batch["input_ids"][r, :n].numpy()
            labels = batch["labels"][r, :n].numpy()
            rng = np.random.default_rng([self.fine.seed, epoch, int(ex["index"]), 1])
            ids, lab, seg = [], [], []
            bounds = np.flatnonzero(starts)
            for a, b in zip(bounds, [*bounds[1:], n], strict=True):
                word = tuple(int(t) for t in original[a:b])
                if not ex["maskable"][a]:  # [CLS] / [SEP]
                    ids.append(CLS if a == 0 else SEP)
                    lab.append(-100)
                elif (labels[a:b] != -100).any():
                    target = self.vocab.lookup(word)
                    if corrupted[a] == self.mask_token_id:
                        ids.append(MASK)
                    elif corrupted[a] != original[a]:
                        ids.append(int(rng.integers(len(COARSE_SPECIALS), len(self.vocab))))
                    else:
                        ids.append(target)
                    lab.append(target if target != UNK else -100)  # an unknown word is not a target
                else:
                    ids.append(self.vocab.lookup(word))
                    lab.append(-100)
                seg.append(int(ex["token_type_ids"][a]))
            rows.append((ids, lab, seg))
        width = max(len(r[0]) for r in rows)
        width = -(-width // 8) * 8
        coarse = torch.full((len(rows), width), PAD, dtype=torch.long)
        coarse_labels = torch.full((len(rows), width), -100, dtype=torch.long)
        coarse_types = torch.zeros((len(rows), width), dtype=torch.long)
        coarse_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (ids, lab, seg) in enumerate(rows):
            coarse[r, :len(ids)] = torch.tensor(ids)
            coarse_labels[r, :len(ids)] = torch.tensor(lab)
            coarse_types[r, :len(ids)] = torch.tensor(seg)
            coarse_mask[r, :len(ids)] = 1
        batch.update(coarse_ids=coarse, coarse_labels=coarse_labels, coarse_token_type_ids=coarse_types,
                     coarse_attention_mask=coarse_mask)
        return batch
