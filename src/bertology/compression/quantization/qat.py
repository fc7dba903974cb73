"""Quantization-aware training as Q8BERT does it: fine-tune with every encoder Linear seeing its weights and
inputs rounded to 8 bits in the forward pass, so the weights learn to live with the rounding; the backward
pass goes straight through the rounding (the straight-through estimator, zero outside the clipped range).

Weights: symmetric, one scale per output row (max |w| / 127), as the int8 layers that serve the result use.
Inputs: symmetric, one scale per layer from an exponential moving average of max |x| over training batches
(Q8BERT's EMA). It is a fine-tuning regularizer (`regularizers: {qat: {}}`), so the one Trainer runs it;
`finish` turns the layers back into plain Linear ones holding the trained weights, which `bertology quantize
--method qat` then makes int8 (dynamic: the inputs' ranges are measured per batch at run time, which is at
least as exact as the trained moving average).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...finetuning.regularization.base import REGULARIZERS, Regularizer, Stage
from ...training.callbacks import Callback
from ...utils.typed import Where, as_where


@dataclass
class QATOptions:
    #: bits of weights and inputs (Q8BERT: 8)
    bits: int = 8
    #: weight of the old value in the moving average of each layer's input range
    momentum: float = 0.95


class FakeQuantLinear(nn.Linear):
    """An nn.Linear whose forward pass rounds weights and inputs to `bits` (symmetric, signed); same
    parameters, plus the moving input range as a buffer."""

    bits: int = 8
    momentum: float = 0.95

    @classmethod
    def convert(cls, linear: nn.Linear, bits: int, momentum: float) -> FakeQuantLinear:
        linear.__class__ = cls
        linear.bits, linear.momentum = bits, momentum
        # not in the state dict (saved models stay plain); checkpoints keep it through `RangeKeeper`
        linear.register_buffer("input_range", torch.zeros((), device=linear.weight.device), persistent=False)
        return linear  # type: ignore[return-value]

    def restore(self) -> nn.Linear:
        """Back to a plain nn.Linear with the trained weights (the range buffer dropped)."""
        del self._buffers["input_range"]
        self.__class__ = nn.Linear
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2 ** (self.bits - 1) - 1
        if self.training:
            with torch.no_grad():  # the first batch sets the range; no host read (a GPU would stall on it)
                current = x.detach().abs().amax().float()
                moved = self.input_range * self.momentum + current * (1.0 - self.momentum)
                self.input_range.copy_(torch.where(self.input_range == 0, current, moved))
        scale = (self.input_range.clamp_min(1e-8) / levels).float()
        x_q = torch.fake_quantize_per_tensor_affine(x.float(), scale, torch.zeros((), dtype=torch.int32),
                                                    -levels, levels).to(x.dtype)
        w_scale = (self.weight.detach().abs().amax(dim=1).clamp_min(1e-8) / levels).float()
        w_q = torch.fake_quantize_per_channel_affine(self.weight.float(), w_scale,
                                                     torch.zeros_like(w_scale, dtype=torch.int32), 0, -levels, levels)
        return F.linear(x_q, w_q.to(x.dtype), self.bias)


def fake_quantize(model: nn.Module, bits: int = 8, momentum: float = 0.95) -> list[str]:
    """Make every plain Linear of `model` (a TaskModel's encoder, or an encoder) fake-quantized, in place."""
    names = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    for name in names:
        FakeQuantLinear.convert(model.get_submodule(name), bits, momentum)
    return names


def restore(model: nn.Module) -> int:
    """Undo `fake_quantize`; returns how many layers were restored."""
    layers = [m for m in model.modules() if isinstance(m, FakeQuantLinear)]
    for module in layers:
        module.restore()
    return len(layers)


class RangeKeeper(Callback):
    """Puts the layers' moving input ranges in the Trainer's checkpoints, so a resumed run continues them."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def _layers(self) -> dict[str, FakeQuantLinear]:
        return {n: m for n, m in self.model.named_modules() if isinstance(m, FakeQuantLinear)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: layer.input_range.detach().clone() for name, layer in self._layers().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, layer in self._layers().items():
            if name in state:
                layer.input_range.copy_(state[name])


@REGULARIZERS.register("qat", options=QATOptions)
class QuantizationAwareTraining(Regularizer):
    """Q8BERT's fake quantization of the encoder's Linear layers while fine-tuning."""

    order = 5  # before others, so they see the quantized forward

    def check(self, method: str, where: str | Where = "") -> None:
        options = self.options or QATOptions()
        if not 2 <= options.bits <= 8:
            raise ConfigError(f"{as_where(where)}qat: bits must be in 2..8 (int8 kernels serve the result), got "
                              f"{options.bits}")
        if not 0.0 <= options.momentum < 1.0:
            raise ConfigError(f"{as_where(where)}qat: momentum must be in [0, 1), got {options.momentum}")
        if method != "full":
            raise ConfigError(f"{as_where(where)}qat trains the encoder's own weights: use method full, not "
                              f"{method!r}")

    def transform(self, model: nn.Module) -> None:
        options = self.options or QATOptions()
        self.model = model
        fake_quantize(getattr(model, "encoder", model), options.bits, options.momentum)

    def callbacks(self, stage: Stage) -> list[Callback]:
        return [RangeKeeper(self.model)]

    def finish(self, model: nn.Module, stage: Stage) -> None:
        restore(model)


__all__ = ["FakeQuantLinear", "QATOptions", "QuantizationAwareTraining", "fake_quantize", "restore"]
