"""Adding, switching, freezing around, merging and deleting named adapters on any bertology model."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ...errors import ConfigError
from .config import DEFAULT_ALSO_TRAINABLE, FULL, FUSED_PARTS, PeftConfig
from .modules import WRAPPERS, PeftLinear, PeftNorm

logger = logging.getLogger("bertology")


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
