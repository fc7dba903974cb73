"""Dropout that draws its mask with `rand` instead of `bernoulli_`: the same distribution (each element kept
with probability 1 - p, kept ones scaled by 1 / (1 - p)), about twice as fast on the CPU, where dropout was a
tenth of a training step (benchmarks/mlm_step.py --profile). On other devices torch's own kernel is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _MaskedScale(torch.autograd.Function):
    """y = x * mask * scale; the backward pass reuses the (one byte per element) mask."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x * keep * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad * keep * ctx.scale, None, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout(x, p, training)`, faster on the CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0 or torch.compiler.is_compiling():
        return F.dropout(x, p, training)
    keep = torch.rand(x.shape, device=x.device) >= p
    return _MaskedScale.apply(x, keep, 1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """`nn.Dropout` with the faster CPU mask (same options, same state dict: none)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
