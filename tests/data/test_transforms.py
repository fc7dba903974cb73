"""Instance transforms in the collator: applied after masking, fields padded as declared, reproducible from
(seed, epoch, instance), and a transform that misaligns the per-token fields named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_collate import _examples, _masker

from bertology.data.collate import PretrainingCollator
from bertology.data.transforms import InstanceTransform


class DropOne(InstanceTransform):
    """Deletes one random inner token (every per-token field with it) and records what it did."""

    name = "drop-one"
    token_fields = {"kept_from": -1}
    row_fields = {"dropped": -7}
    square_fields = {"sees": 0}
    scalar_fields = ("where",)

    def __call__(self, item, rng):
        n = len(item["input_ids"])
        k = int(rng.integers(1, n - 1))
        keep = np.ones(n, bool)
        keep[k] = False
        for field in ("input_ids", "original_ids", "labels", "token_type_ids", "maskable", "word_starts"):
            item[field] = item[field][keep]
        item["kept_from"] = np.flatnonzero(keep)
        item["dropped"] = np.array([k, k])
        item["sees"] = np.tril(np.ones((n - 1, n - 1), np.int64))
        item["where"] = k
        return item


def test_transforms_run_after_masking_and_pad_as_declared():
    examples = _examples()
    batch = PretrainingCollator(_masker(), pad_token_id=0, seed=1, transforms=[DropOne()])(examples, epoch=2)
    width = batch["input_ids"].shape[1]
    assert batch["kept_from"].shape == (len(examples), width) and batch["sees"].shape == (len(examples), width, width)
    assert batch["dropped"].shape == (len(examples), 2) and batch["where"].shape == (len(examples),)
    for r, e in enumerate(examples):
        n = len(e["input_ids"]) - 1
        k = int(batch["where"][r])
        assert batch["attention_mask"][r].sum() == n and (batch["kept_from"][r, n:] == -1).all()
        original = np.delete(e["input_ids"], k)
        # masked positions hold [MASK]/random ids; every other position the original token, shifted past k
        keep = batch["labels"][r, :n] == -100
        assert torch.equal(batch["input_ids"][r, :n][keep], torch.from_numpy(original)[keep])
        assert torch.equal(batch["labels"][r, :n][~keep], torch.from_numpy(original)[~keep])
        assert batch["sees"][r, :n, :n].tril().sum() == n * (n + 1) // 2 and batch["sees"][r, n:].sum() == 0


def test_transform_choices_depend_on_seed_epoch_and_instance_only():
    examples = _examples(8)
    collate = PretrainingCollator(_masker(), pad_token_id=0, seed=1, transforms=[DropOne()])
    whole = collate(examples, epoch=1)["where"]
    halves = torch.cat([collate(examples[:3], epoch=1)["where"], collate(examples[3:], epoch=1)["where"]])
    assert torch.equal(whole, halves)
    assert not torch.equal(whole, collate(examples, epoch=2)["where"])


def test_a_transform_that_misaligns_fields_is_named():
    class Broken(InstanceTransform):
        name = "broken"

        def __call__(self, item, rng):
            item["labels"] = item["labels"][1:]
            return item

    with pytest.raises(RuntimeError, match="transform 'broken' left labels with"):
        PretrainingCollator(None, pad_token_id=0, transforms=[Broken()])(_examples(2))
