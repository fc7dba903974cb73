"""ERNIE 2.0's sentence reordering: the class index mapping, segment counts and permutations uniform, cuts at
sentence starts (else anywhere), every per-token field moved with its token, reproducibility, the loss by
hand, refusals, and a short run."""

from __future__ import annotations

import json
import math
from collections import Counter
from itertools import combinations, permutations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pretrain_helpers import tiny_overrides as _overrides

import bertology.objectives.sentence_reordering  # noqa: F401  (registers sentence_reordering)
from bertology import BertConfig
from bertology.data.collate import PretrainingCollator
from bertology.errors import ConfigError
from bertology.objectives import PretrainingModel
from bertology.objectives.base import RunFacts
from bertology.objectives.sentence_reordering import (
    SegmentShuffle,
    SentenceReordering,
    SentenceReorderingOptions,
    class_index,
    class_permutation,
    num_classes,
    permutation_from_rank,
    permutation_rank,
)
from bertology.runs.pretrain import Pretraining, load_config

CFG = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
CLS, SEP, MASK = 2, 3, 4


def _instance(sentence_lengths=(3, 4, 2, 5, 3, 4), seed=0, index=0):
    """[CLS] sentences [SEP], distinct body ids 100.., some masked tokens, a case label and pinyin per token."""
    rng = np.random.default_rng(seed)
    body = sum(sentence_lengths)
    ids = np.concatenate([[CLS], 100 + np.arange(body), [SEP]]).astype(np.int64)
    starts = np.zeros(len(ids), bool)
    starts[1 + np.cumsum([0, *sentence_lengths[:-1]])] = True
    maskable = ~np.isin(ids, [CLS, SEP])
    labels = np.full(len(ids), -100)
    pick = maskable & (rng.random(len(ids)) < 0.3)
    labels[pick] = ids[pick]
    return {"index": index, "document": 0, "input_ids": np.where(pick, MASK, ids), "original_ids": ids,
            "labels": labels, "token_type_ids": np.zeros(len(ids), np.int64), "maskable": maskable,
            "word_starts": ids % 2 == 0, "sentence_starts": starts, "case_labels": ids % 5,
            "pinyin_ids": np.repeat(ids[:, None], 8, 1), "position_ids": np.arange(len(ids))}


def _segments_that_explain(before, after, perm, candidates):
    """The cut sets (from `candidates`) that turn `before`'s body into `after`'s under `perm`."""
    n = len(before)
    found = []
    for cuts in combinations(candidates, len(perm) - 1):
        bounds = [1, *cuts, n - 1]
        body = np.concatenate([before[bounds[p]:bounds[p + 1]] for p in perm])
        if np.array_equal(np.concatenate([before[:1], body, before[-1:]]), after):
            found.append(cuts)
    return found


def test_class_indices_are_defined_and_round_trip():
    assert [num_classes(m) for m in (1, 2, 3, 4)] == [1, 3, 9, 33]
    # m = 3 as the module documents: k = 1, then k = 2 in order and swapped, then k = 3 in lexicographic order
    expected = [(0,), (0, 1), (1, 0), (0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    assert [class_permutation(i) for i in range(9)] == expected
    assert [class_index(p) for p in expected] == list(range(9))
    for m in range(1, 6):
        assert [class_index(class_permutation(i)) for i in range(num_classes(m))] == list(range(num_classes(m)))
    for k in range(1, 6):
        ranked = sorted(permutations(range(k)))
        assert [permutation_rank(p) for p in ranked] == list(range(math.factorial(k)))
        assert [permutation_from_rank(r, k) for r in range(math.factorial(k))] == ranked


def test_segment_counts_and_permutations_are_uniform_and_cuts_fall_at_sentence_starts():
    transform = SegmentShuffle(max_segments=3, sep_token_id=SEP)
    classes: Counter[int] = Counter()
    draws = 3000
    for seed in range(draws):
        item = _instance(seed=seed)
        before = item["original_ids"].copy()
        starts = np.flatnonzero(item["sentence_starts"][2:-1]) + 2
        out = transform(item, np.random.default_rng([1, seed]))
        label = out["sentence_reordering_label"]
        classes[label] += 1
        if seed < 200:  # the cuts: a set of inner sentence starts explains the output
            assert _segments_that_explain(before, out["original_ids"], class_permutation(label), starts)
    ks = Counter(len(class_permutation(c)) for c in classes.elements())
    for k in (1, 2, 3):  # k uniform over 1..3
        assert ks[k] / draws == pytest.approx(1 / 3, abs=0.03)
    for k in (2, 3):  # given k, the k! permutations (identity included) uniform
        for perm in permutations(range(k)):
            share = classes[class_index(perm)] / ks[k]
            assert share == pytest.approx(1 / math.factorial(k), abs=0.04)


def test_without_enough_sentence_starts_the_cuts_fall_anywhere():
    transform = SegmentShuffle(max_segments=3, sep_token_id=SEP)
    cut_positions: Counter[int] = Counter()
    for seed in range(400):
        item = _instance(sentence_lengths=(6, 6), seed=seed)  # one inner sentence start: too few for k = 3
        before = item["original_ids"].copy()
        out = transform(item, np.random.default_rng([2, seed]))
        perm = class_permutation(out["sentence_reordering_label"])
        if len(perm) != 3:
            continue
        found = _segments_that_explain(before, out["original_ids"], perm, range(2, 13))
        assert found
        if len(found) == 1:
            cut_positions.update(found[0])
    assert len(cut_positions) > 6  # not only at the one sentence start (position 7)
    # a body shorter than k is cut into one-token segments
    tiny = transform(_instance(sentence_lengths=(2,)), np.random.default_rng(0))
    assert len(class_permutation(tiny["sentence_reordering_label"])) <= 2


def test_every_per_token_field_moves_with_its_token_but_positions_stay():
    transform = SegmentShuffle(max_segments=3, sep_token_id=SEP)
    for seed in range(100):
        item = _instance(seed=seed)
        item["other_transform_labels"] = item["original_ids"] * 10  # a 1-D token field of an earlier transform
        out = transform(item, np.random.default_rng(seed))
        ids = out["original_ids"]
        assert ids[0] == CLS and ids[-1] == SEP and sorted(ids[1:-1]) == list(range(100, 100 + len(ids) - 2))
        picked = out["labels"] != -100
        assert np.array_equal(out["labels"][picked], ids[picked])
        assert np.array_equal(out["input_ids"][picked], np.full(picked.sum(), MASK))
        assert np.array_equal(out["input_ids"][~picked], ids[~picked])
        assert np.array_equal(out["word_starts"], ids % 2 == 0) and np.array_equal(out["case_labels"], ids % 5)
        assert np.array_equal(out["pinyin_ids"][:, 3], ids) and np.array_equal(out["other_transform_labels"], ids * 10)
        assert np.array_equal(out["position_ids"], np.arange(len(ids)))
        assert out["maskable"].sum() == len(ids) - 2 and not out["maskable"][[0, -1]].any()


def test_permutations_depend_on_seed_epoch_and_instance_only():
    examples = []
    for i in range(8):
        item = _instance(seed=i, index=i)
        examples.append({k: item[k] for k in ("index", "token_type_ids", "maskable", "word_starts",
                                              "sentence_starts")} | {"input_ids": item["original_ids"]})
    collate = PretrainingCollator(None, pad_token_id=0, seed=3, transforms=[SegmentShuffle(3, SEP)])
    whole = collate(examples, epoch=1)
    halves = [collate(examples[:5], epoch=1), collate(examples[5:], epoch=1)]
    for name in ("input_ids", "sentence_reordering_label"):
        assert torch.equal(whole[name], torch.cat([h[name] for h in halves]))
    other = collate(examples, epoch=2)
    assert not torch.equal(whole["sentence_reordering_label"], other["sentence_reordering_label"])


def test_loss_is_cross_entropy_of_the_pooled_cls():
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["mlm", "sentence_reordering"]).eval()
    assert model.bert.pooler is not None and model.objectives["sentence_reordering"].head.out_features == 9
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 60, (4, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[3, 6:] = 0
    target = torch.tensor([0, 8, 3, 2])
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
             "labels": torch.full_like(ids, -100), "sentence_reordering_label": target}
    with torch.no_grad():
        out = model(**batch)
        pooled = model.bert(ids, mask, torch.zeros_like(ids)).pooler_output
        logits = model.objectives["sentence_reordering"].head(pooled)
    by_hand = -logits.log_softmax(-1)[torch.arange(4), target].mean()
    assert out.losses["sentence_reordering"].item() == pytest.approx(by_hand.item(), abs=1e-6)
    assert out.losses["sentence_reordering"].item() == pytest.approx(F.cross_entropy(logits, target).item(), abs=1e-6)
    m5 = PretrainingModel(CFG, ["sentence_reordering"], {"sentence_reordering": {"max_segments": 4}})
    assert m5.objectives["sentence_reordering"].head.out_features == 33


def test_pair_tasks_and_pair_formats_are_refused():
    with pytest.raises(ConfigError, match="objective 'sentence_reordering' cannot be combined with 'nsp'"):
        PretrainingModel(CFG, ["mlm", "sentence_reordering", "nsp"])
    for fmt in ("segment_pair", "sentence_pair"):
        with pytest.raises(ConfigError, match="objective 'sentence_reordering' needs single-segment inputs"):
            SentenceReordering.check_run("sentence_reordering", None, RunFacts(fmt, 64, None, None))
    for fmt in ("doc_sentences", "full_sentences"):
        SentenceReordering.check_run("sentence_reordering", None, RunFacts(fmt, 64, None, None))
    with pytest.raises(ConfigError, match="'max_segments' must lie in 1..5"):
        SentenceReorderingOptions(max_segments=6)


@pytest.fixture(scope="module")
def chinese_reordering(people_daily_300):
    """The shared small People's Daily corpus (tests/objectives/conftest.py)."""
    return people_daily_300


def _config_file(tmp_path, data_format):
    path = tmp_path / "reorder.yaml"
    path.write_text(f"data: {{format: {data_format}}}\nmasking: {{strategy: token}}\n"
                    "objectives: {mlm: 1.0, sentence_reordering: 1.0}\n", encoding="utf-8")
    return str(path)


def test_a_run_with_mlm_and_reordering_trains_a_few_steps(chinese_reordering, tmp_path):
    run = tmp_path / "run"
    pretraining = Pretraining.build(load_config(_config_file(tmp_path, "full_sentences"),
                                                _overrides(chinese_reordering, run)))
    batch = pretraining.collator([pretraining.train_set[i] for i in range(8)], epoch=0)
    assert batch["sentence_reordering_label"].shape == (8,) and (batch["sentence_reordering_label"] < 9).all()
    assert pretraining.run().step == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss/sentence_reordering"]) for r in rows if r["split"] == "train")


def test_a_pair_format_is_refused_when_the_run_is_built(chinese_reordering, tmp_path):
    config = load_config(_config_file(tmp_path, "segment_pair"), _overrides(chinese_reordering, tmp_path / "x"))
    with pytest.raises(ConfigError, match="objective 'sentence_reordering' needs single-segment inputs"):
        Pretraining.build(config)
