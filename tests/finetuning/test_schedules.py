"""Depths, layer-wise learning rates and unfreezing schedules, checked by hand and in short Trainer runs."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from bertology import BertConfig, BertForMaskedLM
from bertology.errors import ConfigError
from bertology.finetuning.model import HeadConfig, TaskModel
from bertology.finetuning.schedules import (
    GradualUnfreezing,
    SequentialUnfreezing,
    layer_depths,
    layerwise_lr_groups,
    num_depths,
)
from bertology.models import BertModel
from bertology.models.albert import AlbertConfig, AlbertModel
from bertology.models.ambert import AmbertConfig, AmbertModel
from bertology.models.task_heads import BertForSequenceClassification
from bertology.training import Callback, TrainConfig, Trainer
from bertology.training.optim import parameter_groups

TINY = dict(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
            max_position_embeddings=16)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def classifier(seed: int = 0, **overrides) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**{**TINY, **overrides}).with_labels(2))


def expected_depth(name: str, layers: int = 2) -> int:
    """By hand from the names: what the brief says each part of BERT is."""
    if ".embeddings." in f".{name}":
        return 0
    for i in range(layers):
        if f"encoder.layers.{i}." in name:
            return i + 1
    return layers + 1


def data(n: int = 16, seq: int = 6, seed: int = 3) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        mask = torch.ones(seq, dtype=torch.long)
        mask[seq - 1 - i % 3:] = 0
        ids = torch.randint(1, TINY["vocab_size"], (seq,), generator=gen) * mask
        rows.append({"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(i % 2)})
    return rows


def config(**overrides) -> TrainConfig:
    base = dict(max_steps=4, batch_size=4, log_every=1, plot=False, progress=False, save_every=2,
                learning_rate=1e-2, schedule="constant", seed=5)
    return TrainConfig(**{**base, **overrides})


class Recorder(Callback):
    """Copies of every parameter at the start and after each optimizer step."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_start(self, trainer):
        self._take(trainer)

    def on_step_end(self, trainer):
        self._take(trainer)

    def _take(self, trainer):
        self.states.append({k: v.detach().clone() for k, v in trainer.raw.named_parameters()})


def changed_depths(before, after, depths) -> set[int]:
    return {depths[k] for k in before if not torch.equal(before[k], after[k])}


# ------------------------------------------------------------------------------------------ depths
def test_depths_of_a_classifier_follow_the_names():
    model = classifier()
    depths = layer_depths(model)
    assert set(depths) == {k for k, _ in model.named_parameters()}
    assert depths == {k: expected_depth(k) for k in depths}
    assert num_depths(model) == 4
    assert depths["bert.pooler.dense.weight"] == 3 and depths["classifier.bias"] == 3


def test_depths_of_a_task_model_put_heads_and_scalar_mix_on_top():
    torch.manual_seed(0)
    model = TaskModel(BertModel(BertConfig(**TINY)), {"t": HeadConfig(labels=["a", "b"], layers="scalar_mix")})
    depths = layer_depths(model)
    assert depths["encoder.embeddings.word.weight"] == 0
    assert depths["encoder.encoder.layers.0.ffn.up.weight"] == 1
    assert depths["encoder.encoder.layers.1.attention_norm.bias"] == 2
    assert depths["heads.t.selector.scalar_mix.scalar_parameters"] == 3
    assert depths["heads.t.linear.weight"] == 3


def test_albert_shared_groups_are_one_depth_each_and_shared_tensors_take_the_lowest_use():
    base = dict(TINY, num_hidden_layers=4, embedding_size=4)
    grouped = layer_depths(AlbertModel(AlbertConfig(**base, num_hidden_groups=2)))
    assert grouped["embedding_projection.weight"] == 0 and grouped["embeddings.word.weight"] == 0
    assert grouped["encoder.layers.0.ffn.up.weight"] == 1 and grouped["encoder.layers.1.ffn.up.weight"] == 2
    assert grouped["pooler.dense.weight"] == 3  # L counts the 2 distinct layers, not the 4 applications
    shared = AlbertModel(AlbertConfig(**base, sharing="attention"))
    depths = layer_depths(shared)
    assert depths["encoder.layers.0.attention.qkv.weight"] == 1  # used by all four layers: the lowest
    assert depths["encoder.layers.3.ffn.up.weight"] == 4 and depths["pooler.dense.bias"] == 5


def test_tied_output_matrix_and_ambert_coarse_embeddings_sit_at_depth_zero():
    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(**TINY))
    assert mlm.mlm_head.decoder.weight is mlm.bert.embeddings.word.weight
    depths = layer_depths(mlm)
    assert depths["bert.embeddings.word.weight"] == 0
    assert depths["mlm_head.transform.weight"] == 3
    ambert = layer_depths(AmbertModel(AmbertConfig(**TINY, coarse_vocab_size=12)))
    assert ambert["coarse.embeddings.word.weight"] == 0 and ambert["fine.encoder.layers.1.ffn.up.bias"] == 2


def test_a_model_without_encoder_is_a_clear_error():
    with pytest.raises(ConfigError, match="no bertology Encoder"):
        layer_depths(nn.Linear(3, 3))


# ----------------------------------------------------------------------------------- layer-wise lr
def test_layerwise_rates_by_hand_and_no_decay_split_kept():
    model = classifier()
    lr, d = 2e-3, 0.7
    groups = layerwise_lr_groups(model, lr, d, weight_decay=0.05)
    by_hand = {0: lr * d**3, 1: lr * d**2, 2: lr * d, 3: lr}
    _, no_decay = parameter_groups(model, 0.05)
    exempt = {id(p) for p in no_decay["params"]}
    seen = []
    for name, param in model.named_parameters():
        owners = [g for g in groups if any(p is param for p in g["params"])]
        assert len(owners) == 1, name
        group = owners[0]
        assert group["lr"] == pytest.approx(by_hand[expected_depth(name)], rel=1e-12), name
        assert group["weight_decay"] == (0.0 if id(param) in exempt else 0.05), name
        seen.append(id(param))
    assert len(seen) == sum(len(g["params"]) for g in groups)
    assert groups[0]["lr"] == lr  # the group the trainer logs carries the peak rate


def test_frozen_tensors_only_when_asked_and_the_trainer_uses_the_rates(tmp_path):
    model = classifier()
    model.bert.embeddings.requires_grad_(False)
    without = layerwise_lr_groups(model, 1e-3, 0.5, 0.01)
    assert all(g["depth"] > 0 for g in without)
    groups = layerwise_lr_groups(model, 1e-3, 0.5, 0.01, include_frozen=True)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    peaks = [g["lr"] for g in groups]
    trainer = Trainer(model, data(), config(schedule="linear", max_steps=10), tmp_path, param_groups=groups)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == peaks
    trainer.optimizer.step()
    trainer.scheduler.step()  # linear decay multiplies every group's own peak by the same factor
    factor = 1 - 1 / 10
    for group, peak in zip(trainer.optimizer.param_groups, peaks, strict=True):
        assert group["lr"] == pytest.approx(peak * factor)


@pytest.mark.parametrize("bad", [dict(decay=0.0), dict(decay=1.5), dict(lr=0.0), dict(weight_decay=-1.0)])
def test_bad_layerwise_arguments_name_the_field(bad):
    args = dict(lr=1e-3, decay=0.9, weight_decay=0.01) | bad
    with pytest.raises(ConfigError, match=next(iter(bad))):
        layerwise_lr_groups(classifier(), **args)


# -------------------------------------------------------------------------------------- unfreezing
def test_gradual_schedule_by_hand():
    schedule = GradualUnfreezing(every=2, model=classifier())
    expected = [{3}, {3}, {2, 3}, {2, 3}, {1, 2, 3}, {1, 2, 3}, {0, 1, 2, 3}, {0, 1, 2, 3}, {0, 1, 2, 3}]
    assert [set(schedule.trainable_depths(s)) for s in range(9)] == expected
    assert set(schedule.trainable_depths(1000)) == {0, 1, 2, 3}


def test_sequential_schedule_by_hand():
    schedule = SequentialUnfreezing(every=3, model=classifier())
    expected = [{3}] * 3 + [{0}] * 3 + [{1}] * 3 + [{2}] * 3 + [{0, 1, 2, 3}] * 4
    assert [set(schedule.trainable_depths(s)) for s in range(16)] == expected


def test_schedules_need_a_model_and_a_positive_period():
    with pytest.raises(ConfigError, match="every"):
        GradualUnfreezing(every=0)
    with pytest.raises(ConfigError, match="no model bound"):
        GradualUnfreezing(every=2).trainable_depths(0)


@pytest.mark.parametrize("kind,every", [(GradualUnfreezing, 1), (SequentialUnfreezing, 1), (GradualUnfreezing, 2)])
def test_only_the_scheduled_depths_change_in_a_run(tmp_path, caplog, kind, every):
    model = classifier()
    depths = layer_depths(model)
    recorder, schedule = Recorder(), kind(every=every)
    trainer = Trainer(model, data(), config(max_steps=5, weight_decay=0.01), tmp_path,
                      callbacks=[recorder, schedule])
    with caplog.at_level(logging.INFO, logger="bertology"):
        result = trainer.train()
    assert result.step == 5 and len(recorder.states) == 6
    for step in range(5):
        changed = changed_depths(recorder.states[step], recorder.states[step + 1], depths)
        assert changed == set(schedule.trainable_depths(step)), f"step {step}"
    phases = {frozenset(schedule.trainable_depths(s)) for s in range(5)}
    assert caplog.text.count("unfreezing at step") == len(phases)


def test_default_period_is_one_epoch_and_user_frozen_tensors_stay_frozen(tmp_path):
    model = classifier()
    model.bert.embeddings.requires_grad_(False)  # not in the default optimizer groups
    frozen = {k: v.clone() for k, v in model.bert.embeddings.named_parameters()}
    schedule = SequentialUnfreezing()
    trainer = Trainer(model, data(n=8), config(max_steps=8), tmp_path, callbacks=[schedule])
    trainer.train()
    assert schedule.every == 2  # 8 examples, batches of 4
    # embeddings hold nothing to train, so chain-thaw skips them: heads, layer 0, layer 1, everything
    assert [set(schedule.trainable_depths(s)) for s in (0, 2, 4, 6)] == [{3}, {1}, {2}, {1, 2, 3}]
    for name, param in model.bert.embeddings.named_parameters():
        assert not param.requires_grad and torch.equal(param, frozen[name])


def test_unfreezing_groups_with_frozen_tensors_included_thaw_them(tmp_path):
    model = classifier()
    model.requires_grad_(False)
    before = model.bert.embeddings.word.weight.detach().clone()
    groups = layerwise_lr_groups(model, 1e-2, 0.9, 0.01, include_frozen=True)
    trainer = Trainer(model, data(), config(max_steps=4), tmp_path, callbacks=[GradualUnfreezing(every=1)],
                      param_groups=groups)
    trainer.train()
    assert model.bert.embeddings.word.weight.requires_grad
    assert not torch.equal(before, model.bert.embeddings.word.weight)  # thawed at step 3 and trained


@pytest.mark.parametrize("kind", [GradualUnfreezing, SequentialUnfreezing])
def test_resumed_unfreezing_matches_an_uninterrupted_run(tmp_path, kind):
    def run(folder, max_steps, resume=False):
        model = classifier()
        Trainer(model, data(), config(max_steps=max_steps), folder, callbacks=[kind(every=1)]).train(resume=resume)
        return model

    whole = run(tmp_path / "whole", 4)
    run(tmp_path / "split", 2)
    resumed = run(tmp_path / "split", 4, resume=True)
    for (name, a), b in zip(whole.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b), name
