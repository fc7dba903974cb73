"""ERNIE 2.0's token-document relation: which positions count and their targets, the loss by hand, the
formats refused (and why), and the ERNIE 2.0 recipe end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pretrain_helpers import tiny_overrides as _overrides

import bertology.objectives.sentence_reordering  # noqa: F401  (the ernie2 recipe uses both)
import bertology.objectives.token_document  # noqa: F401  (registers token_document)
from bertology import BertConfig
from bertology.data.collate import PretrainingCollator
from bertology.errors import ConfigError
from bertology.objectives import PretrainingModel
from bertology.objectives.base import RunFacts
from bertology.objectives.token_document import TokenDocumentLabels, TokenDocumentRelation
from bertology.runs.pretrain import Pretraining, load_config

CFG = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
CLS, SEP, MASK = 2, 3, 4


def _instance(sentences, first_starts=True, masked=()):
    """[CLS] sentences [SEP]; `masked` positions hold [MASK] in input_ids (original_ids keep the token)."""
    ids = np.concatenate([[CLS], *sentences, [SEP]]).astype(np.int64)
    starts = np.zeros(len(ids), bool)
    starts[1 + np.cumsum([0, *[len(s) for s in sentences[:-1]]])] = True
    starts[1] = first_starts
    masked_ids = ids.copy()
    masked_ids[list(masked)] = MASK
    return {"index": 0, "input_ids": masked_ids, "original_ids": ids, "labels": np.full(len(ids), -100),
            "maskable": ~np.isin(ids, [CLS, SEP]), "sentence_starts": starts,
            "token_type_ids": np.zeros(len(ids), np.int64), "word_starts": np.ones(len(ids), bool)}


def test_targets_at_the_first_sentence_only_from_the_original_ids():
    transform = TokenDocumentLabels()
    # positions:    1   2   3   4 | 5   6   7 | 8   9
    item = _instance([[10, 11, 12, 10], [13, 11, 14], [12, 15]], masked=(2, 6))
    out = transform(item, np.random.default_rng(0))
    # 10 is not elsewhere (only twice in sentence 1); 11 (masked at 2) and 12 are; masked 11 at 6 is not counted
    assert out["token_document_labels"].tolist() == [-100, 0, 1, 1, 0, -100, -100, -100, -100, -100, -100]
    # a front piece cut from a longer sentence (no mark at position 1) counts as the first sentence
    cut = transform(_instance([[10, 13], [13, 16]], first_starts=False), np.random.default_rng(0))
    assert cut["token_document_labels"].tolist() == [-100, 0, 1, -100, -100, -100]
    # one sentence: nothing to relate it to, nothing counted
    alone = transform(_instance([[10, 11, 10]]), np.random.default_rng(0))
    assert (alone["token_document_labels"] == -100).all()
    # [UNK] (id 1 here) is neither a target nor a match: every unknown token would look like every other
    unk = TokenDocumentLabels(unk_token_id=1)(_instance([[1, 10], [1, 10]]), np.random.default_rng(0))
    assert unk["token_document_labels"].tolist() == [-100, -100, 1, -100, -100, -100]


def test_loss_is_mean_binary_cross_entropy_over_counted_positions():
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["mlm", "token_document"]).eval()
    head = model.objectives["token_document"]
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 60, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    target = torch.full_like(ids, -100)
    target[0, 1:4] = torch.tensor([1, 0, 1])
    target[1, 1:3] = torch.tensor([0, 0])
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
             "labels": torch.full_like(ids, -100), "token_document_labels": target}
    with torch.no_grad():
        out = model(**batch)
        hidden = model.bert(ids, mask, torch.zeros_like(ids)).last_hidden_state
        rows = [(0, 1, 1), (0, 2, 0), (0, 3, 1), (1, 1, 0), (1, 2, 0)]
        z = torch.stack([head.classifier(F.gelu(head.dense(hidden[r, p]))).squeeze() for r, p, _ in rows])
        y = torch.tensor([float(t) for _, _, t in rows])
    by_hand = -(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z))).mean()
    assert out.losses["token_document"].item() == pytest.approx(by_hand.item(), abs=1e-5)
    assert out.metrics["token_document_positive_share"].item() == pytest.approx(2 / 5)
    assert out.metrics["token_document_acc"].item() == pytest.approx(((z > 0).float() == y).float().mean().item())
    batch["token_document_labels"] = torch.full_like(ids, -100)  # nothing counted: zero, still differentiable
    empty = model(**batch)
    assert empty.losses["token_document"].item() == 0.0 and empty.losses["token_document"].requires_grad


@pytest.mark.parametrize("fmt,why", [("full_sentences", "across document ends"),
                                     ("segment_pair", "B may come from another document"),
                                     ("sentence_pair", "B may come from another document")])
def test_formats_other_than_doc_sentences_are_refused_with_the_reason(fmt, why):
    with pytest.raises(ConfigError, match=f"objective 'token_document' needs several sentences of one document.*{why}"):
        TokenDocumentRelation.check_run("token_document", None, RunFacts(fmt, 64, None, None))
    TokenDocumentRelation.check_run("token_document", None, RunFacts("doc_sentences", 64, None, None))


@pytest.fixture(scope="module")
def chinese_token_document(people_daily_300):
    """The shared small People's Daily corpus (tests/objectives/conftest.py)."""
    return people_daily_300


def test_targets_on_real_instances_match_a_brute_force_count(chinese_token_document, tmp_path):
    pretraining = Pretraining.build(load_config("ernie2", _overrides(chinese_token_document, tmp_path / "run")))
    # the masker of the run, then this transform alone (the recipe's reordering would move the first sentence)
    collate = PretrainingCollator(pretraining.collator.masker, 0, seed=1, transforms=[TokenDocumentLabels()])
    counted = positives = 0
    for i in range(min(40, len(pretraining.train_set))):
        item = collate.instance(pretraining.train_set[i], epoch=0)
        ids, labels = item["original_ids"], item["token_document_labels"]
        starts = [p for p in range(2, len(ids)) if item["sentence_starts"][p]]
        for p in range(len(ids)):
            if not starts or p == 0 or p >= starts[0] or ids[p] in (CLS, SEP) or not item["maskable"][p]:
                assert labels[p] == -100
                continue
            rest = {int(t) for q, t in enumerate(ids) if q >= starts[0] and item["maskable"][q]}
            assert labels[p] == int(int(ids[p]) in rest)
            counted += 1
            positives += int(labels[p])
    assert counted > 50 and 0 < positives < counted


def test_ernie2_recipe_trains_a_few_steps(chinese_token_document, tmp_path):
    run = tmp_path / "ernie2"
    config = load_config("ernie2", _overrides(chinese_token_document, run))
    assert list(config.objectives) == ["mlm", "token_document", "sentence_reordering"]
    result = Pretraining.build(config).run()
    assert result.step == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    for key in ("loss/mlm", "loss/token_document", "loss/sentence_reordering", "token_document_positive_share"):
        assert all(math.isfinite(r[key]) for r in train), key


def test_a_cross_document_format_is_refused_when_the_run_is_built(chinese_token_document, tmp_path):
    config = load_config("ernie2", _overrides(chinese_token_document, tmp_path / "x")
                         + ["data.format=full_sentences"])
    with pytest.raises(ConfigError, match="objective 'token_document' needs several sentences of one document"):
        Pretraining.build(config)
