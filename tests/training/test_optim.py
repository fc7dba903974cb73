"""Parameter groups, AdamW construction and the learning-rate schedule, checked against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bertology.training.config import TrainConfig
from bertology.training.optim import build_optimizer, build_scheduler, lr_factor, parameter_groups


class Tiny(nn.Module):
    """Embedding + LayerNorm + two Linears, with a tied output matrix and a 1-D non-bias scale."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.norm = nn.LayerNorm(6)
        self.hidden = nn.Linear(6, 6)
        self.out = nn.Linear(6, 11)
        self.out.weight = self.embed.weight  # tied
        self.scale = nn.Parameter(torch.ones(6))  # 1-D, not called bias
        self.frozen = nn.Linear(6, 3)
        self.frozen.requires_grad_(False)


def _ids(params) -> list[int]:
    return [id(p) for p in params]


def test_parameter_groups_split_matrices_from_vectors() -> None:
    torch.manual_seed(0)
    model = Tiny()
    decay, no_decay = parameter_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1
    assert no_decay["weight_decay"] == 0.0

    expected_decay = {id(model.embed.weight), id(model.hidden.weight)}
    expected_no_decay = {id(model.norm.weight), id(model.norm.bias), id(model.hidden.bias),
                         id(model.out.bias), id(model.scale)}
    # each parameter appears once: no duplicates in a group and nothing in both
    assert len(_ids(decay["params"])) == len(set(_ids(decay["params"])))
    assert len(_ids(no_decay["params"])) == len(set(_ids(no_decay["params"])))
    assert set(_ids(decay["params"])) == expected_decay
    assert set(_ids(no_decay["params"])) == expected_no_decay
    # frozen parameters are nowhere
    every = set(_ids(decay["params"])) | set(_ids(no_decay["params"]))
    assert id(model.frozen.weight) not in every and id(model.frozen.bias) not in every
    # every trainable parameter is somewhere
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert every == trainable


def test_parameter_groups_decay_every_matrix_of_a_stack() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 4, bias=False), nn.LayerNorm(4))
    decay, no_decay = parameter_groups(model, weight_decay=0.5)
    matrices = [p for p in model.parameters() if p.dim() == 2]
    vectors = [p for p in model.parameters() if p.dim() == 1]
    assert _ids(decay["params"]) == _ids(matrices)
    assert _ids(no_decay["params"]) == _ids(vectors)
    assert all(p.dim() == 2 for p in decay["params"])


def test_build_optimizer_uses_groups_and_config() -> None:
    torch.manual_seed(0)
    model = Tiny()
    config = TrainConfig(learning_rate=3e-4, weight_decay=0.05, adam_beta1=0.8, adam_beta2=0.95, adam_epsilon=1e-6)
    optimizer = build_optimizer(model, config)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert len(optimizer.param_groups) == 2
    expected = parameter_groups(model, config.weight_decay)
    for group, want in zip(optimizer.param_groups, expected, strict=True):
        assert _ids(group["params"]) == _ids(want["params"])
        assert group["weight_decay"] == want["weight_decay"]
        assert group["lr"] == 3e-4
        assert tuple(group["betas"]) == (0.8, 0.95)
        assert group["eps"] == 1e-6
    assert optimizer.param_groups[0]["weight_decay"] == 0.05
    assert optimizer.param_groups[1]["weight_decay"] == 0.0


# ------------------------------------------------------------------------------------------ schedule
def test_lr_factor_linear_warmup() -> None:
    warmup = 4
    got = [lr_factor(s, total=20, warmup=warmup, schedule="linear") for s in range(warmup)]
    assert got == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_lr_factor_linear_decay_reaches_zero_at_total() -> None:
    total, warmup = 14, 4  # 10 decay steps
    assert lr_factor(4, total, warmup, "linear") == pytest.approx(1.0)
    assert lr_factor(5, total, warmup, "linear") == pytest.approx(0.9)
    assert lr_factor(9, total, warmup, "linear") == pytest.approx(0.5)
    assert lr_factor(13, total, warmup, "linear") == pytest.approx(0.1)
    assert lr_factor(14, total, warmup, "linear") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(30, total, warmup, "linear") == pytest.approx(0.0, abs=1e-12)  # clamped, never negative
    # monotone non-increasing after warm-up
    values = [lr_factor(s, total, warmup, "linear") for s in range(warmup, total + 1)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_lr_factor_linear_without_warmup() -> None:
    assert lr_factor(0, 10, 0, "linear") == pytest.approx(1.0)
    assert lr_factor(5, 10, 0, "linear") == pytest.approx(0.5)
    assert lr_factor(10, 10, 0, "linear") == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("progress", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_lr_factor_cosine(progress: float) -> None:
    total, warmup = 108, 8  # 100 decay steps: progress k/100 exactly
    step = warmup + round(progress * 100)
    expected = 0.5 * (1 + math.cos(math.pi * progress))
    assert lr_factor(step, total, warmup, "cosine") == pytest.approx(expected, abs=1e-12)


def test_lr_factor_cosine_hand_values() -> None:
    # 0.5 * (1 + cos(pi/4)) = 0.5 + sqrt(2)/4; 0.5 * (1 + cos(pi/2)) = 0.5
    assert lr_factor(2, 10, 2, "cosine") == pytest.approx(1.0)
    assert lr_factor(4, 10, 2, "cosine") == pytest.approx(0.5 + math.sqrt(2) / 4)
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)
    assert lr_factor(10, 10, 2, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(1, 10, 2, "cosine") == pytest.approx(1.0)  # last warm-up step


def test_lr_factor_constant() -> None:
    assert [lr_factor(s, 10, 2, "constant") for s in range(2)] == pytest.approx([0.5, 1.0])
    assert all(lr_factor(s, 10, 2, "constant") == 1.0 for s in range(2, 25))
    assert all(lr_factor(s, 10, 0, "constant") == 1.0 for s in range(25))


def _scheduled_lrs(config: TrainConfig, total: int, steps: int) -> list[float]:
    param = nn.Parameter(torch.zeros(2, 2))
    optimizer = torch.optim.AdamW([param], lr=config.learning_rate)
    scheduler = build_scheduler(optimizer, config, total)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_build_scheduler_warmup_ratio_truncates() -> None:
    # 0.3 * 19 = 5.7: int() gives 5 warm-up steps (round would give 6, ceil 6)
    config = TrainConfig(learning_rate=1.0, warmup_ratio=0.3, schedule="linear")
    lrs = _scheduled_lrs(config, total=19, steps=20)
    warmup = int(0.3 * 19)
    assert warmup == 5
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lrs[5] == pytest.approx(1.0)
    assert lrs[6] == pytest.approx(1 - 1 / 14)
    assert lrs[19] == pytest.approx(0.0, abs=1e-12)


def test_build_scheduler_warmup_steps_win_over_ratio() -> None:
    config = TrainConfig(learning_rate=2.0, warmup_steps=2, warmup_ratio=0.5, schedule="cosine")
    lrs = _scheduled_lrs(config, total=10, steps=11)
    assert lrs[:2] == pytest.approx([1.0, 2.0])
    assert lrs[6] == pytest.approx(2.0 * 0.5)  # progress 4/8
    assert lrs[10] == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------------------- one step
def test_one_adamw_step_matches_hand_computation() -> None:
    torch.manual_seed(1234)
    model = nn.Linear(3, 2)
    w0 = model.weight.detach().double().clone()
    b0 = model.bias.detach().double().clone()
    lr, wd, b1, b2, eps = 0.1, 0.2, 0.9, 0.99, 1e-8
    config = TrainConfig(learning_rate=lr, weight_decay=wd, adam_beta1=b1, adam_beta2=b2, adam_epsilon=eps)
    optimizer = build_optimizer(model, config)

    x = torch.randn(4, 3)
    loss = (model(x) ** 2).sum()
    loss.backward()
    gw = model.weight.grad.detach().double().clone()
    gb = model.bias.grad.detach().double().clone()
    optimizer.step()

    def adamw(p0: torch.Tensor, g: torch.Tensor, decay: float) -> torch.Tensor:
        p = p0 * (1 - lr * decay)  # decoupled weight decay
        m = (1 - b1) * g
        v = (1 - b2) * g * g
        m_hat = m / (1 - b1)
        v_hat = v / (1 - b2)
        return p - lr * m_hat / (v_hat.sqrt() + eps)

    want_w = adamw(w0, gw, wd)
    want_b = adamw(b0, gb, 0.0)
    torch.testing.assert_close(model.weight.detach().double(), want_w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.bias.detach().double(), want_b, rtol=1e-5, atol=1e-6)
    # the decay really acted on the weight and not on the bias: without it the weight would differ by lr*wd*w0
    no_decay_w = adamw(w0, gw, 0.0)
    assert torch.allclose(want_w - no_decay_w, -lr * wd * w0)
    assert not torch.allclose(model.weight.detach().double(), no_decay_w, atol=1e-4)
