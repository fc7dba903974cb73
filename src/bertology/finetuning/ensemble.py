"""Self-ensemble and self-distillation (Xu et al. 2020, "Improving BERT Fine-Tuning via Self-Ensemble and
Self-Distillation").

Fine-tuning BERT is noisy from step to step; the average of the parameters over the last few steps is a
cheap ensemble of the models the run passed through, usually better than the last one alone (and it needs
one forward pass, unlike averaging predictions). Self-distillation then uses that average as a teacher
during training: the student is pulled toward the teacher's logits by a mean squared error, which
smooths the optimisation path.

`ParameterAverage` keeps the average during a run (the mean of the last K snapshots, as in the paper, or an
exponential moving average, which needs one copy instead of K); `average_checkpoints` does the same after
the fact from saved checkpoints; `apply_average` loads either into a model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import BertologyError, CheckpointError, ConfigError
from ..training.callbacks import Callback
from ..training.protocol import StepOutput
from ..utils.typed import check_choice

if TYPE_CHECKING:
    from ..training.trainer import Trainer

__all__ = ["MODES", "AverageOptions", "ParameterAverage", "SelfDistillation", "apply_average", "average_checkpoints"]

MODES = ("mean", "ema")


@dataclass
class AverageOptions:
    """How the parameters are averaged: a snapshot every `every` steps, the mean of the last `last` (mode
    "mean") or an exponential moving average with `ema_decay` (mode "ema")."""

    every: int = 1
    last: int = 5
    mode: str = "mean"
    ema_decay: float = 0.99

    def validate(self, where: str = "") -> None:
        for name, value in (("every", self.every), ("last", self.last)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}field '{name}' must be a positive integer, got {value!r}")
        check_choice(where, "mode", self.mode, MODES)
        if not 0 < self.ema_decay < 1:
            raise ConfigError(f"{where}field 'ema_decay' must lie in (0, 1), got {self.ema_decay}")


def _mean(snapshots: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Elementwise mean in a fixed order and at least fp32, so a resumed run recomputes it bit for bit."""
    out = {}
    for name, first in snapshots[0].items():
        total = first.to(torch.promote_types(first.dtype, torch.float32), copy=True)
        for snapshot in snapshots[1:]:
            total.add_(snapshot[name])
        out[name] = total.div_(len(snapshots)).to(first.dtype)
    return out


class ParameterAverage(Callback):
    """The average of the trained parameters over the run: the mean of the last `last` snapshots, one every
    `every` optimizer steps (mode "mean", the paper's self-ensemble), or an exponential moving average
    ``avg = ema_decay * avg + (1 - ema_decay) * params`` updated every `every` steps (mode "ema").

    The first snapshot is the parameters as training starts (step 0). Only the tensors the optimizer holds
    are averaged (frozen ones never change, so their average is themselves); "mean" keeps `last` copies of
    them on their device, "ema" one. The snapshots are saved in checkpoints, so a resumed run has the same
    average as an uninterrupted one.
    """

    def __init__(self, every: int = 1, last: int = 5, mode: str = "mean", ema_decay: float = 0.99) -> None:
        AverageOptions(every, last, mode, ema_decay).validate("ParameterAverage: ")
        self.every, self.last, self.mode, self.ema_decay = every, last, mode, ema_decay
        self.params: dict[str, nn.Parameter] = {}
        #: mode "mean": the kept snapshots, oldest first; mode "ema": one entry, the running average
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self._average: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------------------------- the hooks
    def on_train_start(self, trainer: Trainer) -> None:
        held = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
        self.params = {name: p for name, p in trainer.raw.named_parameters() if id(p) in held}
        if self.snapshots:  # restored from a checkpoint
            self._check_restored()
            self.snapshots = [{k: v.to(self.params[k].device) for k, v in s.items()} for s in self.snapshots]
            self._refresh()
        else:
            self.snapshot()

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0:
            self.snapshot()

    def snapshot(self) -> None:
        """Add the current parameters to the average (the hooks call this; public for use outside a Trainer)."""
        if not self.params:
            raise BertologyError("ParameterAverage has no parameters to average: it is bound when training starts")
        with torch.no_grad():
            current = {name: p.detach().clone() for name, p in self.params.items()}
            if self.mode == "ema" and self.snapshots:
                for name, avg in self.snapshots[0].items():
                    avg.mul_(self.ema_decay).add_(current[name], alpha=1 - self.ema_decay)
            else:
                self.snapshots.append(current)
                del self.snapshots[: -self.last]
        self._refresh()

    def _refresh(self) -> None:
        self._average = self.snapshots[0] if self.mode == "ema" else _mean(self.snapshots)

    def averaged_state(self) -> dict[str, torch.Tensor]:
        """The averaged parameters by name (the trained ones only; load them with `apply_average`).

        Not a copy (the teacher reads it every batch): in mode "ema" later steps update it in place, so
        clone it to keep one.
        """
        if self._average is None:
            raise BertologyError("ParameterAverage has no snapshot yet: it takes the first when training starts")
        return self._average

    # ------------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.mode == "ema":
            return {f"ema.{name}": t for name, t in (self.snapshots[0] if self.snapshots else {}).items()}
        return {f"snapshot.{i}.{name}": t for i, snapshot in enumerate(self.snapshots) for name, t in snapshot.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if not state:  # a checkpoint written without this callback: start averaging afresh
            return
        snapshots: dict[int, dict[str, torch.Tensor]] = {}
        for key, tensor in state.items():
            kind, _, rest = key.partition(".")
            if self.mode == "ema" and kind == "ema":
                snapshots.setdefault(0, {})[rest] = tensor
            elif self.mode == "mean" and kind == "snapshot":
                index, _, name = rest.partition(".")
                snapshots.setdefault(int(index), {})[name] = tensor
            else:
                raise CheckpointError(f"ParameterAverage (mode {self.mode!r}): the checkpoint's callback state "
                                      f"holds {key!r}; was it saved with another mode?")
        self.snapshots = [snapshots[i] for i in sorted(snapshots)][-self.last:]

    def _check_restored(self) -> None:
        for index, snapshot in enumerate(self.snapshots):
            missing = sorted(set(self.params) - set(snapshot))
            unexpected = sorted(set(snapshot) - set(self.params))
            if missing or unexpected:
                raise CheckpointError(f"ParameterAverage: snapshot {index} in the checkpoint does not match the "
                                      f"trained parameters: missing {missing[:5]}, unexpected {unexpected[:5]}")
            for name, tensor in snapshot.items():
                if tensor.shape != self.params[name].shape:
                    raise CheckpointError(f"ParameterAverage: snapshot {index} holds {name!r} with shape "
                                          f"{tuple(tensor.shape)}, the model's is {tuple(self.params[name].shape)}")


def _weights_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: only safetensors weights can be averaged (expected a .safetensors file "
                              "or a checkpoint folder holding model.safetensors)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    return path


def _load(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: cannot read safetensors weights ({error})") from error


def average_checkpoints(paths: Sequence[str | os.PathLike]) -> dict[str, torch.Tensor]:
    """Elementwise mean of the weights of saved checkpoints (folders with model.safetensors, or the files).

    Every file must hold the same tensor names and shapes; integer tensors (ids, counters) must be equal
    and are kept as they are. Floating tensors are summed in at least fp32 and returned in their own dtype.
    """
    if not paths:
        raise CheckpointError("average_checkpoints needs at least one checkpoint")
    files = [_weights_file(p) for p in paths]
    reference = _load(files[0])
    totals = {k: v.to(torch.promote_types(v.dtype, torch.float32), copy=True) if v.is_floating_point() else v
              for k, v in reference.items()}
    for path in files[1:]:
        state = _load(path)
        missing, unexpected = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
        if missing or unexpected:
            raise CheckpointError(f"{path}: its tensors differ from those of {files[0]}: missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}")
        for name, tensor in state.items():
            if tensor.shape != reference[name].shape:
                raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, but in {files[0]} "
                                      f"it has {tuple(reference[name].shape)}")
            if tensor.is_floating_point():
                totals[name].add_(tensor)
            elif not torch.equal(tensor, reference[name]):
                raise CheckpointError(f"{path}: integer tensor {name!r} differs from {files[0]}; it cannot be averaged")
    return {k: (v / len(files)).to(reference[k].dtype) if v.is_floating_point() else v for k, v in totals.items()}


def apply_average(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy averaged tensors into `model` by name; tensors `state` does not name are left as they are."""
    own = dict(model.named_parameters(remove_duplicate=False))
    own.update(model.named_buffers(remove_duplicate=False))
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise CheckpointError(f"apply_average: {type(model).__name__} has no tensors named {unknown[:5]}")
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise CheckpointError(f"apply_average: {name!r} has shape {tuple(tensor.shape)}, the model's is "
                                  f"{tuple(own[name].shape)}")
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor)


def _logits(out: Any, key: str) -> torch.Tensor | None:
    if isinstance(out, StepOutput):
        return out.outputs.get(key)
    if isinstance(out, dict) and "outputs" in out:
        return out["outputs"].get(key)
    parts = out.to_dict() if hasattr(out, "to_dict") else out if isinstance(out, dict) else {}
    return parts.get(key)


class SelfDistillation(Callback):
    """Adds ``weight * MSE(student logits, teacher logits)`` as the loss "self_distillation".

    The teacher is the student's own averaged parameters (`average`, which must also be among the
    Trainer's callbacks), run on the same batch in eval mode (no dropout, so the targets are deterministic
    and the student's dropout draws are unchanged) without gradients. The logits are read from the
    forward's `outputs[key]` (a `StepOutput`; model outputs with `.logits` are converted by the Trainer).
    """

    def __init__(self, average: ParameterAverage, weight: float = 1.0, key: str = "logits") -> None:
        if not isinstance(average, ParameterAverage):
            raise ConfigError(f"SelfDistillation needs a ParameterAverage as its teacher, got {type(average).__name__}")
        if weight < 0:
            raise ConfigError(f"SelfDistillation: 'weight' must be >= 0, got {weight}")
        self.average, self.weight, self.key = average, float(weight), key

    def on_train_start(self, trainer: Trainer) -> None:
        if not any(c is self.average for c in trainer.callbacks):
            raise ConfigError("SelfDistillation: its ParameterAverage is not among the Trainer's callbacks; add it "
                              "(before SelfDistillation) so the teacher follows the run")

    def teacher_logits(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The averaged model's logits on `batch`."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                args, kwargs = ((), batch) if isinstance(batch, dict) else ((batch,), {})
                out = torch.func.functional_call(model, dict(self.average.averaged_state()), args, kwargs)
        finally:
            model.train(was_training)
        logits = _logits(out, self.key)
        if logits is None:
            raise BertologyError(f"SelfDistillation: the teacher's forward ({type(model).__name__}) returned no "
                                 f"{self.key!r} output")
        return logits

    def extra_losses(self, trainer: Trainer, batch: Any, out: StepOutput) -> dict[str, torch.Tensor]:
        student = out.outputs.get(self.key)
        if student is None:
            raise BertologyError(f"SelfDistillation needs the student's logits in StepOutput.outputs[{self.key!r}], "
                                 f"but {type(trainer.raw).__name__} returned outputs {sorted(out.outputs)}; return "
                                 "them from the forward (or pass key= naming the logits)")
        teacher = self.teacher_logits(trainer.raw, batch)
        if teacher.shape != student.shape:
            raise BertologyError(f"SelfDistillation: teacher logits have shape {tuple(teacher.shape)}, the student's "
                                 f"{tuple(student.shape)}")
        return {"self_distillation": self.weight * F.mse_loss(student.float(), teacher.float())}
