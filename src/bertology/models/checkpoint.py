"""Weights on disk in the Hugging Face layout, and the name maps between their tensors and ours.

Reading never unpickles arbitrary objects: safetensors first, and `pytorch_model.bin` only through
`torch.load(weights_only=True)`. Writing is atomic. Every failure names the file or tensor at fault.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError, one_line
from ..utils.io import atomic_path

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"


# ------------------------------------------------------------------------------------------ reading
def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read safetensors file ({exc}); is it truncated or corrupt?") from None


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError from a zip reader ...
        raise CheckpointError(
            f"{path}: cannot read as a weights-only PyTorch file ({type(exc).__name__}: {one_line(exc)}). "
            "Files holding arbitrary Python objects are refused; convert them to safetensors."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a mapping of tensor names to tensors")
    return state


def _read_index(path: Path) -> list[Path]:
    try:
        weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a valid shard index ({exc})") from None
    return [path.parent / name for name in sorted(set(weight_map.values()))]


def read_weights(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], Path]:
    """All tensors of a Hugging Face-format folder (or a single weights file), and where they came from."""
    folder = Path(folder)
    if folder.is_file():
        reader = _read_safetensors if folder.suffix == ".safetensors" else _read_torch
        return reader(folder), folder
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such folder")
    for single, index, reader in (
        (SAFE_WEIGHTS, SAFE_INDEX, _read_safetensors),
        (TORCH_WEIGHTS, TORCH_INDEX, _read_torch),
    ):
        if (folder / single).is_file():
            return reader(folder / single), folder / single
        if (folder / index).is_file():
            state: dict[str, torch.Tensor] = {}
            for shard in _read_index(folder / index):
                if not shard.is_file():
                    raise CheckpointError(f"{folder / index}: lists shard {shard.name}, which is missing")
                state.update(reader(shard))
            return state, folder / index
    raise CheckpointError(
        f"{folder}: no weights found (looked for {SAFE_WEIGHTS}, {SAFE_INDEX}, {TORCH_WEIGHTS}, {TORCH_INDEX})"
    )


def write_safetensors(state: dict[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write tensors atomically; shared or strided storage is copied out, as safetensors requires."""
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    return Path(path)


# ------------------------------------------------------------------------------------- name mapping
_PLACEHOLDERS = {"i": r"(?P<i>\d+)", "w": r"(?P<w>weight|bias)", "part": r"(?P<part>[A-Za-z_]+)",
                 "rest": r"(?P<rest>.+)"}


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for key, group in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape("{" + key + "}"), group)
    return re.compile(pattern + r"\Z")


@dataclass(frozen=True)
class Rule:
    """One tensor (or, with `parts`, several concatenated on dim 0) of theirs <-> one tensor of ours.

    Templates may hold `{i}` (a layer number) and `{w}` (weight or bias). With `parts`, `theirs` holds a
    `{part}` placeholder and our tensor is the parts concatenated in order (fused QKV).
    `load_only` rules read a duplicate their format stores (a tied copy) and are skipped on save.
    """

    theirs: str
    ours: str
    parts: tuple[str, ...] = ()
    load_only: bool = False


class NameMap:
    """Translate a state dict between a family's Hugging Face names and our module names."""

    def __init__(self, rules: Iterable[Rule], legacy: dict[str, str] | None = None) -> None:
        self.rules = list(rules)
        self.legacy = legacy or {}
        self._theirs = [(_compile(r.theirs), r) for r in self.rules]
        self._ours = [(_compile(r.ours), r) for r in self.rules if not r.load_only]

    def _legacy_name(self, name: str) -> str:
        for old, new in self.legacy.items():
            if name.endswith(old):
                return name[: -len(old)] + new
        return name

    def to_ours(self, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str], dict[str, str]]:
        """Returns (our state, their names we could not place, our name -> their name for messages)."""
        ours: dict[str, torch.Tensor] = {}
        origin: dict[str, str] = {}
        unplaced: list[str] = []
        pending: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}
        for name, tensor in state.items():
            key = self._legacy_name(name)
            for pattern, rule in self._theirs:
                match = pattern.match(key)
                if match is None:
                    continue
                fields = {k: v for k, v in match.groupdict().items() if k != "part"}
                target = rule.ours.format(**fields)
                if rule.parts:
                    part = match.group("part")
                    if part not in rule.parts:
                        continue
                    pending.setdefault(target, {})[part] = (name, tensor)
                elif not (rule.load_only and target in ours):
                    ours[target] = tensor
                    origin[target] = name
                break
            else:
                unplaced.append(name)
        for target, found in pending.items():
            rule = next(r for p, r in self._ours if p.match(target))
            absent = [p for p in rule.parts if p not in found]
            if absent:
                names = ", ".join(n for n, _ in found.values())
                raise CheckpointError(f"tensors {names} are present but their siblings {absent} are missing")
            ours[target] = torch.cat([found[p][1] for p in rule.parts], dim=0)
            origin[target] = "+".join(found[p][0] for p in rule.parts)
        return ours, unplaced, origin

    def to_theirs(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        theirs: dict[str, torch.Tensor] = {}
        for name, tensor in state.items():
            for pattern, rule in self._ours:
                match = pattern.match(name)
                if match is None:
                    continue
                fields = match.groupdict()
                if rule.parts:
                    for part, piece in zip(rule.parts, tensor.chunk(len(rule.parts), dim=0), strict=True):
                        theirs[rule.theirs.format(part=part, **fields)] = piece
                else:
                    theirs[rule.theirs.format(**fields)] = tensor
                break
            else:
                raise CheckpointError(f"no Hugging Face name is known for our tensor '{name}'")
        return theirs

    def knows(self, ours: str) -> bool:
        """Whether our tensor `ours` has a name of its own in their format (a tied copy has not)."""
        return any(pattern.match(ours) for pattern, _ in self._ours)

    def with_prefix(self, theirs: str, ours: str) -> NameMap:
        """The same rules under a module prefix on each side ("bert." for the encoder inside a head model)."""
        rules = [Rule(theirs + r.theirs, ours + r.ours, r.parts, r.load_only) for r in self.rules]
        return NameMap(rules, self.legacy)

    def __add__(self, other: NameMap) -> NameMap:
        return NameMap(self.rules + other.rules, {**self.legacy, **other.legacy})
