"""InfoWord: one n-gram per instance (lengths and starts uniform, never on a masked-LM target), masked in the
input and kept for the local pass, reproducibly; InfoNCE by hand; refusals; the recipe end to end."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
from pretrain_helpers import tiny_overrides as _overrides
from torch import nn

import bertology.objectives.infoword  # noqa: F401  (registers infoword)
from bertology import BertConfig
from bertology.data.collate import PretrainingCollator
from bertology.errors import ConfigError
from bertology.objectives import PretrainingModel
from bertology.objectives.base import RunFacts
from bertology.objectives.infoword import InfoWord, InfoWordOptions, NgramMask
from bertology.runs.pretrain import Pretraining, load_config

CFG = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
CLS, SEP, MASK = 2, 3, 4


def _instance(body=40, seed=0, masked_share=0.15, index=0):
    rng = np.random.default_rng(seed)
    ids = np.concatenate([[CLS], 10 + np.arange(body), [SEP]]).astype(np.int64)
    maskable = ~np.isin(ids, [CLS, SEP])
    labels = np.full(len(ids), -100)
    pick = maskable & (rng.random(len(ids)) < masked_share)
    labels[pick] = ids[pick]
    return {"index": index, "input_ids": np.where(pick, MASK, ids), "original_ids": ids, "labels": labels,
            "token_type_ids": np.zeros(len(ids), np.int64), "maskable": maskable,
            "word_starts": np.ones(len(ids), bool), "sentence_starts": np.zeros(len(ids), bool)}


def test_the_ngram_is_masked_in_the_input_kept_for_the_local_pass_and_never_an_mlm_target():
    transform = NgramMask(4, CLS, SEP, MASK)
    for seed in range(200):
        item = _instance(seed=seed)
        before = {k: np.copy(v) for k, v in item.items() if isinstance(v, np.ndarray)}
        out = transform(item, np.random.default_rng(seed))
        start, n = out["infoword_start"], out["infoword_length"]
        span = np.zeros(len(before["input_ids"]), bool)
        span[start:start + n] = True
        assert 1 <= n <= 4 and before["maskable"][span].all() and (before["labels"][span] == -100).all()
        assert (out["input_ids"][span] == MASK).all()
        assert np.array_equal(out["input_ids"][~span], before["input_ids"][~span])
        assert np.array_equal(out["labels"], before["labels"])  # MLM targets as the masker set them
        assert out["infoword_local"].tolist() == [CLS, *before["original_ids"][span].tolist(), SEP]


def test_lengths_are_uniform_and_starts_uniform_over_the_eligible_ones():
    transform = NgramMask(4, CLS, SEP, MASK)
    lengths: Counter[int] = Counter()
    starts: Counter[int] = Counter()
    draws = 4000
    item0 = _instance(seed=0)
    eligible = item0["maskable"] & (item0["labels"] == -100)
    for seed in range(draws):
        item = {k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in item0.items()}
        out = transform(item, np.random.default_rng([9, seed]))
        lengths[out["infoword_length"]] += 1
        if out["infoword_length"] == 1:
            starts[out["infoword_start"]] += 1
    for n in (1, 2, 3, 4):  # this instance has room for every length: no shrinking
        assert lengths[n] / draws == pytest.approx(1 / 4, abs=0.025)
    assert set(starts) == set(np.flatnonzero(eligible).tolist())  # unigrams: any eligible token, only those
    expected = sum(starts.values()) / len(starts)
    assert max(abs(c - expected) for c in starts.values()) < 5 * math.sqrt(expected)


def test_a_short_run_of_eligible_tokens_shrinks_the_ngram_and_none_gives_no_ngram():
    transform = NgramMask(4, CLS, SEP, MASK)
    item = _instance(body=6, masked_share=0.0)
    item["labels"][[3, 6]] = item["original_ids"][[3, 6]]  # eligible runs: [1, 2], [4, 5]
    seen = {transform({k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in item.items()},
                      np.random.default_rng(s))["infoword_length"] for s in range(100)}
    assert seen == {1, 2}
    none = _instance(body=3, masked_share=0.0)
    none["labels"][1:4] = none["original_ids"][1:4]
    out = transform(none, np.random.default_rng(0))
    assert out["infoword_length"] == 0 and len(out["infoword_local"]) == 0
    assert np.array_equal(out["input_ids"], out["original_ids"])  # nothing masked by infoword


def test_ngrams_depend_on_seed_epoch_and_instance_only():
    examples = []
    for i in range(8):
        item = _instance(body=20 + i, seed=i, index=i)
        examples.append({k: item[k] for k in ("index", "token_type_ids", "maskable", "word_starts",
                                              "sentence_starts")} | {"input_ids": item["original_ids"]})
    collate = PretrainingCollator(None, pad_token_id=0, seed=2, transforms=[NgramMask(4, CLS, SEP, MASK)])
    whole = collate(examples, epoch=1)
    halves = [collate(examples[:4], epoch=1), collate(examples[4:], epoch=1)]
    for name in ("infoword_start", "infoword_length"):
        assert torch.equal(whole[name], torch.cat([h[name] for h in halves]))
    assert not torch.equal(whole["infoword_start"], collate(examples, epoch=2)["infoword_start"])
    width = int(whole["infoword_length"].max()) + 2
    assert whole["infoword_local"].shape == (8, width)
    for r in range(8):  # padded with -1 after [SEP]
        assert (whole["infoword_local"][r, int(whole["infoword_length"][r]) + 2:] == -1).all()


def _batch():
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(10, 60, (4, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 8:] = 0
    local = torch.full((4, 5), -1)
    local[0, :4] = torch.tensor([CLS, 21, 22, SEP])
    local[1, :5] = torch.tensor([CLS, 31, 32, 33, SEP])
    local[3, :3] = torch.tensor([CLS, 41, SEP])  # row 2 has no n-gram
    ids[0, 3:5] = MASK
    ids[1, 5:8] = MASK
    ids[3, 2] = MASK
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
            "labels": torch.full_like(ids, -100), "infoword_local": local,
            "infoword_length": torch.tensor([2, 3, 0, 1]), "infoword_start": torch.tensor([3, 5, 0, 2])}


@pytest.mark.parametrize("local", ["cls", "mean"])
def test_loss_is_infonce_over_the_instances_with_an_ngram(local):
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["mlm", "infoword"], {"infoword": {"local": local}}).eval()
    head = model.objectives["infoword"]
    batch = _batch()
    with torch.no_grad():
        out = model(**batch)
        h = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state[:, 0]
        rows = {0: [CLS, 21, 22, SEP], 1: [CLS, 31, 32, 33, SEP], 3: [CLS, 41, SEP]}
        locals_ = []
        for ids in rows.values():  # each n-gram encoded alone, unpadded
            hidden = model.bert(torch.tensor([ids])).last_hidden_state[0]
            locals_.append(hidden[0] if local == "cls" else hidden[1:-1].mean(0))
        g = torch.stack([head.global_map(h[r]) for r in rows])
        lv = torch.stack([head.local_map(v) for v in locals_])
        s = g @ lv.T
        by_hand = -torch.stack([s[i, i] - torch.logsumexp(s[i], 0) for i in range(3)]).mean()
    assert out.losses["infoword"].item() == pytest.approx(by_hand.item(), abs=1e-4)
    assert out.metrics["infoword_acc"].item() == pytest.approx((s.argmax(1) == torch.arange(3)).float().mean().item())


def test_a_batch_without_ngrams_gives_a_zero_that_keeps_the_graph():
    model = PretrainingModel(CFG, ["infoword"])
    batch = _batch()
    batch["infoword_local"] = torch.zeros((4, 0), dtype=torch.long)
    batch["infoword_length"] = torch.zeros(4, dtype=torch.long)
    out = model(**batch)
    assert out.losses["infoword"].item() == 0.0 and out.losses["infoword"].requires_grad


def test_options_and_runs_it_cannot_serve_are_refused():
    with pytest.raises(ConfigError, match="'local' must be one of"):
        InfoWordOptions(local="max")
    with pytest.raises(ConfigError, match="'max_ngram' must be >= 1"):
        InfoWordOptions(max_ngram=0)

    class PinyinEncoder(nn.Module):
        token_inputs = ("pinyin_ids",)

    with pytest.raises(ConfigError, match=r"objective 'infoword' encodes each n-gram alone.*\['pinyin_ids'\]"):
        InfoWord.check_run("infoword", None, RunFacts("doc_sentences", 64, None, PinyinEncoder()))
    with pytest.raises(ConfigError, match="objective 'infoword' needs data.max_length >= max_ngram"):
        InfoWord.check_run("infoword", InfoWordOptions(max_ngram=9),
                           RunFacts("doc_sentences", 8, None, nn.Linear(1, 1)))


@pytest.fixture(scope="module")
def chinese_infoword(people_daily_300):
    """The shared small People's Daily corpus (tests/objectives/conftest.py)."""
    return people_daily_300


def test_infoword_recipe_trains_a_few_steps(chinese_infoword, tmp_path):
    run = tmp_path / "infoword"
    config = load_config("infoword", _overrides(chinese_infoword, run))
    assert list(config.objectives) == ["mlm", "infoword"]
    pretraining = Pretraining.build(config)
    batch = pretraining.collator([pretraining.train_set[i] for i in range(8)], epoch=0)
    rows = torch.arange(8)
    at = batch["input_ids"][rows, batch["infoword_start"]]
    assert (at[batch["infoword_length"] > 0] == pretraining.tokenizer.mask_token_id).all()
    assert (batch["labels"][rows, batch["infoword_start"]][batch["infoword_length"] > 0] == -100).all()
    assert pretraining.run().step == 4
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss/infoword"]) for r in metrics if r["split"] == "train")


def test_a_run_too_short_for_the_ngrams_is_refused_when_built(chinese_infoword, tmp_path):
    overrides = _overrides(chinese_infoword, tmp_path / "x") + ["data.max_length=8",
                                                                "objective_options.infoword.max_ngram=7"]
    with pytest.raises(ConfigError, match="objective 'infoword' needs data.max_length >= max_ngram"):
        Pretraining.build(load_config("infoword", overrides))
