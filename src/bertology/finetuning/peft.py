"""Parameter-efficient fine-tuning: bottleneck adapters (Houlsby et al. 2019) and LoRA (Hu et al. 2021).

The encoder stays frozen and each task trains (and saves) only a few small tensors, so one encoder can
carry several named task adapters and switch between them. Nothing here knows a model family: targets are
`nn.Linear` (and `nn.LayerNorm`) modules picked by name pattern and wrapped in place, so BERT, RoBERTa,
ALBERT (a layer shared across depth is wrapped once) and the task-head models all work unchanged.

* LoRA adds ``(alpha / r) * B A x`` to a frozen ``W x`` (A: r x in, random; B: out x r, zeros, so a fresh
  LoRA changes nothing). Our attention fuses q, k and v into one Linear, so a target may name one part of
  it ("attention.q") and then only those output rows get an update of their own, as in the paper, which
  adapts Wq and Wv (our default).
* A bottleneck adapter turns a sublayer's output projection ``h`` into ``h + up(act(down(h)))`` before
  dropout, the residual and the LayerNorm (the paper's placement); ``up`` starts at zero so a fresh adapter
  is the identity. As in the paper, each adapter also gets its own trainable copy of the layer norms.

Saved adapters are two files: ``adapter_model.safetensors`` (only the adapter tensors, plus any extra
tensors such as a task head) and ``adapter_config.json``; nothing is pickled.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..models.activations import ACTIVATIONS
from ..utils.io import atomic_path, atomic_write

logger = logging.getLogger("bertology")

__all__ = [
    "ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "Bottleneck", "LoRA", "LoadedAdapter", "PeftConfig", "PeftLinear",
    "PeftNorm", "active_adapters", "adapter_config", "adapter_names", "adapter_state_dict", "add_adapter",
    "delete_adapter", "freeze_except_adapters", "load_adapter", "merge_adapter", "merge_and_unload",
    "save_adapter", "set_active_adapter", "unmerge_adapter",
]

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
FORMAT = "bertology-adapter"
KINDS = ("lora", "adapter")
#: fused projections and the equal blocks of their output, which LoRA targets may name one by one
FUSED_PARTS: dict[str, tuple[str, ...]] = {"qkv": ("q", "k", "v")}
#: LoRA: Wq and Wv (the paper's GLUE setting); adapters: after attention and after the feed-forward block
DEFAULT_TARGETS = {"lora": ("attention.q", "attention.v"), "adapter": ("attention.out", "ffn.down")}
DEFAULT_NORMS: dict[str, tuple[str, ...]] = {"lora": (), "adapter": ("attention_norm", "ffn_norm")}
#: parameters left trainable by `freeze_except_adapters`: task heads of the head models and of TaskModel
DEFAULT_ALSO_TRAINABLE = ("classifier", "qa_outputs", "heads")
FULL = "full"  # the part name of a LoRA update covering every output row


@dataclass
class PeftConfig:
    """One adapter's shape. `targets` / `norms` are regular expressions matched against whole trailing name
    components ("attention.out" matches "bert.encoder.layers.3.attention.out"); None means the kind's default."""

    kind: str = "lora"
    #: LoRA rank r and scaling numerator alpha (the update is scaled by alpha / r)
    rank: int = 8
    alpha: float = 16.0
    #: dropout on the input of the LoRA path
    dropout: float = 0.0
    #: bottleneck adapters: inner width and nonlinearity
    bottleneck: int = 64
    activation: str = "gelu"
    targets: tuple[str, ...] | None = None
    #: LayerNorms that get a per-adapter trainable copy (default: the encoder's two per layer for adapters)
    norms: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"peft field 'kind' must be one of {list(KINDS)}, got {self.kind!r}")
        for name in ("rank", "bottleneck"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"peft field '{name}' must be a positive integer, got {value!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ConfigError(f"peft field 'alpha' must be a positive number, got {self.alpha!r}")
        self.alpha = float(self.alpha)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"peft field 'dropout' must lie in [0, 1), got {self.dropout!r}")
        self.dropout = float(self.dropout)
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"peft field 'activation' must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.targets is None:
            self.targets = DEFAULT_TARGETS[self.kind]
        if self.norms is None:
            self.norms = DEFAULT_NORMS[self.kind]
        self.targets = self._patterns("targets", self.targets)
        self.norms = self._patterns("norms", self.norms)
        if not self.targets:
            raise ConfigError("peft field 'targets' needs at least one module name pattern")

    @staticmethod
    def _patterns(field_name: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"peft field '{field_name}' must be a list of non-empty name patterns, got {value!r}")
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"peft field '{field_name}': {pattern!r} is not a regular expression "
                                  f"({exc})") from None
        return tuple(value)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"], data["norms"] = list(self.targets), list(self.norms)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> PeftConfig:
        """From JSON/YAML; an unknown field is an error (a typo must not silently fall back to a default)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}peft options must be a mapping of fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}unknown peft field(s) {unknown}; known fields: {sorted(known)}")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None


# ------------------------------------------------------------------------------------------ modules
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


class PeftLinear(nn.Module):
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
        self.configs.pop(name, None)
        self.active = tuple(a for a in self.active if a != name)

    @property
    def empty(self) -> bool:
        return not self.configs

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


class PeftNorm(nn.Module):
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
        self.configs.pop(name, None)
        self.active = tuple(a for a in self.active if a != name)

    @property
    def empty(self) -> bool:
        return not self.configs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in reversed(self.active):
            if name in self.norms:
                return self.norms[name](x)
        return self.base(x)

    def extra_repr(self) -> str:
        return f"active={list(self.active)}"


WRAPPERS = (PeftLinear, PeftNorm)


# --------------------------------------------------------------------------------- finding modules
def _walk(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Every (name, submodule), a shared module once per path to it, not descending into our wrappers."""
    for child_name, child in module.named_children():
        name = prefix + child_name
        yield name, child
        if not isinstance(child, WRAPPERS):
            yield from _walk(child, name + ".")


def _slots(model: nn.Module, types: tuple[type, ...]) -> list[tuple[nn.Module, list[str]]]:
    """Distinct modules of `types` with all their names (the first is the canonical one used in files)."""
    found: dict[int, tuple[nn.Module, list[str]]] = {}
    for name, module in _walk(model):
        if isinstance(module, types):
            found.setdefault(id(module), (module, []))[1].append(name)
    return list(found.values())


def _wrappers(model: nn.Module) -> list[tuple[PeftLinear | PeftNorm, str]]:
    return [(m, names[0]) for m, names in _slots(model, WRAPPERS)]  # type: ignore[misc]


def _matches(pattern: str, name: str) -> bool:
    return re.search(rf"(?:^|\.)(?:{pattern})$", name) is not None


def _part_name(name: str, part: str) -> str:
    return name.rpartition(".")[0] + "." + part if "." in name else part


def _fused_parts(module: nn.Module, name: str) -> dict[str, tuple[int, int]]:
    """Part name -> output rows, for a fused projection (its last name component is in FUSED_PARTS)."""
    parts = FUSED_PARTS.get(name.rpartition(".")[2])
    out = module.out_features
    if not parts or out % len(parts):
        return {}
    step = out // len(parts)
    return {part: (i * step, (i + 1) * step) for i, part in enumerate(parts)}


def _collapse(names: Sequence[str]) -> list[str]:
    """Names with layer indices as '*', deduplicated, for error messages that stay short."""
    return sorted({re.sub(r"(?<=\.)\d+(?=\.)", "*", n) for n in names})


def _check_root(model: nn.Module) -> None:
    if not isinstance(model, nn.Module) or isinstance(model, (nn.Linear, nn.LayerNorm, *WRAPPERS)):
        raise TypeError("adapters are added to a model's submodules; pass the model, not a single layer")


def _check_name(model: nn.Module, name: str) -> None:
    if name not in adapter_names(model):
        raise ConfigError(f"no adapter named {name!r}; this model has {adapter_names(model)}")


# ---------------------------------------------------------------------------------------- public API
def adapter_names(model: nn.Module) -> list[str]:
    """Names of the adapters on `model`, in the order they were added."""
    names: dict[str, None] = {}
    for wrapper, _ in _wrappers(model):
        names.update(dict.fromkeys(wrapper.configs))
    return list(names)


def adapter_config(model: nn.Module, name: str) -> PeftConfig:
    for wrapper, _ in _wrappers(model):
        if name in wrapper.configs:
            return wrapper.configs[name]
    raise ConfigError(f"no adapter named {name!r}; this model has {adapter_names(model)}")


def active_adapters(model: nn.Module) -> tuple[str, ...]:
    wrappers = _wrappers(model)
    return wrappers[0][0].active if wrappers else ()


def add_adapter(model: nn.Module, name: str, config: PeftConfig | None = None) -> int:
    """Wrap the targets of `config` (once each, even when shared across layers) and add adapter `name`;
    it becomes the active adapter. Returns the number of new parameters. Nothing changes on an error."""
    _check_root(model)
    config = config or PeftConfig()
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ConfigError(f"adapter name must be letters, digits, '_' or '-', got {name!r}")
    if name in adapter_names(model):
        raise ConfigError(f"the model already has an adapter named {name!r}; delete it first or pick another name")
    # plan first, so that a pattern matching nothing leaves the model untouched
    linear_plan: list[tuple[nn.Module, list[str], dict[str, tuple[int, int]]]] = []
    used: set[str] = set()
    available: list[str] = []
    for module, names in _slots(model, (nn.Linear, PeftLinear)):
        available += names
        whole = [p for p in config.targets if any(_matches(p, n) for n in names)]
        used.update(whole)
        if whole:
            linear_plan.append((module, names, {FULL: (0, module.out_features)}))
            continue
        if config.kind != "lora":
            continue
        parts: dict[str, tuple[int, int]] = {}
        for part, rows in _fused_parts(module, names[0]).items():
            virtual = [_part_name(n, part) for n in names]
            available += virtual
            hits = [p for p in config.targets if any(_matches(p, v) for v in virtual)]
            if hits:
                used.update(hits)
                parts[part] = rows
        if parts:
            linear_plan.append((module, names, parts))
    missing = [p for p in config.targets if p not in used]
    if missing:
        raise ConfigError(f"peft field 'targets': {missing} match no Linear module; available: {_collapse(available)}")
    norm_plan = []
    norm_names: list[str] = []
    used = set()
    for module, names in _slots(model, (nn.LayerNorm, PeftNorm)):
        norm_names += names
        hits = [p for p in config.norms if any(_matches(p, n) for n in names)]
        used.update(hits)
        if hits:
            norm_plan.append((module, names))
    missing = [p for p in config.norms if p not in used]
    if missing:
        raise ConfigError(f"peft field 'norms': {missing} match no LayerNorm; available: {_collapse(norm_names)}")

    count = 0
    for module, names, parts in linear_plan:
        wrapper = module if isinstance(module, PeftLinear) else _replace(model, names, PeftLinear(module))
        if config.kind == "lora":
            count += wrapper.add_lora(name, parts, config)
        else:
            count += wrapper.add_bottleneck(name, config)
    for module, names in norm_plan:
        wrapper = module if isinstance(module, PeftNorm) else _replace(model, names, PeftNorm(module))
        count += wrapper.add_norm(name, config)
    set_active_adapter(model, name)
    logger.info("adapter %r (%s): %d parameters on %d modules", name, config.kind, count,
                len(linear_plan) + len(norm_plan))
    return count


def _replace(model: nn.Module, names: list[str], new: nn.Module) -> nn.Module:
    for full in names:
        parent_name, _, child = full.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return new


def delete_adapter(model: nn.Module, name: str) -> None:
    """Remove adapter `name` (unmerging it first); wrappers left with no adapter give back the plain module."""
    _check_name(model, name)
    for wrapper, _ in _wrappers(model):
        wrapper.remove(name)
    _unwrap_empty(model)


def _unwrap_empty(model: nn.Module) -> None:
    for wrapper, names in _slots(model, WRAPPERS):
        if wrapper.empty:
            _replace(model, names, wrapper.base)


def set_active_adapter(model: nn.Module, name: str | Sequence[str] | None) -> None:
    """Which adapter(s) act: one name, several (LoRA updates add up, bottlenecks stack in this order), or
    None for the bare encoder. A merged LoRA that stops being active is unmerged first."""
    names = () if name is None else (name,) if isinstance(name, str) else tuple(name)
    known = adapter_names(model)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"no adapter named {unknown}; this model has {known}")
    for wrapper, _ in _wrappers(model):
        if isinstance(wrapper, PeftLinear):
            for merged in list(wrapper.merged):
                if merged not in names:
                    wrapper.unmerge(merged)
        wrapper.active = names


def _adapter_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for wrapper, _ in _wrappers(model):
        for module in wrapper.adapter_modules(name):
            for p in module.parameters():
                seen.setdefault(id(p), p)
    return list(seen.values())


def _component_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?:^|\.)(?:{pattern})(?:\.|$)")


def freeze_except_adapters(model: nn.Module, name: str,
                           also_trainable: Sequence[str] = DEFAULT_ALSO_TRAINABLE) -> dict[str, int]:
    """Freeze everything but adapter `name` and the parameters under modules matching `also_trainable`
    (whole name components, e.g. "classifier"; a parameter tied to a frozen one keeps the first name).
    Activates `name`. Returns parameter counts: {"adapter", "other_trainable", "frozen"}."""
    _check_name(model, name)
    patterns = [_component_pattern(p) for p in also_trainable]
    model.requires_grad_(False)
    adapter = _adapter_parameters(model, name)
    for p in adapter:
        p.requires_grad_(True)
    adapter_ids = {id(p) for p in adapter}
    other = 0
    for pname, p in model.named_parameters():
        if id(p) not in adapter_ids and any(rx.search(pname) for rx in patterns):
            p.requires_grad_(True)
            other += p.numel()
    total = sum(p.numel() for p in model.parameters())
    counts = {"adapter": sum(p.numel() for p in adapter), "other_trainable": other}
    counts["frozen"] = total - counts["adapter"] - other
    set_active_adapter(model, name)
    logger.info("training adapter %r: %d adapter + %d other parameters, %d frozen (%.2f%% trainable)", name,
                counts["adapter"], other, counts["frozen"], 100.0 * (total - counts["frozen"]) / max(total, 1))
    return counts


def adapter_state_dict(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Adapter `name`'s tensors under names that do not depend on other adapters: the wrapped module's
    name (a fused part by its own name, "...attention.q") + lora_A / lora_B / adapter_down.* / adapter_up.*,
    and a LayerNorm copy as "<norm>.weight" / "<norm>.bias"."""
    _check_name(model, name)
    state: dict[str, torch.Tensor] = {}
    for wrapper, slot in _wrappers(model):
        if isinstance(wrapper, PeftNorm):
            if name in wrapper.norms:
                state.update({f"{slot}.{k}": v for k, v in wrapper.norms[name].state_dict().items()})
            continue
        if name in wrapper.lora:
            for part, piece in wrapper.lora[name].items():
                where = slot if part == FULL else _part_name(slot, part)
                state[f"{where}.lora_A"] = piece.A.detach()
                state[f"{where}.lora_B"] = piece.B.detach()
        if name in wrapper.bottleneck:
            block = wrapper.bottleneck[name]
            for sub in ("down", "up"):
                state.update({f"{slot}.adapter_{sub}.{k}": v for k, v in getattr(block, sub).state_dict().items()})
    return state


def merge_adapter(model: nn.Module, name: str) -> None:
    """Fold active LoRA `name` into the base weights (same outputs, no extra matmuls)."""
    _check_name(model, name)
    if adapter_config(model, name).kind != "lora":
        raise ConfigError(f"adapter {name!r} is a bottleneck adapter (nonlinear); only LoRA can be merged")
    if name not in active_adapters(model):
        raise ConfigError(f"adapter {name!r} is not active; activate it before merging")
    for wrapper, _ in _wrappers(model):
        if isinstance(wrapper, PeftLinear) and name in wrapper.lora:
            wrapper.merge(name)


def unmerge_adapter(model: nn.Module, name: str) -> None:
    _check_name(model, name)
    for wrapper, _ in _wrappers(model):
        if isinstance(wrapper, PeftLinear):
            wrapper.unmerge(name)


def merge_and_unload(model: nn.Module, name: str | None = None) -> nn.Module:
    """Fold LoRA `name` (if given) into the base weights for good and remove every adapter: the model is a
    plain one again (its state_dict keys and save_pretrained as before), ready to export."""
    if name is not None:
        set_active_adapter(model, name)
        merge_adapter(model, name)
    for wrapper, _ in _wrappers(model):
        if isinstance(wrapper, PeftLinear):
            wrapper.merged.clear()  # keep the folded weights: removal below must not unmerge them
        for adapter in list(wrapper.configs):
            wrapper.remove(adapter)
    _unwrap_empty(model)
    return model


# -------------------------------------------------------------------------------------- saving
def _base_description(model: nn.Module) -> dict[str, Any]:
    """The encoder shape an adapter was trained on, to name the field when loading onto another."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "hidden_size"):
            return {k: getattr(config, k) for k in ("model_type", "hidden_size", "num_hidden_layers")
                    if hasattr(config, k)}
    return {}


def save_adapter(model: nn.Module, name: str, folder: str | os.PathLike,
                 extra: dict[str, torch.Tensor] | None = None) -> Path:
    """Write adapter `name` (and `extra` tensors, e.g. a task head's) to `folder`: the weights first, then the
    config, each atomically, so a folder with a config always has its weights."""
    folder = Path(folder)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in adapter_state_dict(model, name).items()}
    extra = dict(extra or {})
    for key, tensor in extra.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"extra tensor {key!r} must be a torch.Tensor, got {type(tensor).__name__}")
        state[f"extra.{key}"] = tensor.detach().cpu().clone().contiguous()
    config = adapter_config(model, name)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / ADAPTER_WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    description = {"format": FORMAT, "version": 1, "name": name, "peft": config.to_dict(),
                   "base": _base_description(model), "extra": sorted(extra)}
    with atomic_write(folder / ADAPTER_CONFIG) as handle:
        json.dump(description, handle, indent=2)
    return folder


class LoadedAdapter(NamedTuple):
    name: str
    #: the `extra` tensors saved with the adapter (e.g. a task head), by their own names
    extra: dict[str, torch.Tensor]


def _read_description(folder: Path) -> dict[str, Any]:
    path = folder / ADAPTER_CONFIG
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {ADAPTER_CONFIG}; is this a saved adapter folder?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an adapter config (expected \"format\": \"{FORMAT}\")")
    for key in ("name", "peft"):
        if key not in data:
            raise CheckpointError(f"{path}: missing field '{key}'")
    return data


def _reroot(saved: set[str], expected: set[str]) -> dict[str, str] | None:
    """Map saved names onto expected ones that differ by a leading path (an adapter trained on the bare
    encoder, loaded into a head model: "encoder.layers..." -> "bert.encoder.layers...")."""
    if saved == expected:
        return {k: k for k in saved}
    if not saved or len(saved) != len(expected):
        return None
    first = min(saved).split(".")
    candidates = []
    for target in expected:
        parts = target.split(".")
        common = 0
        while common < min(len(parts), len(first)) and parts[-1 - common] == first[-1 - common]:
            common += 1
        if common:
            candidates.append((common, ".".join(first[:len(first) - common]), ".".join(parts[:len(parts) - common])))
    for _, old, new in sorted(candidates, reverse=True):
        old_prefix, new_prefix = (old + "." if old else ""), (new + "." if new else "")
        if all(k.startswith(old_prefix) for k in saved):
            mapping = {k: new_prefix + k[len(old_prefix):] for k in saved}
            if set(mapping.values()) == expected:
                return mapping
    return None


def load_adapter(model: nn.Module, folder: str | os.PathLike, name: str | None = None) -> LoadedAdapter:
    """Add the saved adapter (under `name`, default its saved name) unless the model has it, load its
    tensors and activate it. Wrong names or shapes raise CheckpointError and leave the model as it was."""
    _check_root(model)
    folder = Path(folder)
    data = _read_description(folder)
    config_path = folder / ADAPTER_CONFIG
    try:
        config = PeftConfig.from_dict(data["peft"], where=f"{config_path}: ")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    name = name or data["name"]
    base = _base_description(model)
    for key, saved in (data.get("base") or {}).items():
        if key in base and base[key] != saved:
            raise CheckpointError(f"{config_path}: the adapter was trained on {key}={saved!r}, this model has "
                                  f"{key}={base[key]!r}")
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {ADAPTER_WEIGHTS}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: unreadable ({exc})") from None
    extra_names = list(data.get("extra") or [])
    extra = {}
    for key in extra_names:
        if f"extra.{key}" not in state:
            raise CheckpointError(f"{weights}: missing extra tensor {key!r} listed in {ADAPTER_CONFIG}")
        extra[key] = state.pop(f"extra.{key}")

    added = name not in adapter_names(model)
    previously_active = active_adapters(model)
    if added:
        try:
            add_adapter(model, name, config)
        except ConfigError as exc:
            raise CheckpointError(f"{folder}: the saved adapter does not fit this model: {exc}") from None
    elif adapter_config(model, name) != config:
        raise CheckpointError(f"{config_path}: the model already has an adapter {name!r} with another config "
                              f"({adapter_config(model, name)}, file has {config})")
    try:
        _copy_into(model, name, state, weights)
    except CheckpointError:
        if added:
            delete_adapter(model, name)
            set_active_adapter(model, previously_active)
        raise
    set_active_adapter(model, name)
    return LoadedAdapter(name, extra)


def _copy_into(model: nn.Module, name: str, state: dict[str, torch.Tensor], source: Path) -> None:
    unmerge_adapter(model, name)
    target = adapter_state_dict(model, name)
    mapping = _reroot(set(state), set(target))
    if mapping is None:
        missing = sorted(set(target) - set(state))
        unexpected = sorted(set(state) - set(target))
        raise CheckpointError(f"{source}: tensors do not fit this model; missing {missing[:6]}"
                              f"{' ...' if len(missing) > 6 else ''}, unexpected {unexpected[:6]}"
                              f"{' ...' if len(unexpected) > 6 else ''}")
    for key, tensor in state.items():
        if tensor.shape != target[mapping[key]].shape:
            raise CheckpointError(f"{source}: tensor {key!r} has shape {tuple(tensor.shape)}, the model expects "
                                  f"{tuple(target[mapping[key]].shape)}")
    with torch.no_grad():
        for key, tensor in state.items():
            target[mapping[key]].copy_(tensor)
