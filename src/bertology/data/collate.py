"""Instances to a batch: mask (reproducibly per instance and epoch), apply the objectives' instance
transforms, pad, and turn into tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .maskers import Masker
from .transforms import InstanceTransform, check_instance


class PretrainingCollator:
    """Pads to the longest instance (rounded up to a multiple of 8 for friendlier kernels) and masks.

    The mask of instance i in epoch e depends only on (seed, e, i) (or e mod K for static masking), not on
    the batch it lands in, so masks survive resumes, worker counts and process counts unchanged; so do the
    instance transforms' random choices (see `data/transforms.py`).
    """

    def __init__(self, masker: Masker | None, pad_token_id: int, seed: int = 0, pad_to_multiple_of: int = 8,
                 transforms: Sequence[InstanceTransform] = ()) -> None:
        self.masker = masker
        self.pad = pad_token_id
        self.seed = seed
        self.multiple = pad_to_multiple_of
        self.transforms = list(transforms)
        names = [t.name for t in self.transforms]
        if len(set(names)) != len(names):
            raise ValueError(f"two instance transforms share a name (their random streams would too): {names}")

    def instance(self, ex: dict[str, Any], epoch: int) -> dict[str, Any]:
        """One example masked and transformed, as numpy arrays (before padding)."""
        ids = np.asarray(ex["input_ids"], dtype=np.int64)
        labels = np.full(len(ids), -100, dtype=np.int64)
        masked = ids
        if self.masker is not None:
            rng = self.masker.rng_for(self.seed, epoch, int(ex["index"]))
            masked, labels = self.masker(ids, ex["maskable"], ex["word_starts"], rng)
        item = {**ex, "input_ids": masked, "original_ids": ids, "labels": labels,
                "token_type_ids": np.asarray(ex["token_type_ids"], dtype=np.int64),
                "maskable": np.asarray(ex["maskable"], dtype=bool), "word_starts": np.asarray(ex["word_starts"], bool)}
        if "pinyin_ids" in item:
            # a hidden character must not show its pinyin (the glyph follows the [MASK] id by itself)
            item["pinyin_ids"] = np.where((masked != ids)[:, None], 0, item["pinyin_ids"])
        for transform in self.transforms:
            item = transform(item, transform.rng_for(self.seed, epoch, int(ex["index"])))
            check_instance(item, transform)
        return item

    def __call__(self, examples: list[dict[str, Any]], epoch: int = 0) -> dict[str, torch.Tensor]:
        items = [self.instance(ex, epoch) for ex in examples]
        longest = max(len(e["input_ids"]) for e in items)
        width = -(-longest // self.multiple) * self.multiple if self.multiple else longest
        rows = len(items)

        def tokens(name: str, pad: int, trailing: tuple[int, ...] = ()) -> torch.Tensor:
            out = np.full((rows, width, *trailing), pad, dtype=np.int64)
            for r, item in enumerate(items):
                out[r, :len(item[name])] = item[name]
            return torch.from_numpy(out)

        batch = {"input_ids": tokens("input_ids", self.pad), "token_type_ids": tokens("token_type_ids", 0)}
        mask = np.zeros((rows, width), dtype=np.int64)
        for r, item in enumerate(items):
            mask[r, :len(item["input_ids"])] = 1
        batch["attention_mask"] = torch.from_numpy(mask)
        if self.masker is not None:
            batch["labels"] = tokens("labels", -100)
        if "sentence_label" in items[0]:
            batch["sentence_label"] = torch.tensor([int(e["sentence_label"]) for e in items])
        if "case_labels" in items[0]:
            batch["case_labels"] = tokens("case_labels", -100)
        if "pinyin_ids" in items[0]:
            batch["pinyin_ids"] = tokens("pinyin_ids", 0, (8,))
        if "position_ids" in items[0]:
            batch["position_ids"] = tokens("position_ids", 0)
        for transform in self.transforms:
            for name, pad in transform.token_fields.items():
                batch[name] = tokens(name, pad)
            for name, pad in transform.row_fields.items():
                arrays = [np.asarray(item[name], dtype=np.int64) for item in items]
                length = max(len(a) for a in arrays)
                out = np.full((rows, length, *arrays[0].shape[1:]), pad, dtype=np.int64)
                for r, a in enumerate(arrays):
                    out[r, :len(a)] = a
                batch[name] = torch.from_numpy(out)
            for name, pad in transform.square_fields.items():
                out = np.full((rows, width, width), pad, dtype=np.int64)
                for r, item in enumerate(items):
                    n = len(item["input_ids"])
                    out[r, :n, :n] = item[name]
                batch[name] = torch.from_numpy(out)
            for name in transform.scalar_fields:
                batch[name] = torch.tensor([int(item[name]) for item in items])
        return batch
