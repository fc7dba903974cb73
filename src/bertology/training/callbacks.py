"""Hooks into the one training loop, for what a plain forward-backward step cannot express.

Fine-tuning methods change the step in a few fixed places: add a loss term computed from the same batch
(self-distillation, SMART), run extra forward/backward passes after the clean backward (FGM, PGD, FreeLB),
or change which parameters train as the run goes on (gradual unfreezing). Each is a `Callback` that
overrides the hooks it needs; the loop calls every hook of every callback in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .protocol import StepOutput
    from .trainer import Trainer


class Callback:
    """No-op hooks; override what a method needs."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Once, after a resume has restored the step count (so schedules can catch up)."""

    def on_step_start(self, trainer: Trainer) -> None:
        """Before the first micro-batch of each optimizer step (`trainer.step` counts finished steps)."""

    def extra_losses(self, trainer: Trainer, batch: Any, out: StepOutput) -> dict[str, torch.Tensor]:
        """Named loss terms added to the step's losses before the backward pass (weighted like the others)."""
        return {}

    def after_backward(self, trainer: Trainer, batch: Any, out: StepOutput) -> None:
        """After the clean backward of a micro-batch: extra passes may accumulate more gradient.

        Use `trainer.forward(batch)`, `trainer.total_loss(out)` and `trainer.backward(loss)` (which divides by
        the accumulation count) so the extra passes see the same precision and weighting as the clean one.
        """

    def before_optimizer_step(self, trainer: Trainer) -> None:
        """After clipping, before the optimizer updates the parameters."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After the optimizer step (`trainer.step` already counts it)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Once, when the loop stops for any reason (even an error): undo what on_train_start installed."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors to keep in checkpoints so a resumed run continues exactly (e.g. a running average)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `state_dict` returned."""
