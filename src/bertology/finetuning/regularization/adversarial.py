"""FGM, PGD, FreeLB and SMART as regularizers (the callbacks and their options: ``finetuning.adversarial``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ...errors import ConfigError
from ...training.callbacks import Callback
from ...utils.typed import Where, suggest
from ..adversarial import (
    FGMCallback,
    FGMOptions,
    FreeLBCallback,
    FreeLBOptions,
    PGDCallback,
    PGDOptions,
    SMARTCallback,
    SMARTOptions,
)
from .base import REGULARIZERS, Regularizer, Stage

__all__ = ["ADVERSARIAL_FAMILY", "FGM", "PGD", "SMART", "FreeLB", "adversarial_methods", "build_adversarial",
           "check_adversarial"]

ADVERSARIAL_FAMILY = "adversarial"  # the `family` of these registrations, which the `adversarial:` alias may name


class _Adversarial(Regularizer):
    """Perturbs the encoder's input embeddings, so it needs an encoder that runs (not cached features)."""

    order = 10
    callback: type[Callback]

    def check(self, method: str, where: str | Where = "") -> None:
        if method == "frozen":
            raise ConfigError(f"{where}adversarial training perturbs the encoder's input, but method 'frozen' "
                              "trains on cached encoder outputs; use method full, adapter or lora")

    def callbacks(self, stage: Stage) -> list[Callback]:
        return [self.callback(**asdict(self.options))]


class _WeightAttack(_Adversarial):
    def check(self, method: str, where: str | Where = "") -> None:
        super().check(method, where)
        if method in ("adapter", "lora"):
            raise ConfigError(f"{where}{self.name} perturbs the word-embedding weights along their gradient, but "
                              f"method {method!r} keeps them frozen; use freelb or smart, which perturb the "
                              "embedding outputs instead")


@REGULARIZERS.register("fgm", options=FGMOptions, family=ADVERSARIAL_FAMILY)
class FGM(_WeightAttack):
    callback = FGMCallback


@REGULARIZERS.register("pgd", options=PGDOptions, family=ADVERSARIAL_FAMILY)
class PGD(_WeightAttack):
    callback = PGDCallback


@REGULARIZERS.register("freelb", options=FreeLBOptions, family=ADVERSARIAL_FAMILY)
class FreeLB(_Adversarial):
    callback = FreeLBCallback


@REGULARIZERS.register("smart", options=SMARTOptions, family=ADVERSARIAL_FAMILY)
class SMART(_Adversarial):
    callback = SMARTCallback


def adversarial_methods() -> list[str]:
    """The registered regularizers of the adversarial family (what `adversarial: {name: ...}` may name)."""
    return sorted(name for name in REGULARIZERS if REGULARIZERS.entry(name).info.get("family") == ADVERSARIAL_FAMILY)


def check_adversarial(name: Any, where: str | Where = "") -> str:
    """`name` if it is an adversarial method, else an error suggesting the nearest."""
    methods = adversarial_methods()
    if name not in methods:
        raise ConfigError(f"{where}unknown method {name!r}{suggest(str(name), methods)}; choose one of {methods}")
    return name


def build_adversarial(name: str, **options: Any) -> Callback:
    """The training-loop callback of adversarial method `name` with its options (errors name the option)."""
    check_adversarial(name, "adversarial: ")
    (callback,) = REGULARIZERS[name](REGULARIZERS.options(name, options, f"adversarial {name}: "), name) \
        .callbacks(Stage())
    return callback
