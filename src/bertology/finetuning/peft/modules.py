"""The wrappers: a LoRA update or a bottleneck adapter around a frozen Linear, and per-adapter LayerNorms."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...models.activations import ACTIVATIONS
from .config import PeftConfig


class LoRA(nn.Module):
    """A low-rank update of output rows [start, stop) of a Linear: scaling * B A dropout(x)."""

    def __init__(self, in_features: int, rows: tuple[int, int], rank: int, alpha: float, dropout: float,
                 like: torch.Tensor) -> None:
        super().__init__()
        self.start, self.stop = rows
        self.A = nn.Parameter(torch.empty(rank, in_features, device=like.device, dtype=like.dtype))
        self.B = nn.Parameter(torch.zeros(self.stop - self.start, rank, device=like.device, dtype=like.dtype))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # what nn.Linear uses; B = 0 makes the start a no-op
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(self.dropout(x), self.A), self.B) * self.scaling

    def delta(self) -> torch.Tensor:
        """The update as a (rows, in) weight matrix."""
        return (self.B @ self.A) * self.scaling

    def extra_repr(self) -> str:
        return f"rows=[{self.start}, {self.stop}), rank={self.A.shape[0]}, scaling={self.scaling:g}"


class Bottleneck(nn.Module):
    """h + up(act(down(h))); `up` starts at zero, so a fresh adapter is exactly the identity."""

    def __init__(self, width: int, size: int, activation: str, like: torch.Tensor) -> None:
        super().__init__()
        self.down = nn.Linear(width, size, device=like.device, dtype=like.dtype)
        self.up = nn.Linear(size, width, device=like.device, dtype=like.dtype)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.activation = activation

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(ACTIVATIONS[self.activation](self.down(h)))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class _NamedAdapters:
    """Bookkeeping shared by the wrappers: the adapters a module holds by name, and which are active."""

    active: tuple[str, ...]
    configs: dict[str, PeftConfig]

    def _forget(self, name: str) -> None:
        self.configs.pop(name, None)
        self.active = tuple(a for a in self.active if a != name)

    @property
    def empty(self) -> bool:
        return not self.configs


class PeftLinear(_NamedAdapters, nn.Module):
    """A frozen Linear with named LoRA updates (on its input side) and bottleneck adapters (on its output).

    Only the `active` adapters act; LoRA updates add up and bottlenecks apply in `active` order. A merged
    LoRA update lives in `base.weight` (its path is skipped) until unmerged.
    """

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.lora = nn.ModuleDict()  # adapter name -> ModuleDict(part name -> LoRA)
        self.bottleneck = nn.ModuleDict()  # adapter name -> Bottleneck
        self.active: tuple[str, ...] = ()
        self.merged: list[str] = []
        self.configs: dict[str, PeftConfig] = {}

    # code that reads a Linear's weight (initialisers, analyses) still finds it
    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def add_lora(self, name: str, parts: dict[str, tuple[int, int]], config: PeftConfig) -> int:
        self.lora[name] = nn.ModuleDict({
            part: LoRA(self.in_features, rows, config.rank, config.alpha, config.dropout, self.base.weight)
            for part, rows in parts.items()
        })
        self.configs[name] = config
        return sum(p.numel() for p in self.lora[name].parameters())

    def add_bottleneck(self, name: str, config: PeftConfig) -> int:
        self.bottleneck[name] = Bottleneck(self.out_features, config.bottleneck, config.activation, self.base.weight)
        self.configs[name] = config
        return sum(p.numel() for p in self.bottleneck[name].parameters())

    def adapter_modules(self, name: str) -> list[nn.Module]:
        return [d[name] for d in (self.lora, self.bottleneck) if name in d]

    def remove(self, name: str) -> None:
        if name in self.merged:
            self.unmerge(name)
        for d in (self.lora, self.bottleneck):
            if name in d:
                del d[name]
        self._forget(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        width = self.out_features
        for name in self.active:
            if name in self.lora and name not in self.merged:
                for piece in self.lora[name].values():
                    update = piece(x)
                    if piece.stop - piece.start != width:
                        update = F.pad(update, (piece.start, width - piece.stop))
                    y = y + update
        for name in self.active:
            if name in self.bottleneck:
                y = self.bottleneck[name](y)
        return y

    @torch.no_grad()
    def merge(self, name: str) -> None:
        """Fold LoRA `name` into the base weight (inference without the extra matmuls)."""
        if name not in self.lora:
            raise ConfigError(f"only LoRA updates can be merged; {name!r} is not one here")
        if name in self.merged:
            return
        for piece in self.lora[name].values():
            self.base.weight[piece.start:piece.stop] += piece.delta().to(self.base.weight.dtype)
        self.merged.append(name)

    @torch.no_grad()
    def unmerge(self, name: str) -> None:
        if name not in self.merged:
            return
        for piece in self.lora[name].values():
            self.base.weight[piece.start:piece.stop] -= piece.delta().to(self.base.weight.dtype)
        self.merged.remove(name)

    def extra_repr(self) -> str:
        return f"active={list(self.active)}, merged={self.merged}"


class PeftNorm(_NamedAdapters, nn.Module):
    """A frozen LayerNorm plus one trainable copy per adapter; the last active adapter with a copy uses it."""

    def __init__(self, base: nn.LayerNorm) -> None:
        super().__init__()
        self.base = base
        self.norms = nn.ModuleDict()
        self.active: tuple[str, ...] = ()
        self.configs: dict[str, PeftConfig] = {}

    @property
    def weight(self) -> torch.Tensor | None:
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def add_norm(self, name: str, config: PeftConfig) -> int:
        norm = copy.deepcopy(self.base)
        norm.requires_grad_(True)
        self.norms[name] = norm
        self.configs[name] = config
        return sum(p.numel() for p in norm.parameters())

    def adapter_modules(self, name: str) -> list[nn.Module]:
        return [self.norms[name]] if name in self.norms else []

    def remove(self, name: str) -> None:
        if name in self.norms:
            del self.norms[name]
        self._forget(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in reversed(self.active):
            if name in self.norms:
                return self.norms[name](x)
        return self.base(x)

    def extra_repr(self) -> str:
        return f"active={list(self.active)}"


WRAPPERS = (PeftLinear, PeftNorm)
