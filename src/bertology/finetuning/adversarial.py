"""Adversarial fine-tuning as training-loop callbacks: FGM, PGD, FreeLB and SMART.

All four make the model robust to small changes of its input embeddings, which on small data sets
acts as a strong regularizer:

- **FGM** (Miyato et al. 2017) and **PGD** (Madry et al. 2018) perturb the word-embedding *weights*
  along the loss gradient after the clean backward pass and add the gradient of the perturbed loss.
- **FreeLB** (Zhu et al. 2020) perturbs the word-embedding *outputs* with a per-example delta that
  ascends the loss for a few steps; the parameter gradient is the mean over the steps.
- **SMART** (Jiang et al. 2020) adds a smoothness loss: the symmetric KL divergence between the
  predictions on clean and on adversarially perturbed embeddings (MSE for regression).

Each is a regularizer chosen by name (``regularizers: {pgd: {steps: 3}}`` in a fine-tuning config, see
``finetuning.regularization``); its options are the typed dataclasses here. The word embedding is found as
the model's ``...embeddings.word`` module, which every bertology family has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..training.callbacks import Callback
from .divergence import symmetric_bernoulli_kl, symmetric_kl
from .model import HeadOptions
from .regularizers import FGM, PGD
from .tasks import task_kind

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..training.protocol import StepOutput
    from ..training.trainer import Trainer

__all__ = ["FGMCallback", "FGMOptions", "FreeLBCallback", "FreeLBOptions", "PGDCallback", "PGDOptions",
           "SMARTCallback", "SMARTOptions", "freelb_ascent", "freelb_init", "prediction_divergence", "smart_ascent",
           "symmetric_bernoulli_kl", "symmetric_kl", "word_embedding"]


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class FGMOptions:
    """FGM: one step of L2 size `epsilon` on the word-embedding weights."""

    epsilon: float = 1.0

    def validate(self, where: str = "") -> None:
        if not self.epsilon > 0:
            raise ConfigError(f"{where}field 'epsilon' must be positive, got {self.epsilon}")


@dataclass
class PGDOptions:
    """PGD: `steps` ascent steps of size `alpha` within an L2 ball of radius `epsilon`."""

    epsilon: float = 1.0
    alpha: float = 0.3
    steps: int = 3

    def validate(self, where: str = "") -> None:
        if not (self.epsilon > 0 and self.alpha > 0):
            raise ConfigError(f"{where}fields 'epsilon' and 'alpha' must be positive, got {self.epsilon} and "
                              f"{self.alpha}")
        if not (_integer(self.steps) and self.steps >= 1):
            raise ConfigError(f"{where}field 'steps' must be an integer >= 1, got {self.steps!r}")


@dataclass
class FreeLBOptions:
    """FreeLB: `adv_steps` passes on embeddings + delta, delta ascending with step `adv_lr`."""

    adv_steps: int = 2
    adv_lr: float = 0.1
    #: size of the random initial delta (0: start at zero)
    init_mag: float = 0.0
    #: bound on each example's delta (0: none)
    max_norm: float = 0.0
    seed: int = 0

    def validate(self, where: str = "") -> None:
        if not (_integer(self.adv_steps) and self.adv_steps >= 1):
            raise ConfigError(f"{where}field 'adv_steps' must be an integer >= 1, got {self.adv_steps!r}")
        if not self.adv_lr > 0 or self.init_mag < 0 or self.max_norm < 0:
            raise ConfigError(f"{where}need adv_lr > 0, init_mag >= 0 and max_norm >= 0; got {self.adv_lr}, "
                              f"{self.init_mag}, {self.max_norm}")


@dataclass
class SMARTOptions:
    """SMART: `weight` times the divergence of predictions under noise that `steps` ascent steps made worse."""

    weight: float = 1.0
    epsilon: float = 1e-5
    step_size: float = 1e-3
    noise_std: float = 1e-5
    steps: int = 1
    seed: int = 0

    def validate(self, where: str = "") -> None:
        if not (_integer(self.steps) and self.steps >= 0):
            raise ConfigError(f"{where}field 'steps' must be an integer >= 0, got {self.steps!r}")
        if self.weight < 0 or not (self.epsilon > 0 and self.step_size > 0) or self.noise_std < 0:
            raise ConfigError(f"{where}need weight >= 0, epsilon > 0, step_size > 0, noise_std >= 0; got "
                              f"{self.weight}, {self.epsilon}, {self.step_size}, {self.noise_std}")


def word_embedding(model: nn.Module) -> nn.Embedding:
    """The token-embedding table of a bertology model (through DDP's ``.module`` and task wrappers)."""
    model = getattr(model, "module", model)
    for name, module in model.named_modules():
        if (name == "word" or name.endswith("embeddings.word")) and isinstance(module, nn.Embedding):
            return module
    raise ConfigError(f"adversarial training needs a word embedding named '...embeddings.word'; "
                      f"{type(model).__name__} has none")


def _logits(out: StepOutput) -> torch.Tensor:
    logits = out.outputs.get("logits")
    if logits is None:
        raise ConfigError(f"this adversarial method compares predictions, but the model returned no 'logits' "
                          f"output (it returned {sorted(out.outputs)})")
    return logits


class _WeightAttack(Callback):
    """Shared by FGM and PGD: they move the embedding weights, which must be trainable and unsharded.

    The attack direction is the gradient of the current micro-batch only: with gradient accumulation the
    embedding's `.grad` also holds the earlier micro-batches', so it is remembered before the clean backward
    (in `extra_losses`) and subtracted.
    """

    def __init__(self) -> None:
        self.attacks = 0
        self.skipped = 0  # micro-batches without a usable direction (frozen, zero or non-finite gradient)
        self.embedding: nn.Embedding | None = None
        self._before: torch.Tensor | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        from .schedules import _Unfreezing

        self.embedding = word_embedding(trainer.raw)
        if getattr(trainer, "fsdp", False):
            raise ConfigError(f"{type(self).__name__} perturbs the word-embedding weights, which FSDP shards; use "
                              "distributed: ddp, or the freelb / smart methods")
        thawing = any(isinstance(c, _Unfreezing) for c in trainer.callbacks)
        if not self.embedding.weight.requires_grad and not thawing:
            raise ConfigError(f"{type(self).__name__} perturbs the word-embedding weights along their gradient, but "
                              "they are frozen (method adapter or lora); use freelb or smart, which perturb the "
                              "embedding outputs instead")

    def extra_losses(self, trainer: Trainer, batch: Any, out: StepOutput) -> dict[str, torch.Tensor]:
        grad = self.embedding.weight.grad if self.embedding is not None else None
        self._before = None if grad is None else grad.detach().clone()
        return {}

    def micro_batch_gradient(self) -> torch.Tensor | None:
        """This micro-batch's gradient of the embedding weights (None while they are frozen)."""
        assert self.embedding is not None, "on_train_start was not called"
        weight = self.embedding.weight
        if not weight.requires_grad or weight.grad is None:
            return None
        return weight.grad if self._before is None else weight.grad - self._before

    @staticmethod
    def _extra_pass(trainer: Trainer, batch: Any) -> bool:
        """Forward and backward on the perturbed model; a non-finite loss is not backpropagated (False)."""
        loss = trainer.total_loss(trainer.forward(batch))
        if not torch.isfinite(loss):
            return False
        trainer.backward(loss)
        return True


class FGMCallback(_WeightAttack):
    """One extra pass with the embedding weights moved by ``epsilon * g / ||g||_2``."""

    def __init__(self, epsilon: float = 1.0) -> None:
        super().__init__()
        FGMOptions(epsilon).validate("fgm: ")
        self.epsilon = float(epsilon)

    def after_backward(self, trainer: Trainer, batch: Any, out: StepOutput) -> None:
        grad = self.micro_batch_gradient()
        fgm = FGM(self.embedding, self.epsilon)  # type: ignore[arg-type]
        if grad is None or not fgm.attack(grad):
            self.skipped += 1
            return
        try:
            done = self._extra_pass(trainer, batch)
        finally:
            fgm.restore()
        self.attacks += done
        self.skipped += not done


class PGDCallback(_WeightAttack):
    """``steps`` projected ascent steps of size ``alpha`` within an L2 ball of radius ``epsilon``.

    The clean gradient is kept aside while the intermediate steps probe the loss, then the gradient of
    the last (most adversarial) pass is added to it.
    """

    def __init__(self, epsilon: float = 1.0, alpha: float = 0.3, steps: int = 3) -> None:
        super().__init__()
        PGDOptions(epsilon, alpha, steps).validate("pgd: ")
        self.epsilon, self.alpha, self.steps = float(epsilon), float(alpha), steps

    def after_backward(self, trainer: Trainer, batch: Any, out: StepOutput) -> None:
        grad = self.micro_batch_gradient()
        if grad is None:
            self.skipped += 1
            return
        params = [p for p in trainer.raw.parameters() if p.requires_grad]  # unfreezing may change them
        pgd = PGD(self.embedding, self.epsilon, self.alpha, self.steps, params)  # type: ignore[arg-type]
        pgd.backup_grad()
        completed = False
        try:
            for t in range(self.steps):
                if not pgd.attack(first=t == 0, grad=grad if t == 0 else None):
                    break
                if t < self.steps - 1:
                    for p in params:
                        p.grad = None
                else:
                    pgd.restore_grad()
                if not self._extra_pass(trainer, batch):
                    break
            else:
                completed = True
            if not completed:
                pgd.restore_grad()  # no usable direction or a non-finite loss: keep the clean gradient only
        finally:
            pgd.restore()
        self.attacks += completed
        self.skipped += not completed


class _OutputPerturbation(Callback):
    """Adds ``self.delta`` to the word embedding's output while the model trains and a delta is set.

    Perturbing outputs (not weights) works with frozen embeddings (adapters, LoRA) and touches only the
    tokens of the batch.
    """

    def __init__(self) -> None:
        self.delta: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None
        self._handle: Any = None
        self.embedding: nn.Embedding | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        if self._handle is not None:
            self._handle.remove()
        self.embedding = word_embedding(trainer.raw)
        self._handle = self.embedding.register_forward_hook(self._hook)

    def on_train_end(self, trainer: Trainer) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.delta = self.ids = None

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        self.ids = inputs[0]
        delta = self.on_embed(output) if module.training else None
        return output if delta is None else output + delta.to(output.dtype)

    def on_embed(self, output: torch.Tensor) -> torch.Tensor | None:
        """The delta to add to this forward's embedding output (None: none)."""
        return self.delta

    def state_dict(self) -> dict[str, torch.Tensor]:
        generator = getattr(self, "generator", None)
        return {} if generator is None else {"generator": generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"].to(torch.uint8).cpu())  # type: ignore[attr-defined]

    def token_mask(self) -> torch.Tensor:
        """1.0 at real tokens, 0.0 at padding (by the embedding's padding id), shaped (batch, seq, 1)."""
        assert self.ids is not None and self.embedding is not None
        pad = self.embedding.padding_idx
        mask = torch.ones_like(self.ids, dtype=torch.float32) if pad is None else (self.ids != pad).float()
        return mask.unsqueeze(-1)


def freelb_init(mask: torch.Tensor, hidden: int, init_mag: float, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """The starting delta: zero, or uniform in [-1, 1] at real tokens scaled by ``init_mag / sqrt(n * hidden)``.

    ``mask`` is (batch, seq, 1); ``n`` is each example's number of real tokens, so every example's
    initial perturbation has about the same size whatever its length.
    """
    shape = (*mask.shape[:2], hidden)
    if init_mag == 0:
        return torch.zeros(shape)
    delta = torch.rand(shape, generator=generator) * 2 - 1
    delta = delta * mask
    dims = mask.sum(dim=(1, 2)).clamp(min=1) * hidden
    return delta * (init_mag / dims.sqrt()).view(-1, 1, 1)


def freelb_ascent(delta: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, adv_lr: float, max_norm: float
                  ) -> torch.Tensor:
    """``delta + adv_lr * g / ||g||`` per example (padding masked), then shrunk into ``||delta|| <= max_norm``.

    Norms are Frobenius norms over each example's (seq, hidden) block; ``max_norm == 0`` means no bound.
    """
    grad = grad.float() * mask
    norm = grad.flatten(1).norm(dim=1).clamp(min=1e-8).view(-1, 1, 1)
    delta = (delta + adv_lr * grad / norm) * mask
    if max_norm > 0:
        size = delta.flatten(1).norm(dim=1).view(-1, 1, 1)
        delta = torch.where(size > max_norm, delta * (max_norm / size.clamp(min=1e-12)), delta)
    return delta


class FreeLBCallback(_OutputPerturbation):
    """FreeLB: ``adv_steps`` forward-backward passes on ``embeddings + delta``; the gradient is their mean.

    The clean pass of the training loop is the first step (its delta is the initial one, zero by
    default); each later step first moves delta up its normalized gradient. With gradient accumulation
    the earlier micro-batches' gradients are left as they are: only this micro-batch is averaged.
    """

    def __init__(self, adv_steps: int = 2, adv_lr: float = 0.1, init_mag: float = 0.0, max_norm: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__()
        FreeLBOptions(adv_steps, adv_lr, init_mag, max_norm, seed).validate("freelb: ")
        self.adv_steps, self.adv_lr, self.init_mag, self.max_norm = adv_steps, float(adv_lr), float(init_mag), \
            float(max_norm)
        self.generator = torch.Generator().manual_seed(seed)
        self._before: list[torch.Tensor | None] = []
        self._params: list[nn.Parameter] = []
        self._ascending = False  # inside after_backward's extra passes

    def on_embed(self, output: torch.Tensor) -> torch.Tensor | None:
        if not self._ascending:  # the loop's clean forward: start this micro-batch's delta
            mask = self.token_mask()
            delta = freelb_init(mask.cpu(), output.shape[-1], self.init_mag, self.generator).to(output.device)
            self.delta = delta.requires_grad_()
        return self.delta

    def extra_losses(self, trainer: Trainer, batch: Any, out: StepOutput) -> dict[str, torch.Tensor]:
        # Before the clean backward: remember the gradient so far, so this micro-batch's part can be averaged.
        # The trainable set is read each time: gradual unfreezing changes it during the run.
        self._params = [p for p in trainer.raw.parameters() if p.requires_grad]
        self._before = [None if p.grad is None else p.grad.detach().clone() for p in self._params]
        return {}

    def after_backward(self, trainer: Trainer, batch: Any, out: StepOutput) -> None:
        try:
            if self.adv_steps > 1 and self.delta is not None and self.delta.grad is not None:
                self._ascending = True
                self._scale_micro_batch(1.0 / self.adv_steps)
                mask = self.token_mask()
                for _ in range(self.adv_steps - 1):
                    delta = freelb_ascent(self.delta.detach(), self.delta.grad, mask, self.adv_lr, self.max_norm)
                    self.delta = delta.requires_grad_()
                    loss = trainer.total_loss(trainer.forward(batch))
                    if not torch.isfinite(loss):
                        break  # the passes so far stand; a non-finite loss is not backpropagated
                    trainer.backward(loss / self.adv_steps)
        finally:
            self.delta, self._before, self._ascending = None, [], False

    def _scale_micro_batch(self, factor: float) -> None:
        """grad = before + factor * (grad - before): scale only what this micro-batch contributed."""
        with torch.no_grad():
            for p, before in zip(self._params, self._before, strict=True):
                if p.grad is None:
                    continue
                if before is None:
                    p.grad.mul_(factor)
                else:
                    p.grad.sub_(before).mul_(factor).add_(before)


def prediction_divergence(kind: str, clean: torch.Tensor, perturbed: torch.Tensor, mask: torch.Tensor | None = None,
                          multi_label: bool = False) -> torch.Tensor:
    """How far the perturbed predictions moved from the clean ones, in the divergence of the task kind's
    head (see ``TaskKind.divergence``: symmetric KL of class distributions, Bernoulli KL for multi-label,
    MSE for regression, per real token for tagging, over positions for QA)."""
    return task_kind(kind).divergence(HeadOptions(multi_label=multi_label), clean, perturbed, mask)


def smart_ascent(noise: torch.Tensor, grad: torch.Tensor, step_size: float, epsilon: float) -> torch.Tensor:
    """One SMART step: ``noise + step_size * g / ||g||_inf`` per token, projected into ``|noise| <= epsilon``."""
    scale = grad.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
    return (noise + step_size * grad / scale).clamp(-epsilon, epsilon)


class SMARTCallback(_OutputPerturbation):
    """SMART's smoothness-inducing adversarial regularizer, returned as the loss "smart".

    Start from Gaussian noise (standard deviation ``noise_std``, clipped to the box) on the word-embedding
    outputs, take ``steps`` projected ascent steps of ``step_size`` on the divergence from the clean
    predictions inside the max-norm box of radius ``epsilon``, then add ``weight`` times the divergence
    between clean and perturbed predictions (see :func:`prediction_divergence`; gradients flow through
    both). The Bregman proximal-point part of SMART is not included.
    """

    def __init__(self, weight: float = 1.0, epsilon: float = 1e-5, step_size: float = 1e-3, noise_std: float = 1e-5,
                 steps: int = 1, seed: int = 0) -> None:
        super().__init__()
        SMARTOptions(weight, epsilon, step_size, noise_std, steps, seed).validate("smart: ")
        self.weight, self.epsilon, self.step_size = float(weight), float(epsilon), float(step_size)
        self.noise_std, self.steps = float(noise_std), steps
        self.generator = torch.Generator().manual_seed(seed)
        self.active = False

    def on_train_start(self, trainer: Trainer) -> None:
        super().on_train_start(trainer)
        if trainer.config.bf16 and self.epsilon < 1e-3:
            logger.warning("smart: epsilon %g is below what bf16 matmuls resolve on embeddings of this size; the "
                           "perturbed predictions may equal the clean ones (try epsilon 1e-3 or bf16: false)",
                           self.epsilon)

    def on_embed(self, output: torch.Tensor) -> torch.Tensor | None:
        return self.delta if self.active else None

    def extra_losses(self, trainer: Trainer, batch: Any, out: StepOutput) -> dict[str, torch.Tensor]:
        clean = _logits(out)
        if self.embedding is None:
            raise ConfigError("SMARTCallback: on_train_start was not called")
        if self.ids is None:
            raise ConfigError("smart perturbs the word-embedding output, but this forward did not run the "
                              "embedding (a frozen encoder's cached features?); use method full, adapter or lora")
        divergence = _divergence(trainer.raw, batch, clean)

        shape = (*self.ids.shape, self.embedding.embedding_dim)
        noise = (torch.randn(shape, generator=self.generator) * self.noise_std).clamp(-self.epsilon, self.epsilon)
        token_mask = self.token_mask()
        noise = noise.to(clean.device) * token_mask
        self.active = True
        try:
            for _ in range(self.steps):
                self.delta = noise.requires_grad_()
                probe = divergence(_logits(trainer.forward(batch)), clean.detach())
                (grad,) = torch.autograd.grad(probe, self.delta)
                if not torch.isfinite(grad).all():
                    break
                noise = smart_ascent(noise.detach(), grad, self.step_size, self.epsilon) * token_mask
            self.delta = noise.detach()
            perturbed = _logits(trainer.forward(batch))
        finally:
            self.active, self.delta = False, None
        self.ids = None  # so a later forward that skips the embedding cannot reuse these ids
        return {"smart": self.weight * divergence(perturbed, clean)}


def _divergence(model: nn.Module, batch: Any, logits: torch.Tensor
                ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """divergence(perturbed, reference) of this batch's head: its task kind's (TaskModel knows it); other
    models: by the logits' shape (one output: regression)."""
    model = getattr(model, "module", model)
    heads = getattr(model, "head_configs", None)
    head = None
    if heads:
        task = batch.get("task") if isinstance(batch, dict) else None
        head = heads[task or next(iter(heads))]
        kind = task_kind(head.kind)
    else:
        kind = task_kind("regression" if logits.shape[-1] == 1 else "classification")
    mask = batch.get("attention_mask") if isinstance(batch, dict) else None
    return lambda perturbed, reference: kind.divergence(head, reference, perturbed, mask)
