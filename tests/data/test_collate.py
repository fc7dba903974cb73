"""The pretraining collator: padding, labels, and masks that depend only on (seed, epoch, instance)."""

from __future__ import annotations

import numpy as np
import torch

from bertology.data.collate import PretrainingCollator
from bertology.data.maskers import MaskingConfig, TokenMasker


def _examples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(5, 30))
        ids = np.concatenate([[2], rng.integers(10, 90, length), [3]]).astype(np.int64)
        maskable = np.ones(len(ids), bool)
        maskable[[0, -1]] = False
        out.append({"index": 100 + i, "input_ids": ids, "token_type_ids": np.zeros(len(ids), np.int64),
                    "maskable": maskable, "word_starts": np.ones(len(ids), bool), "sentence_label": i % 2})
    return out


def _masker(mode="dynamic"):
    return TokenMasker(MaskingConfig(rate=0.3, mode=mode, static_copies=3), mask_token_id=4, unk_token_id=1,
                       vocab_size=100, special_ids={0, 1, 2, 3, 4})


def test_padding_shapes_and_labels():
    examples = _examples()
    batch = PretrainingCollator(_masker(), pad_token_id=0, seed=1)(examples, epoch=0)
    longest = max(len(e["input_ids"]) for e in examples)
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["input_ids"].shape[1] >= longest
    for r, e in enumerate(examples):
        n = len(e["input_ids"])
        assert batch["attention_mask"][r, :n].all() and not batch["attention_mask"][r, n:].any()
        assert (batch["input_ids"][r, n:] == 0).all() and (batch["labels"][r, n:] == -100).all()
        chosen = batch["labels"][r] != -100
        assert torch.equal(batch["labels"][r][chosen], torch.from_numpy(e["input_ids"])[chosen[:n]])
        unchanged = ~chosen[:n]
        assert torch.equal(batch["input_ids"][r, :n][unchanged], torch.from_numpy(e["input_ids"])[unchanged])
    assert batch["sentence_label"].tolist() == [e["sentence_label"] for e in examples]


def test_an_instance_gets_the_same_mask_in_any_batch():
    examples = _examples()
    collate = PretrainingCollator(_masker(), pad_token_id=0, seed=1)
    together = collate(examples, epoch=2)
    alone = collate([examples[3]], epoch=2)
    n = len(examples[3]["input_ids"])
    assert torch.equal(together["input_ids"][3, :n], alone["input_ids"][0, :n])
    assert torch.equal(together["labels"][3, :n], alone["labels"][0, :n])
    other_epoch = collate([examples[3]], epoch=3)
    assert not torch.equal(other_epoch["labels"][0, :n], alone["labels"][0, :n])


def test_static_masks_cycle_through_their_copies():
    examples = _examples()
    collate = PretrainingCollator(_masker("static"), pad_token_id=0, seed=1)
    masks = [collate(examples, epoch=e)["labels"] for e in range(6)]
    assert torch.equal(masks[0], masks[3]) and torch.equal(masks[1], masks[4])
    assert not torch.equal(masks[0], masks[1])


def test_no_masker_means_no_labels():
    batch = PretrainingCollator(None, pad_token_id=0)(_examples())
    assert "labels" not in batch
