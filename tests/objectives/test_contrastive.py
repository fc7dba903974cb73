"""SimCSE pretraining: InfoNCE and the objective's loss by hand, the dropout views, which text each instance
gives (uniform, seeded, reproducible), config errors before training, and the recipe end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from pretrain_helpers import tiny_overrides

import bertology.objectives.contrastive  # noqa: F401  (registers "simcse")
from bertology import BertConfig, load
from bertology.data.collate import PretrainingCollator
from bertology.data.transforms import TransformContext
from bertology.errors import ConfigError
from bertology.objectives import PretrainingModel
from bertology.objectives.base import RunFacts
from bertology.objectives.contrastive import SimCSE, SimcseOptions, SimcseText, info_nce, sentence_spans
from bertology.runs.pretrain import Pretraining, load_config

CFG = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
CTX = TransformContext(vocab_size=60, cls_token_id=2, sep_token_id=3, pad_token_id=0, mask_token_id=4,
                       unk_token_id=1, special_ids=frozenset({0, 1, 2, 3, 4}))


def test_info_nce_by_hand():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 5, generator=g), torch.randn(5, 5, generator=g)  # 3 positives, 2 extra negatives
    loss, logits = info_nce(q, k, 0.1)
    total = 0.0
    for i in range(3):
        sims = [float(q[i] @ k[j] / (q[i].norm() * k[j].norm())) / 0.1 for j in range(5)]
        total += -(sims[i] - math.log(sum(math.exp(s) for s in sims)))
        assert logits[i].tolist() == pytest.approx(sims, abs=1e-4)
    assert loss.item() == pytest.approx(total / 3, abs=1e-5)


def _simcse_batch():
    """Three texts of different lengths, padded with junk ids that must not count."""
    texts = [[2, 11, 12, 13, 3], [2, 21, 22, 3], [2, 31, 32, 33, 34, 35, 3]]
    width = 8
    ids = torch.full((3, width), 0)
    for r, t in enumerate(texts):
        ids[r, :len(t)] = torch.tensor(t)
    main = torch.randint(5, 60, (3, 10), generator=torch.Generator().manual_seed(1))
    return texts, {"input_ids": main, "attention_mask": torch.ones_like(main), "token_type_ids": torch.zeros_like(main),
                   "simcse_ids": ids, "simcse_length": torch.tensor([len(t) for t in texts])}


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_simcse_loss_by_hand_counts_only_each_texts_tokens(pooling):
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["simcse"], {"simcse": {"pooling": pooling, "temperature": 0.05}}).train()
    texts, batch = _simcse_batch()
    out = model(**batch)
    head = model.objectives["simcse"]
    with torch.no_grad():
        vectors = []
        for t in texts:  # each text alone, no padding at all
            hidden = model.bert(torch.tensor([t]), torch.ones(1, len(t), dtype=torch.long), unpad=False)
            v = hidden.last_hidden_state[0, 0] if pooling == "cls" else hidden.last_hidden_state[0].mean(0)
            vectors.append(torch.tanh(head.dense(v)))  # SimCSE's MLP while training
        z = torch.stack(vectors)
        sims = torch.nn.functional.cosine_similarity(z[:, None], z[None], dim=-1) / 0.05
        expected = -torch.log_softmax(sims, -1).diagonal().mean()  # dropout off: the two views coincide
    assert out.losses["simcse"].item() == pytest.approx(expected.item(), abs=1e-4)
    junk = dict(batch, simcse_ids=batch["simcse_ids"].masked_fill(batch["simcse_ids"] == 0, 7))
    assert model(**junk).losses["simcse"].item() == pytest.approx(out.losses["simcse"].item(), abs=1e-5)
    assert out.metrics["simcse_reused_main_pass"].item() == 0.0


def test_dropout_makes_the_two_views_differ():
    torch.manual_seed(0)
    noisy = CFG.replace(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = PretrainingModel(noisy, ["simcse"]).train()
    _, batch = _simcse_batch()
    head = model.objectives["simcse"]
    ids, mask = batch["simcse_ids"], (batch["simcse_ids"] != 0).long()
    assert not torch.allclose(head._view(ids, mask), head._view(ids, mask))  # dropout: two different views
    model.eval()
    with torch.no_grad():
        assert torch.allclose(head._view(ids, mask), head._view(ids, mask))


def test_the_unmasked_main_pass_is_the_first_view_and_masked_inputs_are_not():
    torch.manual_seed(0)
    _, batch = _simcse_batch()
    same = dict(batch, input_ids=batch["simcse_ids"], attention_mask=(batch["simcse_ids"] != 0).long(),
                token_type_ids=torch.zeros_like(batch["simcse_ids"]))
    alone = PretrainingModel(CFG, ["simcse"], {"simcse": {"unit": "instance"}}).train()
    assert alone(**same).metrics["simcse_reused_main_pass"].item() == 1.0
    with_mlm = PretrainingModel(CFG, ["mlm", "simcse"], {"simcse": {"unit": "instance"}}).train()
    masked = dict(same, input_ids=same["input_ids"].masked_fill(torch.rand(same["input_ids"].shape) < 0.5, 4),
                  labels=same["input_ids"])
    out = with_mlm(**masked)
    assert out.metrics["simcse_reused_main_pass"].item() == 0.0 and set(out.losses) == {"mlm", "simcse"}


def test_sentence_spans_skip_specials_and_keep_a_cut_sentence():
    ids = np.array([2, 10, 11, 12, 13, 14, 3, 15, 16, 3])
    starts = np.array([0, 0, 0, 1, 0, 1, 0, 1, 0, 0], bool)  # 10, 11 continue a sentence cut before the instance
    spans = sentence_spans(ids, starts, frozenset({0, 2, 3}))
    assert [s.tolist() for s in spans] == [[1, 2], [3, 4], [5], [7, 8]]


def _instance(index, sentences=4, length=5):
    body = np.arange(10, 10 + sentences * length)
    ids = np.concatenate([[2], body, [3]])
    starts = np.zeros(len(ids), bool)
    starts[1:-1:length] = True
    masked = ids.copy()
    masked[2] = 4
    return {"index": index, "input_ids": masked, "original_ids": ids, "sentence_starts": starts}


def test_sentence_choice_is_uniform_seeded_and_cropped():
    transform = SimcseText(SimcseOptions(max_tokens=4), CTX)
    counts = np.zeros(4, int)
    for i in range(4000):
        out = transform(_instance(i), transform.rng_for(7, 0, i))
        first = int(out["simcse_ids"][1])
        counts[(first - 10) // 5] += 1
        assert out["simcse_ids"].tolist() == [2, first, first + 1, 3] and out["simcse_length"] == 4
        assert (first - 10) % 5 == 0  # always a whole sentence's beginning, unmasked (id 11 never masked away)
    # uniform over the 4 sentences: each count within 4 standard deviations of 1000
    assert np.all(np.abs(counts - 1000) < 4 * math.sqrt(4000 * 0.25 * 0.75)), counts
    again = [int(transform(_instance(i), transform.rng_for(7, 0, i))["simcse_ids"][1]) for i in range(50)]
    first_pass = [int(transform(_instance(i), transform.rng_for(7, 0, i))["simcse_ids"][1]) for i in range(50)]
    other_epoch = [int(transform(_instance(i), transform.rng_for(7, 1, i))["simcse_ids"][1]) for i in range(50)]
    assert again == first_pass and again != other_epoch


def test_instance_unit_copies_the_unmasked_ids_and_the_collator_pads_them():
    transform = SimcseText(SimcseOptions(unit="instance"), CTX)
    out = transform(_instance(0, sentences=2), transform.rng_for(0, 0, 0))
    assert out["simcse_ids"].tolist() == out["original_ids"].tolist() != out["input_ids"].tolist()
    examples = []
    for i, n in enumerate((2, 3)):
        inst = _instance(i, sentences=n)
        ids = inst["original_ids"]
        examples.append({"index": i, "input_ids": ids, "token_type_ids": np.zeros(len(ids), int),
                         "maskable": ~np.isin(ids, [2, 3]), "word_starts": np.ones(len(ids), bool),
                         "sentence_starts": inst["sentence_starts"], "document": 0})
    batch = PretrainingCollator(None, pad_token_id=0, transforms=[transform])(examples)
    assert batch["simcse_ids"].shape == (2, 17) and batch["simcse_length"].tolist() == [12, 17]
    assert (batch["simcse_ids"][0, 12:] == 0).all()


def test_bad_options_and_runs_name_simcse():
    with pytest.raises(ConfigError, match="temperature"):
        load_config("simcse", ["corpus=x", "tokenizer=y", "objective_options.simcse.temperature=0"])
    with pytest.raises(ConfigError, match="unit"):
        load_config("simcse", ["corpus=x", "tokenizer=y", "objective_options.simcse.unit=word"])

    class Pinyin(torch.nn.Module):
        token_inputs = ("pinyin_ids",)

    with pytest.raises(ConfigError, match=r"objective 'simcse' .*\['pinyin_ids'\]"):
        SimCSE.check_run("simcse", SimcseOptions(), RunFacts("doc_sentences", 64, None, Pinyin()))


@pytest.fixture(scope="module")
def chinese(people_daily_300):
    """The shared small People's Daily corpus (tests/objectives/conftest.py)."""
    return people_daily_300


def _overrides(root, run, steps=4):
    return tiny_overrides(root, run, steps, hidden=32)


def test_a_sentence_pair_format_is_refused_when_the_run_is_built(chinese, tmp_path):
    config = load_config("simcse", _overrides(chinese, tmp_path / "x") + ["data.format=segment_pair"])
    with pytest.raises(ConfigError, match="objective 'simcse' contrasts single texts.*segment_pair"):
        Pretraining.build(config)


def test_simcse_recipe_trains_a_few_steps(chinese, tmp_path):
    run = tmp_path / "run"
    pretraining = Pretraining.build(load_config("simcse", _overrides(chinese, run) + ["train.eval_every=4"]))
    batch = pretraining.collator([pretraining.train_set[i] for i in range(4)], epoch=0)
    assert batch["simcse_ids"].shape[1] <= 32
    assert (batch["simcse_ids"][:, 0] == pretraining.tokenizer.cls_token_id).all()
    result = pretraining.run()
    assert result.step == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert {"loss/mlm", "loss/simcse", "simcse_acc"} <= set(train[0])
    assert all(math.isfinite(r["loss/simcse"]) and math.isfinite(r["loss/mlm"]) for r in train)
    evaluation = [r for r in rows if r["split"] == "eval"]
    assert evaluation and math.isfinite(evaluation[-1]["eval/loss"])
    assert type(load(run / "model")).__name__ == "BertForMaskedLM"
