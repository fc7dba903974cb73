"""Self-ensemble (parameter averaging) and self-distillation (Xu et al. 2020) as regularizers.

Both read one `ParameterAverage` per stage: self-ensemble loads it into the model when the stage ends,
self-distillation uses it as the teacher (it makes one with default settings when self-ensemble is not
configured, and then leaves the trained parameters as they are).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ...errors import ConfigError
from ...training.callbacks import Callback
from ..ensemble import AverageOptions, ParameterAverage, SelfDistillation, apply_average
from .base import REGULARIZERS, Regularizer, Stage

__all__ = ["SelfDistillationOptions", "SelfEnsemble", "SelfTeacher", "stage_average"]

_KEY = "parameter_average"


def stage_average(stage: Stage, options: AverageOptions | None = None) -> tuple[ParameterAverage, bool]:
    """The stage's shared parameter average (made now with `options` when there is none); whether it is new."""
    average = stage.shared.get(_KEY)
    if average is not None:
        return average, False
    average = stage.shared[_KEY] = ParameterAverage(**asdict(options or AverageOptions()))
    return average, True


@REGULARIZERS.register("self_ensemble", options=AverageOptions)
class SelfEnsemble(Regularizer):
    """Train as usual while averaging the parameters; the model ends as the average."""

    order = 20

    def callbacks(self, stage: Stage) -> list[Callback]:
        average, new = stage_average(stage, self.options)
        return [average] if new else []

    def finish(self, model: nn.Module, stage: Stage) -> None:
        apply_average(model, stage.shared[_KEY].averaged_state())


@dataclass
class SelfDistillationOptions:
    #: weight of the MSE between the student's and the averaged teacher's logits
    weight: float = 1.0

    def validate(self, where: str = "") -> None:
        if not self.weight >= 0:
            raise ConfigError(f"{where}field 'weight' must be >= 0, got {self.weight}")


@REGULARIZERS.register("self_distillation", options=SelfDistillationOptions)
class SelfTeacher(Regularizer):
    """Pull the student's logits towards those of its own parameter average."""

    order = 30

    def callbacks(self, stage: Stage) -> list[Callback]:
        average, new = stage_average(stage)
        return ([average] if new else []) + [SelfDistillation(average, weight=self.options.weight)]
