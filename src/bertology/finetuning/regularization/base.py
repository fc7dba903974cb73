"""Regularizers as named, typed extension points: what a fine-tuning run applies without naming any.

A regularizer may refuse a method (`check`, at load), change the model before training (`transform`,
e.g. Mixout), add training-loop callbacks (`callbacks`, e.g. adversarial training, parameter averaging)
and act after a stage has trained (`finish`, e.g. loading the averaged parameters). A new one is one
module::

    @REGULARIZERS.register("r3f", options=R3FOptions)
    class R3F(Regularizer):
        def callbacks(self, stage): return [R3FCallback(**asdict(self.options))]

and a config names it: ``regularizers: {r3f: {eps: 1e-5}}`` (with the module under ``plugins:`` when nothing
else imports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ...training.callbacks import Callback
from ...utils.registry import Registry
from ...utils.typed import Where

__all__ = ["REGULARIZERS", "Regularizer", "Stage", "build_regularizer"]


@dataclass
class Stage:
    """What the regularizers of one training stage share (e.g. the parameter average a teacher reads)."""

    shared: dict[str, Any] = field(default_factory=dict)


class Regularizer:
    """One configured regularizer; `options` is its options dataclass (or None)."""

    #: where its callbacks go among those of the run's other regularizers (lower first; ties by name)
    order: int = 50

    def __init__(self, options: Any = None, name: str = "") -> None:
        self.options = options
        self.name = name or type(self).__name__

    def check(self, method: str, where: str | Where = "") -> None:
        """Refuse a fine-tuning method it cannot work with (raise ConfigError); called at load."""

    def transform(self, model: nn.Module) -> None:
        """Change the model before training (after the method froze or wrapped the encoder)."""

    def callbacks(self, stage: Stage) -> list[Callback]:
        """Training-loop callbacks for one stage."""
        return []

    def finish(self, model: nn.Module, stage: Stage) -> None:
        """Act on the model after a stage has trained."""


REGULARIZERS: Registry[type[Regularizer]] = Registry("regularizer")


def build_regularizer(name: str, options: Any = None, where: str | Where = "") -> Regularizer:
    """The regularizer registered as `name`, its options parsed (a typo names the key and suggests)."""
    entry = REGULARIZERS.entry(name, where)
    return entry.obj(REGULARIZERS.options(name, options, where), name)
