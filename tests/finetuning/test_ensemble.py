"""Parameter averaging (self-ensemble), checkpoint averaging and self-distillation, against hand computations."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import save_file

from bertology import BertConfig
from bertology.errors import BertologyError, CheckpointError, ConfigError
from bertology.finetuning.ensemble import (
    ParameterAverage,
    SelfDistillation,
    apply_average,
    average_checkpoints,
)
from bertology.models.task_heads import BertForSequenceClassification
from bertology.training import Callback, StepOutput, TrainConfig, Trainer

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


def data(n: int = 16, seq: int = 6, seed: int = 3) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        mask = torch.ones(seq, dtype=torch.long)
        mask[seq - 1 - i % 3:] = 0
        ids = torch.randint(1, TINY["vocab_size"], (seq,), generator=gen) * mask
        rows.append({"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(i % 2)})
    return rows


def batch_of(rows) -> dict[str, torch.Tensor]:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def config(**overrides) -> TrainConfig:
    base = dict(max_steps=4, batch_size=4, log_every=1, plot=False, progress=False, save_every=2,
                learning_rate=1e-2, seed=5)
    return TrainConfig(**{**base, **overrides})


class Recorder(Callback):
    """Copies of every parameter at the start and after each optimizer step."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_start(self, trainer):
        self.states.append({k: v.detach().clone() for k, v in trainer.raw.named_parameters()})

    def on_step_end(self, trainer):
        self.on_train_start(trainer)


@torch.no_grad()
def nudge(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def own_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


# -------------------------------------------------------------------------------- ParameterAverage
def test_window_mean_by_hand_over_snapshots_every_two_steps(tmp_path):
    model = classifier()
    model.classifier.bias.requires_grad_(False)  # not in the optimizer: not averaged
    trainer = Trainer(model, data(), config(), tmp_path)
    average = ParameterAverage(every=2, last=3)
    average.on_train_start(trainer)
    states = {0: own_state(model)}
    for step in range(1, 7):
        nudge(model, step)
        trainer.step = step
        average.on_step_end(trainer)
        states[step] = own_state(model)
    got = average.averaged_state()
    assert "classifier.bias" not in got and "classifier.weight" in got
    for name, value in got.items():
        by_hand = (states[2][name] + states[4][name] + states[6][name]) / 3  # snapshots 0 and 2..6, last 3
        torch.testing.assert_close(value, by_hand, rtol=0, atol=1e-7)


def test_ema_by_hand(tmp_path):
    model = classifier()
    trainer = Trainer(model, data(), config(), tmp_path)
    average = ParameterAverage(every=1, mode="ema", ema_decay=0.8)
    average.on_train_start(trainer)
    by_hand = own_state(model)
    for step in range(1, 4):
        nudge(model, step)
        trainer.step = step
        average.on_step_end(trainer)
        by_hand = {k: 0.8 * v + 0.2 * p.detach() for (k, v), p in zip(by_hand.items(), model.parameters(), strict=True)}
    for name, value in average.averaged_state().items():
        torch.testing.assert_close(value, by_hand[name], rtol=1e-6, atol=1e-7)


def test_average_in_a_run_is_the_mean_of_the_last_steps(tmp_path):
    recorder, average = Recorder(), ParameterAverage(every=1, last=3)
    trainer = Trainer(classifier(), data(), config(), tmp_path, callbacks=[recorder, average])
    trainer.train()
    assert len(recorder.states) == 5  # start + 4 steps
    for name, value in average.averaged_state().items():
        by_hand = torch.stack([recorder.states[s][name] for s in (2, 3, 4)]).mean(0)
        torch.testing.assert_close(value, by_hand, rtol=0, atol=1e-7)
    assert (tmp_path / "checkpoints" / "step-00000002" / "callbacks.safetensors").is_file()


@pytest.mark.parametrize("mode", ["mean", "ema"])
def test_resume_gives_the_same_average_as_an_uninterrupted_run(tmp_path, mode):
    def run(folder, max_steps, resume=False):
        average = ParameterAverage(every=1, last=3, mode=mode, ema_decay=0.5)
        model = classifier()
        # constant rate: a 2-step run must follow the same rates as the first half of a 4-step run
        Trainer(model, data(), config(max_steps=max_steps, schedule="constant"), folder,
                callbacks=[average]).train(resume=resume)
        return model, average.averaged_state()

    whole_model, whole = run(tmp_path / "whole", 4)
    _, half = run(tmp_path / "split", 2)
    model, resumed = run(tmp_path / "split", 4, resume=True)
    assert set(whole) == set(resumed)
    assert any(not torch.equal(whole[k], half[k]) for k in whole)  # the average did move after step 2
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name
    for (name, a), b in zip(whole_model.named_parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_state_of_another_mode_or_model_is_a_clear_error(tmp_path):
    trainer = Trainer(classifier(), data(), config(), tmp_path)
    mean = ParameterAverage(last=2)
    mean.on_train_start(trainer)
    with pytest.raises(CheckpointError, match="another mode"):
        ParameterAverage(mode="ema").load_state_dict(mean.state_dict())
    other = Trainer(classifier(num_hidden_layers=1), data(), config(), tmp_path / "other")
    restored = ParameterAverage(last=2)
    restored.load_state_dict(mean.state_dict())
    with pytest.raises(CheckpointError, match="missing|unexpected"):
        restored.on_train_start(other)


@pytest.mark.parametrize("bad", [dict(every=0), dict(last=0), dict(mode="median"), dict(ema_decay=1.0)])
def test_bad_average_options_name_the_field(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        ParameterAverage(**bad)


# -------------------------------------------------------------------------- checkpoint averaging
def test_average_checkpoints_is_the_elementwise_mean(tmp_path):
    gen = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(3, 4, generator=gen), "b": torch.randn(4, generator=gen).half(),
         "ids": torch.arange(5)}
    b = {"w": torch.randn(3, 4, generator=gen), "b": torch.randn(4, generator=gen).half(),
         "ids": torch.arange(5)}
    (tmp_path / "one").mkdir()
    save_file(a, str(tmp_path / "one" / "model.safetensors"))
    save_file(b, str(tmp_path / "two.safetensors"))
    mean = average_checkpoints([tmp_path / "one", tmp_path / "two.safetensors"])
    torch.testing.assert_close(mean["w"], (a["w"] + b["w"]) / 2, rtol=0, atol=1e-7)
    assert mean["b"].dtype == torch.float16
    torch.testing.assert_close(mean["b"], ((a["b"].float() + b["b"].float()) / 2).half())
    assert torch.equal(mean["ids"], a["ids"])


def test_average_of_saved_trainer_checkpoints_loads_into_the_model(tmp_path):
    model = classifier()
    Trainer(model, data(), config(), tmp_path).train()
    folders = [tmp_path / "checkpoints" / f"step-{s:08d}" for s in (2, 4)]
    mean = average_checkpoints(folders)
    apply_average(model, mean)
    for name, param in model.named_parameters():
        if name in mean:
            assert torch.equal(param, mean[name])
    assert not torch.equal(mean["classifier.weight"], average_checkpoints(folders[:1])["classifier.weight"])


def test_average_checkpoints_errors_name_the_file(tmp_path):
    save_file({"w": torch.zeros(2, 2)}, str(tmp_path / "a.safetensors"))
    save_file({"w": torch.zeros(2, 3)}, str(tmp_path / "shape.safetensors"))
    save_file({"v": torch.zeros(2, 2)}, str(tmp_path / "keys.safetensors"))
    save_file({"w": torch.zeros(2, 2), "n": torch.ones(1, dtype=torch.long)}, str(tmp_path / "n1.safetensors"))
    save_file({"w": torch.zeros(2, 2), "n": torch.zeros(1, dtype=torch.long)}, str(tmp_path / "n2.safetensors"))
    torch.save({"w": torch.zeros(2, 2)}, tmp_path / "model.bin")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    cases = [("shape.safetensors", "shape"), ("keys.safetensors", "missing"), ("model.bin", "only safetensors"),
             ("broken.safetensors", "cannot read"), ("absent.safetensors", "no such")]
    for name, why in cases:
        with pytest.raises(CheckpointError, match=why) as caught:
            average_checkpoints([tmp_path / "a.safetensors", tmp_path / name])
        assert name in str(caught.value)
    with pytest.raises(CheckpointError, match="n2.safetensors.*integer tensor 'n'"):
        average_checkpoints([tmp_path / "n1.safetensors", tmp_path / "n2.safetensors"])
    with pytest.raises(CheckpointError, match="at least one"):
        average_checkpoints([])


def test_apply_average_rejects_unknown_names_and_shapes():
    model = classifier()
    with pytest.raises(CheckpointError, match="nonexistent"):
        apply_average(model, {"nonexistent.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="classifier.bias"):
        apply_average(model, {"classifier.bias": torch.zeros(5)})


# ------------------------------------------------------------------------------- self-distillation
def test_self_distillation_loss_is_the_mse_to_the_averaged_model_by_hand(tmp_path):
    model = classifier(hidden_dropout_prob=0.3)  # the teacher runs without dropout, the student with it
    average = ParameterAverage(every=1, last=2)
    distil = SelfDistillation(average, weight=0.7)
    trainer = Trainer(model, data(), config(), tmp_path, callbacks=[average, distil])
    average.on_train_start(trainer)
    distil.on_train_start(trainer)
    nudge(model, 1)
    trainer.step = 1
    average.on_step_end(trainer)  # teacher: mean of the start and the nudged parameters
    nudge(model, 2)  # the student moves on
    batch = batch_of(data()[:4])
    teacher = copy.deepcopy(model)
    apply_average(teacher, average.averaged_state())
    with torch.no_grad():
        teacher_logits = teacher.eval()(**batch).logits
    model.train()
    out = trainer.forward(batch, extra=True)
    student = out.outputs["logits"]
    by_hand = 0.7 * ((student - teacher_logits) ** 2).sum() / student.numel()
    torch.testing.assert_close(out.losses["self_distillation"], by_hand, rtol=1e-6, atol=1e-7)
    assert out.losses["self_distillation"].requires_grad and model.training
    assert not torch.allclose(student, teacher_logits)


class NoLogits(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return StepOutput({"loss": (self.w * x).sum()})


def test_missing_logits_and_missing_average_are_clear_errors(tmp_path):
    average = ParameterAverage()
    distil = SelfDistillation(average)
    trainer = Trainer(NoLogits(), [torch.ones(3)] * 4, config(), tmp_path, callbacks=[average, distil])
    average.on_train_start(trainer)
    with pytest.raises(BertologyError, match=r"outputs\['logits'\]"):
        trainer.forward(torch.ones(1, 3), extra=True)
    lonely = Trainer(classifier(), data(), config(), tmp_path / "lonely", callbacks=[distil])
    with pytest.raises(ConfigError, match="not among the Trainer's callbacks"):
        lonely.train()


# ------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("mode", ["mean", "ema"])
def test_runs_with_averaging_and_self_distillation(tmp_path, mode):
    average = ParameterAverage(every=1, last=2, mode=mode)
    model = classifier(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    trainer = Trainer(model, data(), config(), tmp_path, callbacks=[average, SelfDistillation(average, weight=0.5)])
    result = trainer.train()
    assert result.step == 4 and result.stopped == "finished"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    distil = [r["loss/self_distillation"] for r in rows if r["split"] == "train"]
    assert len(distil) == 4 and distil[0] == 0.0  # step 1: teacher = the start = student (dropout is 0)
    assert all(v > 0 for v in distil[1:])
