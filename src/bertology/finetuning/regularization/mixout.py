"""Mixout (Lee et al. 2020) as a regularizer: the encoder's linear layers mix towards their pretrained weights."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...errors import ConfigError
from ...utils.typed import Where
from ..regularizers import apply_mixout
from .base import REGULARIZERS, Regularizer

__all__ = ["Mixout", "MixoutOptions"]


@dataclass
class MixoutOptions:
    #: probability of taking each weight entry from the pretrained value
    p: float = 0.1

    def validate(self, where: str = "") -> None:
        if not 0 < self.p < 1:
            raise ConfigError(f"{where}field 'p' must lie in (0, 1), got {self.p}")


@REGULARIZERS.register("mixout", options=MixoutOptions)
class Mixout(Regularizer):
    order = 0

    def check(self, method: str, where: str | Where = "") -> None:
        if method in ("adapter", "lora"):
            raise ConfigError(f"{where}mixout mixes tuned weights with the pretrained ones; with method "
                              f"{method!r} the encoder's weights do not change, so it has nothing to do")

    def transform(self, model: nn.Module) -> None:
        apply_mixout(getattr(model, "encoder", model), p=self.options.p)
