"""Magnitude pruning during fine-tuning as a regularizer: ``regularizers: {magnitude_pruning: {final_sparsity:
0.5}}`` prunes the encoder's matrices on Zhu & Gupta's cubic schedule while the task trains (see
`compression.pruning.magnitude`; the weights end zero in place, the shapes unchanged)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import nn

from ...compression.pruning.magnitude import ENCODER_WEIGHTS, MagnitudePruning, sparsity_of
from ...errors import ConfigError
from ...training.callbacks import Callback
from ...utils.typed import Where
from .base import REGULARIZERS, Regularizer, Stage

__all__ = ["MagnitudePruningOptions", "MagnitudePruningRegularizer"]

logger = logging.getLogger("bertology")

_KEY = "magnitude_pruning"


@dataclass
class MagnitudePruningOptions:
    #: sparsity reached at `end_step` (share of zeros in each pruned matrix)
    final_sparsity: float = 0.5
    initial_sparsity: float = 0.0
    start_step: int = 0
    #: null: end at `end_fraction` of the run's steps, the rest recovering at the final sparsity
    end_step: int | None = None
    end_fraction: float = 0.75
    #: steps between mask updates (Zhu & Gupta's delta t)
    every: int = 10
    #: parameter names to prune (a regular expression); default the encoder's QKV, out, up and down matrices
    pattern: str = ENCODER_WEIGHTS

    def validate(self, where: str = "") -> None:
        if not 0 <= self.initial_sparsity <= self.final_sparsity < 1:
            raise ConfigError(f"{where}need 0 <= initial_sparsity ({self.initial_sparsity}) <= final_sparsity "
                              f"({self.final_sparsity}) < 1")
        if self.start_step < 0 or self.every < 1:
            raise ConfigError(f"{where}field 'start_step' must be >= 0 and 'every' >= 1, got {self.start_step} "
                              f"and {self.every}")
        if self.end_step is not None and self.end_step <= self.start_step:
            raise ConfigError(f"{where}field 'end_step' ({self.end_step}) must come after start_step "
                              f"({self.start_step})")
        if not 0 < self.end_fraction <= 1:
            raise ConfigError(f"{where}field 'end_fraction' must lie in (0, 1], got {self.end_fraction}")


@REGULARIZERS.register("magnitude_pruning", options=MagnitudePruningOptions)
class MagnitudePruningRegularizer(Regularizer):
    order = 90  # last: its masks apply after every other callback has moved the weights

    def check(self, method: str, where: str | Where = "") -> None:
        if method != "full":
            raise ConfigError(f"{where}magnitude pruning needs the encoder's weights to train (method 'full'); "
                              f"with method {method!r} they cannot recover from pruning")

    def callbacks(self, stage: Stage) -> list[Callback]:
        o = self.options
        callback = MagnitudePruning(o.final_sparsity, o.initial_sparsity, o.start_step, o.end_step, o.every,
                                    o.end_fraction, o.pattern)
        stage.shared[_KEY] = callback
        return [callback]

    def finish(self, model: nn.Module, stage: Stage) -> None:
        callback = stage.shared.get(_KEY)
        if callback is not None and callback.weights:
            callback.apply()
        logger.info("magnitude pruning: %.1f%% of the pruned matrices are zero (dense shapes: no speed-up "
                    "without sparse kernels)", 100 * sparsity_of(model, self.options.pattern))
