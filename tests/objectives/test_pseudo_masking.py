"""UniLMv2's pseudo-masked LM: the layout and attention mask on a hand-built example, the factorisation order's
distribution, the cap, reproducibility, both losses by hand, config errors, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math
from collections import Counter
from itertools import permutations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pretrain_helpers import tiny_overrides

import bertology.objectives.pseudo_masking  # noqa: F401  (registers pmlm)
from bertology import BertConfig
from bertology.data.collate import PretrainingCollator
from bertology.errors import ConfigError
from bertology.objectives import PretrainingModel, objective_classes
from bertology.objectives.pseudo_masking import (
    LABEL_FIELD,
    MASK_FIELD,
    PmlmOptions,
    PseudoMaskTransform,
    choose_spans,
    masked_spans,
)
from bertology.runs.pretrain import Pretraining, load_config

MASK, CLS, SEP, PAD = 4, 2, 3, 0
CFG = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=64, type_vocab_size=3, hidden_dropout_prob=0.0,
                 attention_probs_dropout_prob=0.0)


class FixedOrder:
    """A stand-in generator whose permutation is the given factorisation order."""

    def __init__(self, order: list[int]) -> None:
        self.order = order

    def permutation(self, n: int) -> np.ndarray:
        assert n == len(self.order)
        return np.array(self.order)


def _instance(ids: list[int], labelled: list[int], kept: tuple[int, ...] = ()) -> dict:
    """An instance as the collator hands it over: labelled positions hidden by [MASK] except those `kept`."""
    original = np.array(ids, dtype=np.int64)
    labels = np.full(len(ids), -100, dtype=np.int64)
    labels[labelled] = original[labelled]
    masked = original.copy()
    masked[[p for p in labelled if p not in kept]] = MASK
    types = np.zeros(len(ids), dtype=np.int64)
    types[len(ids) // 2:] = 1
    return {"input_ids": masked, "original_ids": original, "labels": labels, "token_type_ids": types,
            "maskable": original > 5, "word_starts": np.ones(len(ids), bool),
            "sentence_starts": np.eye(1, len(ids), 1, dtype=bool)[0], "index": 0, "document": 0}


def test_layout_and_attention_mask_on_a_hand_built_example():
    # [CLS] a b c d e f [SEP]: span A = positions 2-3, span B = position 5; order B then A.
    inst = _instance([CLS, 11, 12, 13, 14, 15, 16, SEP], [2, 3, 5], kept=(3,))
    out = PseudoMaskTransform(MASK, max_predictions=20)(inst, FixedOrder([1, 0]))
    # appended: copies B(5), A(2), A(3) at 8, 9, 10; then [P]s B, A, A at 11, 12, 13
    assert out["input_ids"].tolist() == [CLS, 11, MASK, MASK, 14, MASK, 16, SEP, 15, 12, 13, MASK, MASK, MASK]
    assert out["position_ids"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 5, 2, 3, 5, 2, 3]
    assert out["token_type_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 2, 2, 2]
    assert out["labels"].tolist() == [-100, -100, 12, 13, -100, 15, -100, -100] + [-100] * 6
    assert out[LABEL_FIELD].tolist() == [-100] * 11 + [15, 12, 13]
    assert out["original_ids"].tolist() == [CLS, 11, 12, 13, 14, 15, 16, SEP, 15, 12, 13, 15, 12, 13]
    assert not out["maskable"][8:].any() and not out["sentence_starts"][8:].any()
    ordinary = list(range(8))
    sees = {i: sorted(np.flatnonzero(row).tolist()) for i, row in enumerate(out[MASK_FIELD])}
    expected = {i: ordinary for i in ordinary}  # ordinary tokens: the ordinary part only
    expected[8] = ordinary + [8]  # copy of B (first in order): context and itself
    expected[9] = expected[10] = ordinary + [8, 9, 10]  # copies of A: context, B's copy, A's copies
    expected[11] = ordinary + [11]  # [P] of B: context and its own [P]; no copy
    expected[12] = expected[13] = ordinary + [8, 12, 13]  # [P]s of A: context, B's copy, A's [P]s
    assert sees == expected
    # the other order: A first, then B
    out = PseudoMaskTransform(MASK)(inst, FixedOrder([0, 1]))
    assert out["position_ids"][8:].tolist() == [2, 3, 5, 2, 3, 5]
    sees = {i: sorted(np.flatnonzero(row).tolist()) for i, row in enumerate(out[MASK_FIELD])}
    assert sees[11] == sees[12] == ordinary + [11, 12] and sees[13] == ordinary + [8, 9, 13]
    assert sees[8] == sees[9] == ordinary + [8, 9] and sees[10] == ordinary + [8, 9, 10]


def test_spans_are_maximal_labelled_runs():
    labels = np.array([-100, 7, 8, -100, 9, -100, -100, 1, 2, 3])
    assert masked_spans(labels) == [(1, 3), (4, 5), (7, 10)]
    assert masked_spans(np.full(5, -100)) == []
    out = PseudoMaskTransform(MASK)(_instance([CLS, 11, 12, SEP], []), np.random.default_rng(0))
    assert len(out["input_ids"]) == 4 and out[MASK_FIELD].tolist() == np.ones((4, 4)).tolist()


def test_factorisation_order_is_a_uniform_permutation():
    spans = [(1, 2), (3, 5), (6, 7)]
    rng = np.random.default_rng(123)
    draws = 6000
    counts = Counter(tuple(choose_spans(spans, 100, rng)) for _ in range(draws))
    assert set(counts) == set(permutations(spans))
    for order, count in counts.items():  # each 1/6; 4 standard deviations is 0.019
        assert abs(count / draws - 1 / 6) < 0.02, (order, count)


def test_cap_keeps_whole_spans_in_order_and_bounds_the_length():
    spans = [(1, 2), (3, 6), (7, 8), (9, 11)]  # lengths 1, 3, 1, 2
    rng = np.random.default_rng(5)
    first_kept = 0
    for _ in range(2000):
        chosen = choose_spans(spans, 3, rng)
        assert set(chosen) <= set(spans) and len(set(chosen)) == len(chosen)
        assert sum(b - a for a, b in chosen) <= 3
        # nothing left out would still fit: the choice is greedy in the drawn order
        room = 3 - sum(b - a for a, b in chosen)
        assert all(b - a > room for a, b in spans if (a, b) not in chosen)
        first_kept += (3, 6) in chosen
    # the 3-token span fits only when drawn first: a quarter of the time
    assert abs(first_kept / 2000 - 0.25) < 0.04
    inst = _instance([CLS, *range(10, 20), SEP], [1, 3, 4, 5, 7, 9, 10])
    for seed in range(20):
        out = PseudoMaskTransform(MASK, max_predictions=3)(inst, np.random.default_rng(seed))
        k = int((out[LABEL_FIELD] != -100).sum())
        assert k <= 3 and len(out["input_ids"]) == 12 + 2 * k
        assert (out["input_ids"][:12][inst["labels"] != -100] == MASK).all()  # uncapped spans stay [MASK]


def test_same_seed_epoch_index_gives_the_same_instance_and_another_epoch_another():
    inst = _instance([CLS, *range(10, 30), SEP], [1, 2, 4, 6, 7, 8, 10, 13, 15, 16, 18])
    transform = PseudoMaskTransform(MASK, max_predictions=20)
    first = transform(dict(inst), transform.rng_for(7, 0, 42))
    again = transform(dict(inst), transform.rng_for(7, 0, 42))
    for key in (*first.keys(),):
        assert np.array_equal(np.asarray(first[key]), np.asarray(again[key])), key
    others = [transform(dict(inst), transform.rng_for(7, epoch, 42)) for epoch in (1, 2, 3)]
    assert all(not np.array_equal(o["position_ids"], first["position_ids"]) for o in others)
    other_index = transform(dict(inst), transform.rng_for(7, 0, 43))
    assert not np.array_equal(other_index["position_ids"], first["position_ids"])


class _FixedMasker:
    """A masker stand-in for the collator: labels the positions it was given (no randomness of its own)."""

    def __init__(self, positions: dict[int, list[int]]) -> None:
        self.positions = positions

    def rng_for(self, seed: int, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng([seed, epoch, index])

    def __call__(self, ids, maskable, word_starts, rng):
        index = int(ids[1])  # the examples below carry their index in position 1
        labels = np.full(len(ids), -100, dtype=np.int64)
        labels[self.positions[index]] = ids[self.positions[index]]
        return np.where(labels != -100, MASK, ids), labels


def _collated_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = np.random.default_rng(seed)
    lengths, picks = [12, 9, 14], {0: [2, 3, 7], 1: [4], 2: [2, 5, 6, 10, 11]}
    examples = []
    for i, n in enumerate(lengths):
        ids = np.concatenate([[CLS, i], g.integers(6, 60, n - 3), [SEP]])
        examples.append({"input_ids": ids, "token_type_ids": np.zeros(n, np.int64), "maskable": ids > 5,
                         "word_starts": np.ones(n, bool), "sentence_starts": np.zeros(n, bool), "index": i,
                         "document": 0})
    collator = PretrainingCollator(_FixedMasker(picks), PAD, seed=3, transforms=[PseudoMaskTransform(MASK)])
    return collator(examples)


def test_collated_batch_pads_the_square_mask():
    batch = _collated_batch()
    width = batch["input_ids"].shape[1]
    assert batch[MASK_FIELD].shape == (3, width, width)
    lengths = batch["attention_mask"].sum(1).tolist()
    assert lengths == [12 + 6, 9 + 2, 14 + 10]
    for row, n in enumerate(lengths):
        assert not batch[MASK_FIELD][row, n:].any() and not batch[MASK_FIELD][row, :, n:].any()
    assert (batch[LABEL_FIELD] != -100).sum(1).tolist() == [3, 1, 5]


def test_both_losses_by_hand_and_what_each_part_sees():
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["mlm", "pmlm"]).eval()
    batch = _collated_batch()
    out = model(**batch)
    square = batch[MASK_FIELD]
    hidden = model.bert(batch["input_ids"], square, batch["token_type_ids"], batch["position_ids"]).last_hidden_state
    at_p = batch[LABEL_FIELD] != -100
    expected = F.cross_entropy(model.objectives["pmlm"].head(hidden[at_p]), batch[LABEL_FIELD][at_p])
    assert torch.allclose(out.losses["pmlm"], expected, atol=1e-6)
    # mlm: only the ordinary part's labelled positions (the appended ones carry -100)
    at_mask = batch["labels"] != -100
    assert at_mask.sum() == at_p.sum() and (batch["input_ids"][at_mask] == MASK).all()
    ordinary_len = torch.tensor([12, 9, 14])
    assert all(int(pos.max()) < int(ordinary_len[r]) for r, pos in
               ((r, at_mask[r].nonzero()) for r in range(3)))
    expected = F.cross_entropy(model.objectives["mlm"].head(hidden[at_mask]), batch["labels"][at_mask])
    assert torch.allclose(out.losses["mlm"], expected, atol=1e-6)
    assert math.isfinite(out.losses["pmlm"].item()) and "pmlm_acc" in out.metrics
    # the ordinary part is the encoder run on it alone: nothing appended leaks into it
    for r, n in enumerate(ordinary_len.tolist()):
        alone = model.bert(batch["input_ids"][r:r + 1, :n], None, batch["token_type_ids"][r:r + 1, :n]).last_hidden_state
        assert torch.allclose(hidden[r, :n], alone[0], atol=1e-5)


def test_a_pseudo_mask_reads_earlier_spans_but_not_its_own_or_later_ones():
    torch.manual_seed(1)
    model = PretrainingModel(CFG, ["mlm", "pmlm"]).eval()
    inst = _instance([CLS, 11, 12, 13, 14, 15, 16, SEP], [2, 3, 5])
    out = PseudoMaskTransform(MASK)(inst, FixedOrder([1, 0]))  # B (position 5) first, then A (2, 3)
    tensors = {k: torch.as_tensor(out[k])[None] for k in ("input_ids", "token_type_ids", "position_ids", MASK_FIELD)}

    def encode(**changes: int) -> torch.Tensor:
        ids = tensors["input_ids"].clone()
        for pos, token in changes.items():
            ids[0, int(pos[1:])] = token
        return model.bert(ids, tensors[MASK_FIELD], tensors["token_type_ids"], tensors["position_ids"]).last_hidden_state[0]

    base = encode()
    own_a = encode(p9=40, p10=41)  # A's own copies changed: A's [P]s (12, 13) must not move
    assert torch.allclose(base[:9], own_a[:9]) and torch.allclose(base[11:], own_a[11:], atol=1e-6)
    earlier = encode(p8=40)  # B's copy changed: A's [P]s read it, B's own [P] (11) does not
    assert torch.allclose(base[11], earlier[11], atol=1e-6) and not torch.allclose(base[12:], earlier[12:])
    assert torch.allclose(base[:8], earlier[:8], atol=1e-6)


def test_options_conflicts_and_run_checks():
    with pytest.raises(ConfigError, match="max_predictions"):
        PmlmOptions(max_predictions=0)
    with pytest.raises(ConfigError, match="objective 'pmlm' cannot be combined with 'rtd'"):
        objective_classes(["pmlm", "rtd"])
    assert set(objective_classes(["mlm", "pmlm"])) == {"mlm", "pmlm"}


@pytest.fixture(scope="module")
def chinese(people_daily_300):
    """The shared small People's Daily corpus (tests/objectives/conftest.py)."""
    return people_daily_300


def _overrides(root, run, steps=4):
    return tiny_overrides(root, run, steps, log_every=1, eval_every=4)


def test_run_build_refuses_what_pmlm_cannot_use(chinese, tmp_path):
    with pytest.raises(ConfigError, match=r"'pmlm'.*type_vocab_size >= 3"):
        Pretraining.build(load_config("unilmv2", [*_overrides(chinese, tmp_path / "a"), "model.type_vocab_size=2"]))
    too_many = "objective_options.pmlm.max_predictions=300"
    with pytest.raises(ConfigError, match=r"'pmlm'.*max_predictions"):
        Pretraining.build(load_config("unilmv2", [*_overrides(chinese, tmp_path / "b"), too_many]))


def test_unilmv2_recipe_trains_a_few_steps(chinese, tmp_path):
    run = tmp_path / "run"
    pretraining = Pretraining.build(load_config("unilmv2", _overrides(chinese, run)))
    batch = pretraining.collator([pretraining.train_set[i] for i in range(4)])
    assert batch[MASK_FIELD].shape[1] <= 64 + 2 * 24 + 7
    assert (batch[LABEL_FIELD] != -100).any() and (batch[LABEL_FIELD] != -100).sum(1).max() <= 24
    result = pretraining.run()
    assert result.step == 4 and result.stopped == "finished"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert train and all(math.isfinite(r["loss/mlm"]) and math.isfinite(r["loss/pmlm"]) for r in train)
    assert "pmlm_acc" in train[0]
