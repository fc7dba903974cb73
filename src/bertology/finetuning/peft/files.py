"""Saving and loading adapters: two files (safetensors weights and a JSON config), written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ...errors import CheckpointError, ConfigError
from ...utils.io import atomic_path, atomic_write
from .api import (
    _check_root,
    active_adapters,
    adapter_config,
    adapter_names,
    adapter_state_dict,
    add_adapter,
    delete_adapter,
    set_active_adapter,
    unmerge_adapter,
)
from .config import ADAPTER_CONFIG, ADAPTER_WEIGHTS, FORMAT, PeftConfig


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
