"""SpanBERT completed: the truncated geometric span lengths, span extraction from the MLM labels, the span
boundary loss by hand, its config errors, and the spanbert recipe end to end on a tiny Chinese corpus.

Statistical checks use fixed seeds and tolerances of 5 standard errors, so they fail on a real bias only.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pretrain_helpers import tiny_overrides as _overrides
from torch import nn

import bertology.objectives.span_boundary  # noqa: F401  (registers "sbo")
from bertology import BertConfig, load
from bertology.data.collate import PretrainingCollator
from bertology.data.maskers import MaskingConfig, SpanMasker
from bertology.data.transforms import TransformContext
from bertology.errors import ConfigError
from bertology.objectives import PretrainingModel
from bertology.objectives.span_boundary import SboOptions, SpanBoundary, SpanBoundaryTransform, span_fields
from bertology.runs.pretrain import Pretraining, load_config

CFG = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
SIGMAS = 5
X = -100  # no label


# ------------------------------------------------------------------------------------------ span lengths


def _span_masker(span_p: float = 0.2, span_max: int = 10, rate: float = 0.3) -> SpanMasker:
    config = MaskingConfig(strategy="span", rate=rate, span_p=span_p, span_max=span_max)
    return SpanMasker(config, mask_token_id=4, unk_token_id=1, vocab_size=100, special_ids={0, 1, 2, 3, 4})


@pytest.mark.parametrize("span_p,span_max", [(0.2, 10), (0.5, 3), (0.05, 4)])
def test_span_lengths_are_the_truncated_renormalised_geometric(span_p, span_max):
    masker = _span_masker(span_p, span_max)
    q = 1 - span_p
    z = 1 - q**span_max
    probs = np.array([span_p * q ** (k - 1) / z for k in range(1, span_max + 1)])
    assert np.allclose(masker.length_probabilities(), probs, rtol=1e-12)
    mean = float(np.sum(np.arange(1, span_max + 1) * probs))
    assert mean == pytest.approx(1 / span_p - span_max * q**span_max / z)  # the closed form
    if (span_p, span_max) == (0.2, 10):
        assert mean == pytest.approx(3.797, abs=1e-3)  # the paper's 3.8; clipping instead would give 4.46
    var = float(np.sum(np.arange(1, span_max + 1) ** 2 * probs)) - mean**2
    rng = np.random.default_rng(2020)
    n = 60_000
    draws = np.array([masker.span_length(rng) for _ in range(n)])
    assert draws.min() == 1 and draws.max() == span_max
    assert abs(draws.mean() - mean) <= SIGMAS * math.sqrt(var / n), (draws.mean(), mean)
    for k, p in enumerate(probs, start=1):  # the whole shape, P(L = 1) = p / (1 - (1-p)^max) first
        observed = float(np.mean(draws == k))
        assert abs(observed - p) <= SIGMAS * math.sqrt(p * (1 - p) / n), (k, observed, p)
    # the same as drawing Geometric(p) again until it fits (what the paper describes)
    again = np.random.default_rng(7).geometric(span_p, size=4 * n)
    again = again[again <= span_max][:n]
    assert abs(draws.mean() - again.mean()) <= SIGMAS * math.sqrt(2 * var / n)


def test_span_lengths_are_reproducible_and_degenerate_cases_hold():
    masker = _span_masker()
    first = [masker.span_length(np.random.default_rng(5)) for _ in range(3)]
    assert first == [masker.span_length(np.random.default_rng(5)) for _ in range(3)]
    a = [masker.span_length(r) for r in [np.random.default_rng(5)] for _ in range(200)]
    b = [masker.span_length(r) for r in [np.random.default_rng(6)] for _ in range(200)]
    assert a != b
    rng = np.random.default_rng(0)
    assert {_span_masker(1.0, 10).span_length(rng) for _ in range(200)} == {1}  # p = 1: always one word
    assert {_span_masker(0.01, 1).span_length(rng) for _ in range(200)} == {1}  # max 1: always one word


# --------------------------------------------------------------------------------------- span extraction


def test_spans_are_maximal_labelled_runs_with_the_tokens_around_them():
    #            CLS  span@1-2  .  one  .  span@6-7  .  span@9-10 SEP
    labels = [X, 11, 12, X, 14, X, 16, 17, X, 19, 20, X]
    left, right, offset = span_fields(np.array(labels))
    assert left.tolist() == [-1, 0, 0, -1, 3, -1, 5, 5, -1, 8, 8, -1]
    assert right.tolist() == [-1, 3, 3, -1, 5, -1, 8, 8, -1, 11, 11, -1]
    assert offset.tolist() == [-1, 0, 1, -1, 0, -1, 0, 1, -1, 0, 1, -1]


def test_runs_touching_the_sequence_ends_and_empty_rows():
    # a run at position 0 or through the last position has no token outside it there: left out
    left, right, offset = span_fields(np.array([7, 8, X, 9, X, 5, 6]))
    assert left.tolist() == [-1, -1, -1, 2, -1, -1, -1]
    assert right.tolist() == [-1, -1, -1, 4, -1, -1, -1]
    assert offset.tolist() == [-1, -1, -1, 0, -1, -1, -1]
    for row in ([X] * 5, [X], [3]):
        assert all((f == -1).all() for f in span_fields(np.array(row)))
    left, right, offset = span_fields(np.array([X] + list(range(10, 50)) + [X]))  # one long span
    assert (left[1:-1] == 0).all() and (right[1:-1] == 41).all() and offset[1:-1].tolist() == list(range(40))


def _examples(n=8, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(20, 60))
        ids = np.concatenate([[2], rng.integers(10, 90, length), [3]]).astype(np.int64)
        maskable = np.ones(len(ids), bool)
        maskable[[0, -1]] = False
        out.append({"index": 100 + i, "input_ids": ids, "token_type_ids": np.zeros(len(ids), np.int64),
                    "maskable": maskable, "word_starts": rng.random(len(ids)) < 0.6})
    return out


def test_collated_span_fields_follow_the_span_masks_and_are_reproducible():
    examples = _examples()
    transform = SpanBoundary.instance_transform(SboOptions(), TransformContext(100, 2, 3, 0, 4, 1))
    assert isinstance(transform, SpanBoundaryTransform)
    collate = PretrainingCollator(_span_masker(), pad_token_id=0, seed=3, transforms=[transform])
    batch = collate(examples, epoch=1)
    lengths = []
    for r, e in enumerate(examples):
        n = len(e["input_ids"])
        labels = batch["labels"][r].numpy()
        left, right, offset = (batch[k][r].numpy() for k in ("sbo_left", "sbo_right", "sbo_offset"))
        assert (left[n:] == -1).all() and (right[n:] == -1).all() and (offset[n:] == -1).all()  # padding
        assert ((offset >= 0) == (labels != X)).all()  # [CLS]/[SEP] are never labelled: every label counts
        for i in np.flatnonzero(offset >= 0):
            s, e_ = left[i] + 1, right[i] - 1
            assert labels[left[i]] == X and labels[right[i]] == X and (labels[s:e_ + 1] != X).all()
            assert offset[i] == i - s
        lengths += [int(right[i] - left[i] - 1) for i in np.flatnonzero(offset == 0)]
    assert np.mean(lengths) > 1.5  # span masking gives multi-token spans
    assert all(torch.equal(batch[k], collate(examples, epoch=1)[k]) for k in ("labels", "sbo_left", "sbo_offset"))
    halves = [collate(examples[:3], epoch=1), collate(examples[3:], epoch=1)]
    width = batch["sbo_left"].shape[1]
    joined = torch.cat([F.pad(h["sbo_left"], (0, width - h["sbo_left"].shape[1]), value=-1) for h in halves])
    assert torch.equal(joined, batch["sbo_left"])  # per instance, not per batch
    assert not torch.equal(batch["sbo_left"], collate(examples, epoch=2)["sbo_left"])


# ---------------------------------------------------------------------------------------------- the loss

#: (row, first, last) of each span, by hand; row 2 also has a label at position 0 (no token before it)
SPANS = [(0, 1, 2), (0, 4, 4), (0, 6, 10), (1, 3, 3), (1, 5, 6), (2, 2, 4), (3, 7, 8)]
LENGTHS = [16, 12, 16, 10]


def _hand_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    rows, width = len(LENGTHS), 16
    ids = torch.randint(5, 60, (rows, width), generator=g)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(LENGTHS):
        mask[r, :n] = 1
    ids = ids.masked_fill(mask == 0, 0)
    labels = torch.full_like(ids, X)
    for r, s, e in SPANS:
        labels[r, s:e + 1] = ids[r, s:e + 1]
    labels[2, 0] = ids[2, 0]  # an MLM label the SBO cannot use
    masked = ids.masked_fill(labels != X, 4)
    batch = {"input_ids": masked, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": labels}
    fields = {k: torch.full_like(ids, -1) for k in ("sbo_left", "sbo_right", "sbo_offset")}
    for r, n in enumerate(LENGTHS):
        for k, value in zip(fields, span_fields(labels[r, :n].numpy()), strict=True):
            fields[k][r, :n] = torch.from_numpy(value)
    return {**batch, **fields}


def _sbo_model(seed=0, max_span_length=3):
    torch.manual_seed(seed)
    model = PretrainingModel(CFG, ["mlm", "sbo"], {"sbo": {"max_span_length": max_span_length}}).eval()
    with torch.no_grad():  # non-trivial LayerNorm affines and decoder bias, so a mix-up shows
        for name, param in model.objectives["sbo"].named_parameters():
            if not name.startswith("decoder.weight"):
                param.add_(0.3 * torch.randn_like(param))
    return model


def test_sbo_loss_by_hand():
    model = _sbo_model()
    sbo = model.objectives["sbo"]
    assert sbo.decoder.weight is model.bert.embeddings.word.weight  # tied to the word embeddings
    batch = _hand_batch()
    with torch.no_grad():
        out = model(**batch)
        hidden = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state
    h = CFG.hidden_size
    eps = CFG.layer_norm_eps
    terms, correct = [], []
    for r, s, e in SPANS:
        for i in range(s, e + 1):
            position = sbo.position.weight[min(i - s, 2)]  # offsets 3 and 4 of the long span share the last entry
            x = torch.cat([hidden[r, s - 1], hidden[r, e + 1], position])
            a = F.layer_norm(F.gelu(sbo.dense1.weight @ x + sbo.dense1.bias), (h,), sbo.norm1.weight, sbo.norm1.bias,
                             eps)
            b = F.layer_norm(F.gelu(sbo.dense2.weight @ a + sbo.dense2.bias), (h,), sbo.norm2.weight, sbo.norm2.bias,
                             eps)
            logits = model.bert.embeddings.word.weight @ b + sbo.decoder.bias
            target = int(batch["labels"][r, i])
            terms.append(-torch.log_softmax(logits, -1)[target])
            correct.append(float(logits.argmax() == target))
    assert len(terms) == 16
    expected = torch.stack(terms).mean()
    assert out.losses["sbo"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert out.metrics["sbo_acc"].item() == pytest.approx(np.mean(correct))
    keep = batch["labels"] != X  # the MLM loss still counts the label at row 2, position 0
    assert int(keep.sum()) == 17


def test_sbo_reads_only_the_boundaries_and_the_span_positions():
    model = _sbo_model(max_span_length=30)
    batch = _hand_batch()
    with torch.no_grad():
        base = model(**batch).losses["sbo"]
        moved = dict(batch, labels=batch["labels"].clone())
        moved["labels"][2, 0] = 7  # a label outside every span the SBO uses
        assert model(**moved).losses["sbo"].item() == pytest.approx(base.item(), abs=1e-7)
        shifted = dict(batch, sbo_offset=batch["sbo_offset"].clone())
        shifted["sbo_offset"][0, 6:11] = torch.arange(5) + 1  # other position embeddings: another loss
        assert abs(model(**shifted).losses["sbo"].item() - base.item()) > 1e-4


def test_sbo_without_spans_is_a_zero_that_keeps_the_graph_and_needs_its_fields():
    model = _sbo_model()
    batch = _hand_batch()
    empty = dict(batch, labels=torch.full_like(batch["labels"], X),
                 **{k: torch.full_like(batch[k], -1) for k in ("sbo_left", "sbo_right", "sbo_offset")})
    out = model(**empty)
    assert out.losses["sbo"].item() == 0.0
    out.losses["sbo"].backward()
    with pytest.raises(RuntimeError, match="sbo objective reads the span fields"):
        model(**{k: v for k, v in batch.items() if not k.startswith("sbo_")})


# ------------------------------------------------------------------------------------------ config errors


def test_bad_options_and_encoders_are_config_errors_naming_sbo():
    with pytest.raises(ConfigError, match="'max_span_length'"):
        SboOptions(max_span_length=0)
    base = ["corpus=x", "tokenizer=y"]
    with pytest.raises(ConfigError, match=r"objective_options\.sbo.*'max_span_length' must be >= 1"):
        load_config("spanbert", base + ["objective_options.sbo.max_span_length=0"])
    with pytest.raises(ConfigError, match=r"objective_options\.sbo"):
        load_config("spanbert", base + ["objective_options.sbo.span_width=3"])
    with pytest.raises(ConfigError, match="sbo objective ties its decoder to the word embeddings"):
        SpanBoundary(CFG, nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def chinese(people_daily_300):
    """The shared small People's Daily corpus (tests/objectives/conftest.py)."""
    return people_daily_300


def test_spanbert_recipe_trains_mlm_and_sbo(chinese, tmp_path):
    run = tmp_path / "spanbert"
    config = load_config("spanbert", _overrides(chinese, run))
    assert dict(config.objectives) == {"mlm": 1.0, "sbo": 1.0}
    pretraining = Pretraining.build(config)
    assert isinstance(pretraining.collator.masker, SpanMasker)
    assert [type(t) for t in pretraining.collator.transforms] == [SpanBoundaryTransform]
    result = pretraining.run()
    assert result.step == 4
    train = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [row for row in train if row["split"] == "train"]
    assert train and all({"loss/mlm", "loss/sbo", "sbo_acc"} <= set(row) for row in train)
    assert all(math.isfinite(row[k]) and row[k] > 0 for row in train for k in ("loss/mlm", "loss/sbo"))
    assert type(load(run / "model")).__name__ == "BertForMaskedLM"  # the SBO head stays in the checkpoints
