"""The CPU dropout draws its mask with rand: the same distribution as torch's, scaled the same way, and the
backward pass uses the forward's mask."""

from __future__ import annotations

import math

import torch

from bertology.models.dropout import Dropout, dropout


def test_keep_rate_and_scale_match_the_definition():
    torch.manual_seed(0)
    n, p = 400_000, 0.1
    y = dropout(torch.ones(n), p, training=True)
    kept = y != 0
    share = kept.float().mean().item()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(share - (1 - p)) < 4 * sigma  # a 4-sigma binomial interval, fixed seed
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 4 * sigma / (1 - p)  # unbiased in expectation


def test_gradient_uses_the_same_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 32, requires_grad=True)
    y = dropout(x, 0.3, training=True)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.7))


def test_identity_when_not_training_or_zero_and_module_behaves_as_nn_dropout():
    x = torch.randn(8, 8)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    module = Dropout(0.5).eval()
    assert torch.equal(module(x), x)
    assert module.state_dict() == {}
    torch.manual_seed(3)
    a = Dropout(0.5).train()(x)
    torch.manual_seed(3)
    b = Dropout(0.5).train()(x)
    assert torch.equal(a, b)  # seeded: reproducible
