"""Fine-tuning regularizers: adversarial training on the word embeddings (FGM, PGD) and Mixout.

FGM / PGD (Miyato et al. 2017; Madry et al. 2018) perturb the *word-embedding weights* in the direction
of the loss gradient, so a second backward pass adds the gradient of an adversarial loss; this makes the
fine-tuned model robust to small input changes. Typical use::

    loss.backward(); fgm.attack(); model(batch).loss.backward(); fgm.restore(); optimizer.step()

Mixout (Lee et al. 2020) replaces each weight entry, with probability ``p``, by the pretrained value and
rescales so the expectation is the current weight. It is dropout that pulls towards the pretrained model
instead of towards zero, which stabilizes fine-tuning on small data sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FGM", "PGD", "MixoutLinear", "apply_mixout", "mixout"]


def _unit_gradient(param: nn.Parameter, grad: torch.Tensor | None = None) -> torch.Tensor | None:
    """``g / ||g||_2`` of ``grad`` (default ``param``'s gradient), or None when there is no usable direction.

    A zero, NaN or infinite norm gives no meaningful direction (and would poison the weights), so the
    caller skips the step instead.
    """
    grad = param.grad if grad is None else grad
    if grad is None:
        return None
    if grad.is_sparse:  # nn.Embedding(sparse=True)
        grad = grad.to_dense()
    norm = torch.linalg.vector_norm(grad.float())
    if not torch.isfinite(norm) or norm == 0:
        return None
    return (grad.float() / norm).to(param.dtype)


class FGM:
    """Fast gradient method: one L2 step of size ``epsilon`` on the word-embedding weights.

    ``attack()`` must follow the clean ``backward()`` (it reads the embedding's gradient); ``restore()``
    must come before ``optimizer.step()`` so the update is applied to the original weights.
    """

    def __init__(self, embedding: nn.Embedding, epsilon: float = 1.0) -> None:
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.embedding = embedding
        self.epsilon = float(epsilon)
        self.backup: torch.Tensor | None = None

    @property
    def weight(self) -> nn.Parameter:
        return self.embedding.weight

    def attack(self, grad: torch.Tensor | None = None) -> bool:
        """Add ``r = epsilon * g / ||g||_2``; return whether the weights were perturbed.

        ``g`` is ``grad`` when given (e.g. only the current micro-batch's part of an accumulated gradient),
        else the embedding's gradient. Skipped (returns False) when it is missing, zero or not finite. A
        second attack without ``restore()`` keeps the first backup, so ``restore()`` always returns the true
        original weights.
        """
        direction = _unit_gradient(self.weight, grad)
        if direction is None:
            return False
        with torch.no_grad():
            if self.backup is None:
                self.backup = self.weight.detach().clone()
            self.weight.add_(direction, alpha=self.epsilon)
        return True

    def restore(self) -> None:
        """Put the backed-up weights back exactly (a copy, not arithmetic, so no rounding error)."""
        if self.backup is not None:
            with torch.no_grad():
                self.weight.copy_(self.backup)
            self.backup = None


class PGD:
    """Projected gradient descent: ``steps`` L2 steps of size ``alpha``, projected onto the
    ``epsilon``-ball around the original embedding weights.

    ``params`` are the parameters whose gradients ``backup_grad()`` / ``restore_grad()`` save; pass
    ``model.parameters()`` because the loop zeroes all gradients between steps. Usage::

        loss.backward(); pgd.backup_grad()
        for t in range(pgd.steps):
            pgd.attack(first=(t == 0))
            if t != pgd.steps - 1: model.zero_grad()
            else: pgd.restore_grad()
            model(batch).loss.backward()
        pgd.restore(); optimizer.step()
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        epsilon: float = 1.0,
        alpha: float = 0.3,
        steps: int = 3,
        params: Iterable[nn.Parameter] | None = None,
    ) -> None:
        if epsilon < 0 or alpha < 0:
            raise ValueError(f"epsilon and alpha must be >= 0, got {epsilon}, {alpha}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.embedding = embedding
        self.epsilon = float(epsilon)
        self.alpha = float(alpha)
        self.steps = int(steps)
        self.params: list[nn.Parameter] = list(params) if params is not None else [embedding.weight]
        self.backup: torch.Tensor | None = None
        self.grad_backup: list[torch.Tensor | None] = []

    @property
    def weight(self) -> nn.Parameter:
        return self.embedding.weight

    def attack(self, first: bool = False, grad: torch.Tensor | None = None) -> bool:
        """One step ``r <- project(r + alpha * g / ||g||)``; ``first=True`` backs up the clean weights.

        ``g`` is ``grad`` when given, else the embedding's gradient. Returns whether a step was taken
        (skipped when the gradient is missing, zero or not finite).
        """
        if first:
            self.backup = self.weight.detach().clone()
        elif self.backup is None:
            raise RuntimeError("PGD.attack(first=True) must be called before later steps")
        direction = _unit_gradient(self.weight, grad)
        if direction is None:
            return False
        with torch.no_grad():
            self.weight.add_(direction, alpha=self.alpha)
            self.weight.copy_(self.project(self.weight))
        return True

    def project(self, weight: torch.Tensor) -> torch.Tensor:
        """Pull ``weight`` back onto the L2 ball of radius ``epsilon`` around the backed-up weights."""
        assert self.backup is not None
        r = weight - self.backup
        norm = torch.linalg.vector_norm(r.float())
        if norm > self.epsilon:
            r = r * (self.epsilon / norm)
        return self.backup + r

    def restore(self) -> None:
        """Put the clean weights back exactly."""
        if self.backup is not None:
            with torch.no_grad():
                self.weight.copy_(self.backup)
            self.backup = None

    def backup_grad(self) -> None:
        """Save the clean gradients, which the intermediate ``zero_grad()`` calls would otherwise lose."""
        self.grad_backup = [None if p.grad is None else p.grad.detach().clone() for p in self.params]

    def restore_grad(self) -> None:
        """Reinstate the saved clean gradients, so the last adversarial backward accumulates onto them."""
        if len(self.grad_backup) != len(self.params):
            raise RuntimeError("PGD.restore_grad() called without a matching backup_grad()")
        for p, g in zip(self.params, self.grad_backup, strict=True):
            p.grad = None if g is None else g.clone()


def mixout(
    weight: torch.Tensor,
    target: torch.Tensor,
    p: float,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``(M * u + (1 - M) * w - p * u) / (1 - p)`` with ``M ~ Bernoulli(p)`` (Lee et al. 2020, eq. 4).

    ``M`` marks entries taken from the target ``u``; the rescaling keeps ``E[result] = w``. Identity
    when not training or ``p == 0``.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"mixout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return weight
    mask = torch.bernoulli(torch.full_like(weight, p), generator=generator)
    return (mask * target + (1.0 - mask) * weight - p * target) / (1.0 - p)


class MixoutLinear(nn.Module):
    """An ``nn.Linear`` whose weight goes through :func:`mixout` towards ``target_weight`` in training.

    It reuses the linear's own ``weight`` / ``bias`` Parameter objects (so an existing optimizer keeps
    working and ``state_dict`` keys are unchanged); the target is a non-persistent buffer. The bias is
    left alone, as in the paper's implementation. In eval mode it is exactly the plain linear.
    """

    def __init__(self, linear: nn.Linear, target_weight: torch.Tensor | None = None, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"mixout probability must be in [0, 1), got {p}")
        target = linear.weight.detach().clone() if target_weight is None else target_weight.detach().clone()
        if target.shape != linear.weight.shape:
            raise ValueError(f"target weight shape {tuple(target.shape)} != {tuple(linear.weight.shape)}")
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.p = float(p)
        self.weight = linear.weight
        self.bias = linear.bias
        self.register_buffer("target", target.to(linear.weight), persistent=False)
        self.generator: torch.Generator | None = None  # set for reproducible masks (tests)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = mixout(self.weight, self.target, self.p, self.training, self.generator)
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, p={self.p}"


def apply_mixout(
    model: nn.Module,
    p: float,
    target_state: Mapping[str, torch.Tensor] | None = None,
    skip: str | re.Pattern[str] | None = None,
) -> int:
    """Replace every ``nn.Linear`` in ``model`` by a :class:`MixoutLinear`; return how many were replaced.

    The target of the Linear at ``name`` is ``target_state[f"{name}.weight"]`` (e.g. the pretrained
    ``state_dict``) or, by default, a copy of its current weight: call this right after loading the
    pretrained checkpoint. Linears whose qualified name matches ``skip`` (``re.search``), e.g. a freshly
    initialised task head that has no pretrained value, are left alone. A Linear shared at several names
    gets one wrapper; call before building the optimizer or not, the Parameters are the same.
    """
    pattern = re.compile(skip) if isinstance(skip, str) else skip
    if isinstance(model, nn.Linear):
        raise TypeError("apply_mixout replaces submodules; wrap a bare nn.Linear with MixoutLinear directly")
    wrapped: dict[int, MixoutLinear] = {}
    for name, module in list(model.named_modules(remove_duplicate=False)):
        if not isinstance(module, nn.Linear) or (pattern is not None and pattern.search(name)):
            continue
        if id(module) not in wrapped:
            target = None
            if target_state is not None:
                key = f"{name}.weight"
                if key not in target_state:
                    raise KeyError(f"target_state has no entry {key!r} for Linear {name!r}")
                target = target_state[key]
            wrapped[id(module)] = MixoutLinear(module, target, p)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, wrapped[id(module)])
    return len(wrapped)
