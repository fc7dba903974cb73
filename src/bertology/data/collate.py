"""Instances to a batch: pad, mask (reproducibly per instance and epoch), and turn into tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .maskers import Masker


class PretrainingCollator:
    """Pads to the longest instance (rounded up to a multiple of 8 for friendlier kernels) and masks.

    The mask of instance i in epoch e depends only on (seed, e, i) (or e mod K for static masking), not on
    the batch it lands in, so masks survive resumes, worker counts and process counts unchanged.
    """

    def __init__(self, masker: Masker | None, pad_token_id: int, seed: int = 0, pad_to_multiple_of: int = 8) -> None:
        self.masker = masker
        self.pad = pad_token_id
        self.seed = seed
        self.multiple = pad_to_multiple_of

    def __call__(self, examples: list[dict[str, Any]], epoch: int = 0) -> dict[str, torch.Tensor]:
        longest = max(len(e["input_ids"]) for e in examples)
        width = -(-longest // self.multiple) * self.multiple if self.multiple else longest
        rows = len(examples)
        input_ids = np.full((rows, width), self.pad, dtype=np.int64)
        token_type_ids = np.zeros((rows, width), dtype=np.int64)
        attention_mask = np.zeros((rows, width), dtype=np.int64)
        labels = np.full((rows, width), -100, dtype=np.int64)
        case = np.full((rows, width), -100, dtype=np.int64) if "case_labels" in examples[0] else None
        pinyin = np.zeros((rows, width, 8), dtype=np.int64) if "pinyin_ids" in examples[0] else None
        for r, ex in enumerate(examples):
            n = len(ex["input_ids"])
            ids = ex["input_ids"]
            if self.masker is not None:
                rng = self.masker.rng_for(self.seed, epoch, int(ex["index"]))
                ids, row_labels = self.masker(ids, ex["maskable"], ex["word_starts"], rng)
                labels[r, :n] = row_labels
            input_ids[r, :n] = ids
            token_type_ids[r, :n] = ex["token_type_ids"]
            attention_mask[r, :n] = 1
            if case is not None:
                case[r, :n] = ex["case_labels"]
            if pinyin is not None:
                pinyin[r, :n] = ex["pinyin_ids"]
                # a hidden character must not show its pinyin (the glyph follows the [MASK] id by itself)
                pinyin[r, :n][ids != ex["input_ids"]] = 0
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "token_type_ids": torch.from_numpy(token_type_ids),
            "attention_mask": torch.from_numpy(attention_mask),
        }
        if self.masker is not None:
            batch["labels"] = torch.from_numpy(labels)
        if "sentence_label" in examples[0]:
            batch["sentence_label"] = torch.tensor([int(e["sentence_label"]) for e in examples])
        if case is not None:
            batch["case_labels"] = torch.from_numpy(case)
        if pinyin is not None:
            batch["pinyin_ids"] = torch.from_numpy(pinyin)
        return batch
