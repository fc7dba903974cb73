"""AMBERT's pretraining batches: the fine batch plus the aligned coarse one, masked together.

The coarse vocabulary and the word split live in :mod:`bertology.tokenization.coarse` (the tokenizer builds
the same coarse sequence from raw text); they are imported here under their old names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..tokenization.coarse import CLS, COARSE_SPECIALS, MASK, PAD, SEP, UNK, CoarseVocabulary, words
from .collate import PretrainingCollator

__all__ = ["CLS", "COARSE_SPECIALS", "MASK", "PAD", "SEP", "UNK", "AmbertCollator", "CoarseVocabulary", "words"]


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
