"""StructBERT's word structural objective: windows shuffled where they may be, at the promised rate, with a
uniformly drawn non-identity permutation, reproducibly; the loss by hand; refusals; the recipe end to end."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
from pretrain_helpers import tiny_overrides as _overrides

import bertology.objectives.word_order  # noqa: F401  (registers word_order)
from bertology import BertConfig
from bertology.data.collate import PretrainingCollator
from bertology.errors import ConfigError
from bertology.objectives import PretrainingModel
from bertology.objectives.base import RunFacts
from bertology.objectives.sentence_reordering import permutation_rank
from bertology.objectives.word_order import WindowShuffle, WordOrder, WordOrderOptions
from bertology.runs.pretrain import Pretraining, load_config

CFG = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
CLS, SEP, MASK = 2, 3, 4


def _instance(length=200, seed=0, masked_share=0.15):
    """[CLS] body [SEP] body [SEP] with distinct body ids (a shuffle is always visible) and some masked tokens."""
    rng = np.random.default_rng(seed)
    half = length // 2
    ids = np.concatenate([[CLS], np.arange(10, 10 + half), [SEP], np.arange(10 + half, 10 + 2 * half), [SEP]])
    maskable = ~np.isin(ids, [CLS, SEP])
    labels = np.full(len(ids), -100)
    pick = maskable & (rng.random(len(ids)) < masked_share)
    labels[pick] = ids[pick]
    masked = np.where(pick, MASK, ids)
    return {"index": seed, "input_ids": masked, "original_ids": ids.copy(), "labels": labels,
            "token_type_ids": np.zeros(len(ids), np.int64), "maskable": maskable,
            "word_starts": np.ones(len(ids), bool), "sentence_starts": np.zeros(len(ids), bool)}


def _example(length=40, index=0):
    ids = np.concatenate([[CLS], 10 + np.arange(length), [SEP]]).astype(np.int64)
    maskable = np.ones(len(ids), bool)
    maskable[[0, -1]] = False
    return {"index": index, "input_ids": ids, "token_type_ids": np.zeros(len(ids), np.int64), "maskable": maskable,
            "word_starts": np.ones(len(ids), bool), "sentence_starts": np.zeros(len(ids), bool)}


def test_windows_avoid_specials_and_masks_and_hold_their_originals():
    transform = WindowShuffle(k=3, rate=0.2)
    for seed in range(50):
        item = _instance(seed=seed)
        before = {k: np.copy(v) for k, v in item.items() if isinstance(v, np.ndarray)}
        out = transform(item, np.random.default_rng(seed))
        target = out["word_order_labels"]
        shuffled = target != -100
        assert not (shuffled & ~before["maskable"]).any() and not (shuffled & (before["labels"] != -100)).any()
        assert np.array_equal(target[shuffled], before["original_ids"][shuffled])
        assert np.array_equal(out["input_ids"][~shuffled], before["input_ids"][~shuffled])  # nothing else moved
        assert np.array_equal(out["labels"], before["labels"]) and np.array_equal(out["original_ids"],
                                                                                  before["original_ids"])
        starts = np.flatnonzero(shuffled & ~np.r_[False, shuffled[:-1]])
        # windows are contiguous triples that never touch (every run of shuffled positions a multiple of 3)
        assert shuffled.sum() % 3 == 0
        for s in starts:
            window = out["input_ids"][s:s + 3]
            assert sorted(window) == sorted(before["original_ids"][s:s + 3])


def test_shuffled_share_is_the_rate_of_eligible_tokens():
    for rate in (0.05, 0.15):
        transform = WindowShuffle(k=3, rate=rate)
        shares = []
        for seed in range(1500):
            item = _instance(seed=seed)
            eligible = item["maskable"] & (item["labels"] == -100)
            out = transform(item, np.random.default_rng([7, seed]))
            shares.append((out["word_order_labels"] != -100).sum() / eligible.sum())
        # expected share exactly `rate` (stochastic rounding of rate*N/k windows, room is plentiful here)
        assert np.mean(shares) == pytest.approx(rate, rel=0.03)


def test_permutations_are_never_the_identity_and_uniform_over_the_others():
    for k in (2, 3, 4):
        transform = WindowShuffle(k=k, rate=0.3)
        counts: Counter[int] = Counter()
        for seed in range(400):
            item = _instance(seed=seed, masked_share=0.0)
            out = transform(item, np.random.default_rng([3, seed]))
            shuffled = out["word_order_labels"] != -100
            for s in np.flatnonzero(shuffled)[::k]:
                window = out["input_ids"][s:s + k]
                perm = window - out["original_ids"][s]  # ids are consecutive: the original slot of each token
                counts[permutation_rank(perm)] += 1
        others = math.factorial(k) - 1
        assert 0 not in counts and set(counts) == set(range(1, others + 1))
        total = sum(counts.values())
        assert total > 2000
        for rank in range(1, others + 1):
            assert counts[rank] / total == pytest.approx(1 / others, abs=4 * math.sqrt((1 / others) / total))


def test_shuffles_depend_on_seed_epoch_and_instance_only():
    examples = [_example(index=i) for i in range(8)]
    collate = PretrainingCollator(None, pad_token_id=0, seed=5, transforms=[WindowShuffle(k=3, rate=0.3)])
    whole = collate(examples, epoch=1)
    halves = [collate(examples[:3], epoch=1), collate(examples[3:], epoch=1)]
    for name in ("input_ids", "word_order_labels"):
        joined = torch.cat([h[name] for h in halves])
        assert torch.equal(whole[name], joined)
    assert not torch.equal(whole["input_ids"], collate(examples, epoch=2)["input_ids"])
    assert (whole["word_order_labels"] != -100).sum() > 0
    assert whole["word_order_labels"][whole["attention_mask"] == 0].eq(-100).all()  # padded with -100


def test_loss_is_cross_entropy_at_shuffled_positions_only():
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["mlm", "word_order"]).eval()
    head = model.objectives["word_order"].head
    assert head.decoder.weight is model.bert.embeddings.word.weight  # tied to the word embeddings
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 300, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0
    mlm = torch.full_like(ids, -100)
    mlm[0, 2], mlm[1, 7] = ids[0, 2], ids[1, 7]
    target = torch.full_like(ids, -100)
    target[0, 4:7] = torch.tensor([11, 12, 13])
    target[2, 1:4] = torch.tensor([21, 22, 23])
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": mlm,
             "word_order_labels": target}
    with torch.no_grad():
        out = model(**batch)
        hidden = model.bert(ids, mask, torch.zeros_like(ids)).last_hidden_state
        rows = [(0, 4, 11), (0, 5, 12), (0, 6, 13), (2, 1, 21), (2, 2, 22), (2, 3, 23)]
        terms = [-head(hidden[r, p]).log_softmax(-1)[t] for r, p, t in rows]
    assert out.losses["word_order"].item() == pytest.approx(torch.stack(terms).mean().item(), abs=1e-5)
    assert set(out.losses) == {"mlm", "word_order"} and "word_order_acc" in out.metrics


def test_options_and_run_checks_are_refused_with_the_objective_named(tmp_path):
    with pytest.raises(ConfigError, match="'k' must lie in 2..8"):
        WordOrderOptions(k=1)
    with pytest.raises(ConfigError, match="'rate' must lie in"):
        WordOrderOptions(rate=0.0)
    with pytest.raises(ConfigError, match="objective_options.word_order: unknown field 'window'"):
        PretrainingModel(CFG, ["word_order"], {"word_order": {"window": 3}})
    with pytest.raises(ConfigError, match="objective 'word_order' needs inputs longer than its 8-token windows"):
        WordOrder.check_run("word_order", WordOrderOptions(k=8), RunFacts("segment_pair", 8, None, None))
    WordOrder.check_run("word_order", WordOrderOptions(k=3), RunFacts("segment_pair", 8, None, None))


@pytest.fixture(scope="module")
def chinese_word_order(people_daily_300):
    """The shared small People's Daily corpus (tests/objectives/conftest.py)."""
    return people_daily_300


def test_structbert_recipe_trains_a_few_steps(chinese_word_order, tmp_path):
    run = tmp_path / "structbert"
    config = load_config("structbert", _overrides(chinese_word_order, run))
    assert list(config.objectives) == ["mlm", "word_order", "order"] and config.data.format == "segment_pair"
    pretraining = Pretraining.build(config)
    batch = pretraining.collator([pretraining.train_set[i] for i in range(8)], epoch=0)
    shuffled = batch["word_order_labels"] != -100
    assert shuffled.any() and not (shuffled & (batch["labels"] != -100)).any()
    result = pretraining.run()
    assert result.step == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert all(math.isfinite(r["loss/word_order"]) and math.isfinite(r["loss/mlm"]) for r in train)


def test_a_run_too_short_for_the_windows_is_refused_when_built(chinese_word_order, tmp_path):
    overrides = _overrides(chinese_word_order, tmp_path / "x") + ["data.max_length=8",
                                                                  "objective_options.word_order.k=8"]
    with pytest.raises(ConfigError, match="objective 'word_order' needs inputs longer"):
        Pretraining.build(load_config("structbert", overrides))
