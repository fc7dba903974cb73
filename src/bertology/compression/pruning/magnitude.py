"""Unstructured magnitude pruning during fine-tuning, with Zhu & Gupta's (2017) cubic sparsity schedule.

Sparsity rises from s_i at step t0 to s_f at step t0 + n*dt, updated every dt steps:

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3

so most weights go early, while the network still has many to compensate with, and the last ones slowly.
At each update the smallest-magnitude entries of every pruned matrix are masked to reach s_t (masked entries
are zero, so they are the smallest: the mask only grows); after every optimizer step the masks are applied
again, so pruned weights stay zero whatever the optimizer's momentum says. When training ends the weights
are zero in place, and the model saves as an ordinary dense model.

Honest note: the matrices keep their shapes. Dense kernels (the matmuls of CPU and GPU torch) do as much
work on a zero as on any number, so this pruning buys no speed and no smaller safetensors file by itself; the
gain is in a compressed file (zeros compress well: `compressed_size`) or a sparse format (`csr_bytes`), and
speed only on hardware or kernels built for sparsity. Head, neuron and layer pruning shrink the matrices.
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from ...errors import ConfigError
from ...training.callbacks import Callback

if TYPE_CHECKING:
    from ...training.trainer import Trainer

logger = logging.getLogger("bertology")

#: the encoder matrices pruned by default: attention QKV and output, feed-forward up and down
ENCODER_WEIGHTS = r"(^|\.)encoder\.layers\.\d+\.(attention\.(qkv|out)|ffn\.(up|down))\.weight$"


def cubic_sparsity(step: int, final: float, initial: float = 0.0, start: int = 0, end: int = 1000,
                   every: int = 1) -> float:
    """Zhu & Gupta's target sparsity at training step `step` (0 before `start`, `final` from `end` on; held
    between updates, which come every `every` steps from `start`)."""
    if not 0.0 <= initial <= final < 1.0:
        raise ConfigError(f"sparsity schedule: need 0 <= initial ({initial}) <= final ({final}) < 1")
    if end <= start or every < 1:
        raise ConfigError(f"sparsity schedule: need end ({end}) > start ({start}) and every ({every}) >= 1")
    if step < start:
        return 0.0
    if step >= end:
        return final
    at = start + ((step - start) // every) * every
    progress = (at - start) / (end - start)
    return final + (initial - final) * (1.0 - progress) ** 3


def prunable_weights(model: nn.Module, pattern: str = ENCODER_WEIGHTS) -> dict[str, nn.Parameter]:
    """The parameters magnitude pruning acts on: names matching `pattern` (default: encoder matrices)."""
    compiled = re.compile(pattern)
    found = {name: p for name, p in model.named_parameters() if compiled.search(name)}
    if not found:
        raise ConfigError(f"magnitude pruning: no parameter of {type(model).__name__} matches {pattern!r}")
    return found


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """True where an entry stays: all but the round(sparsity * n) smallest |entries| (ties by position)."""
    k = int(round(sparsity * weight.numel()))
    keep = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
    if k:
        smallest = torch.argsort(weight.detach().abs().flatten(), stable=True)[:k]
        keep[smallest] = False
    return keep.view_as(weight)


def sparsity_of(model: nn.Module, pattern: str = ENCODER_WEIGHTS) -> float:
    """Share of exact zeros in the weights `pattern` names."""
    weights = list(prunable_weights(model, pattern).values())
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / max(1, sum(w.numel() for w in weights))


class MagnitudePruning(Callback):
    """The schedule and masks, as a Trainer callback. `end_step` None ends the schedule at `end_fraction` of
    the run's steps, leaving the rest to recover at the final sparsity."""

    def __init__(self, final_sparsity: float, initial_sparsity: float = 0.0, start_step: int = 0,
                 end_step: int | None = None, every: int = 10, end_fraction: float = 0.75,
                 pattern: str = ENCODER_WEIGHTS) -> None:
        self.final, self.initial = final_sparsity, initial_sparsity
        self.start, self.end, self.every = start_step, end_step, every
        self.end_fraction, self.pattern = end_fraction, pattern
        self.weights: dict[str, nn.Parameter] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.current = 0.0

    def target(self, step: int) -> float:
        return cubic_sparsity(step, self.final, self.initial, self.start, self.end or 1, self.every)

    def on_train_start(self, trainer: Trainer) -> None:
        if self.end is None:
            self.end = max(self.start + 1, int(self.end_fraction * trainer.total_steps))
        self.weights = prunable_weights(trainer.raw, self.pattern)
        unknown = sorted(set(self.masks) - set(self.weights))
        if unknown:
            raise ConfigError(f"magnitude pruning: the checkpoint holds masks for {unknown}, which the model lacks")
        for name, weight in self.weights.items():
            self.masks[name] = self.masks.get(name, torch.ones_like(weight, dtype=torch.bool)).to(weight.device)
        self._update(trainer.step)

    def _due(self, step: int) -> bool:
        assert self.end is not None
        return step == self.end or (self.start <= step < self.end and (step - self.start) % self.every == 0)

    def _update(self, step: int) -> None:
        """Masks for the target at `step` (they only grow), then applied."""
        target = self.target(step)
        if target > self.current:
            for name, weight in self.weights.items():
                self.masks[name] &= magnitude_mask(weight * self.masks[name], target)
            self.current = target
        self.apply()

    def apply(self) -> None:
        """Zero the masked entries in place."""
        with torch.no_grad():
            for name, weight in self.weights.items():
                weight.mul_(self.masks[name].to(weight.dtype))

    def before_optimizer_step(self, trainer: Trainer) -> None:
        for name, weight in self.weights.items():
            if weight.grad is not None:
                weight.grad.mul_(self.masks[name].to(weight.grad.dtype))

    def on_step_end(self, trainer: Trainer) -> None:
        if self._due(trainer.step):
            self._update(trainer.step)
        else:
            self.apply()

    def on_train_end(self, trainer: Trainer) -> None:
        if self.weights:
            self.apply()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"mask.{name}": mask for name, mask in self.masks.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.masks = {name[len("mask."):]: mask.bool() for name, mask in state.items() if name.startswith("mask.")}
        if self.masks:
            total = sum(m.numel() for m in self.masks.values())
            self.current = sum(int((~m).sum()) for m in self.masks.values()) / total


# ------------------------------------------------------------------------------------------- size
@dataclass(frozen=True)
class SparseSize:
    """What a (partly) zero model weighs, measured: dense safetensors bytes, those bytes zlib-compressed, and
    the bytes of the pruned matrices in CSR form (float values, int32 column indices and row pointers) with
    every other tensor dense."""

    parameters: int
    nonzero: int
    dense_bytes: int
    zlib_bytes: int
    csr_bytes: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / max(1, self.parameters)


def compressed_size(model: nn.Module, pattern: str = ENCODER_WEIGHTS, level: int = 6) -> SparseSize:
    """Measure `model` as saved: safetensors bytes, zlib(level) of those bytes, and a CSR form's bytes."""
    from safetensors.torch import save

    from ..report import _plain_tensors

    tensors = _plain_tensors(model.state_dict())
    blob = save(tensors, metadata={"format": "pt"})
    compiled = re.compile(pattern)
    csr = 0
    for name, tensor in tensors.items():
        if compiled.search(name) and tensor.dim() == 2:
            nonzero = int(torch.count_nonzero(tensor))
            csr += nonzero * (tensor.element_size() + 4) + (tensor.shape[0] + 1) * 4
        else:
            csr += tensor.numel() * tensor.element_size()
    parameters = sum(t.numel() for t in tensors.values())
    nonzero = sum(int(torch.count_nonzero(t)) for t in tensors.values())
    return SparseSize(parameters, nonzero, len(blob), len(zlib.compress(blob, level)), csr)


__all__ = ["ENCODER_WEIGHTS", "MagnitudePruning", "SparseSize", "compressed_size", "cubic_sparsity",
           "magnitude_mask", "prunable_weights", "sparsity_of"]
