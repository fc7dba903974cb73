"""Typed dataclass configs from untyped mappings (JSON, YAML, the command line), with errors naming the field."""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from typing import Any, TypeVar

import yaml

from ..errors import ConfigError

T = TypeVar("T")


def check_type(name: str, value: Any, hint: Any, where: str = "") -> None:
    """Raise ConfigError unless `value` fits `hint` (int, float, str, bool, list, dict, or X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        hint = next(o for o in options if o is not type(None))
        origin = typing.get_origin(hint)
    expected = origin or hint
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(
            f"{where}field '{name}' must be {getattr(expected, '__name__', expected)}, "
            f"got {type(value).__name__} {value!r}"
        )


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float, as YAML 1.2 does (YAML 1.1 wants a dot and makes it a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse YAML safely (no Python objects), with YAML 1.2 exponent floats."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def check_fields(obj: Any, where: str = "") -> None:
    """Type-check every field of a dataclass instance."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        check_type(f.name, getattr(obj, f.name), hints[f.name], where)


def from_mapping(cls: type[T], data: Any, where: str = "", required: tuple[str, ...] = (),
                 unknown: str = "error", extra_field: str | None = None) -> T:
    """Build dataclass `cls` from `data` without running __init__ on wrong types.

    `unknown` is "error" (a typo should not be silently ignored) or "keep" (stored in `extra_field`).
    The caller validates values afterwards.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}expected a mapping of fields, got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{where}missing required field(s) {missing}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != extra_field}
    strays = {k: v for k, v in data.items() if k not in fields}
    if strays and unknown == "error":
        raise ConfigError(f"{where}unknown field(s) {sorted(strays)}; known fields: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    obj = cls.__new__(cls)
    for name, f in fields.items():
        if name in data:
            value = data[name]
            check_type(name, value, hints[name], where)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        else:
            value = f.default_factory()  # type: ignore[misc]
        setattr(obj, name, value)
    if extra_field is not None:
        setattr(obj, extra_field, strays)
    return obj


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=value` sets data["a"]["b"]; values are parsed as YAML (numbers, booleans, lists, null)."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.subkey=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
        node[parts[-1]] = load_yaml(raw)
    return data
