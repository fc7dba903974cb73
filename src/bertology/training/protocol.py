"""The one thing the training loop knows about what it trains: a step returns named losses and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class StepOutput:
    """Named losses (summed with the run's weights into the loss to minimise) and metrics to log."""

    losses: dict[str, torch.Tensor]
    metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)
    #: tensors callbacks may need (e.g. "logits" for self-distillation); never logged
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


def as_step_output(out: Any) -> StepOutput:
    """Accept a StepOutput, a {"losses": ..., "metrics": ...} dict, or a model output with `.loss`.

    Model outputs that carry parts named `*_loss` (BertForPreTraining's mlm_loss and nsp_loss) are logged
    by part; their sum is the loss.
    """
    if isinstance(out, StepOutput):
        return out
    if isinstance(out, dict) and "losses" in out:
        return StepOutput(dict(out["losses"]), dict(out.get("metrics", {})), dict(out.get("outputs", {})))
    parts = out.to_dict() if hasattr(out, "to_dict") else (out if isinstance(out, dict) else None)
    if parts is not None:
        logits = {k: v for k, v in parts.items() if k.endswith("logits") and isinstance(v, torch.Tensor)}
        named = {k[: -len("_loss")]: v for k, v in parts.items() if k.endswith("_loss") and v is not None}
        if named:
            return StepOutput(named, outputs=logits)
        if parts.get("loss") is not None:
            return StepOutput({"loss": parts["loss"]}, outputs=logits)
    raise TypeError(
        f"a trainable module must return named losses (StepOutput, a dict with 'losses', or an output with "
        f"'.loss'); got {type(out).__name__}"
    )
