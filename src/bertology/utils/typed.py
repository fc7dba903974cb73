"""The one config language: typed dataclasses built from untyped mappings (YAML, JSON, the command line).

Every section of every config file is a dataclass; `parse` builds it field by field, recursing into nested
dataclasses, `dict[str, Section]` and `list[Section]` fields, and calls the section's `validate(where)` for
value checks. Errors name the file and the key path (`run.yaml: tasks.sentiment.head: field 'pooling' ...`)
and suggest the nearest known key or choice ("did you mean 'mean'?"), so a typo never passes silently and
never ends in a Python traceback.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from ..errors import ConfigError

T = TypeVar("T")


class Where(str):
    """Where a value sits: the file and the key path. Renders as the message prefix `"file: a.b: "`, so
    `f"{where}field 'x' must ..."` names both; `child(key)` goes one level down."""

    file: str
    path: tuple[str, ...]

    def __new__(cls, file: str = "", path: Iterable[str] = ()) -> Where:
        path = tuple(str(p) for p in path)
        text = ": ".join(p for p in (file, ".".join(path)) if p)
        obj = super().__new__(cls, f"{text}: " if text else "")
        obj.file, obj.path = file, path
        return obj

    def child(self, key: Any) -> Where:
        return Where(self.file, (*self.path, str(key)))

    def key(self, name: str) -> str:
        """The full key path of field `name` (for messages that name one key)."""
        return ".".join((*self.path, name))


def as_where(where: str | Where) -> Where:
    """Accept the older plain-string prefixes ("file: ") as a Where with no key path."""
    if isinstance(where, Where):
        return where
    return Where(where.rstrip().rstrip(":"))


def suggest(word: str, options: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest option, or nothing."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_fields(where: str, strays: list[Any], known: list[str]) -> ConfigError:
    """The error for misspelt keys: each named, the nearest known key suggested, the known keys listed."""
    strays = sorted(strays, key=str)
    names = ", ".join(f"'{k}'" for k in strays)
    hint = "".join(suggest(k, known) for k in strays[:1])
    return ConfigError(f"{where}unknown field{'s' if len(strays) > 1 else ''} {names}{hint} "
                       f"(known fields: {', '.join(known)})")


def check_choice(where: str, name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ConfigError with a suggestion unless `value` is one of `allowed`."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{where}field '{name}' must be one of {allowed}, got {value!r}"
                          f"{suggest(value, allowed) if isinstance(value, str) else ''}")


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(origin or hint, "__name__", str(hint))


def check_type(name: str, value: Any, hint: Any, where: str = "") -> None:
    """Raise ConfigError unless `value` fits `hint` (int, float, str, bool, list, dict, Literal, X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        hint = next(o for o in options if o is not type(None))
        origin = typing.get_origin(hint)
    if hint is Any:
        return
    if origin is Literal:
        check_choice(where, name, value, typing.get_args(hint))
        return
    expected = origin or hint
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif dataclasses.is_dataclass(expected):
        ok = isinstance(value, (dict, expected))
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(f"{where}field '{name}' must be {_type_name(expected)}, got {type(value).__name__} {value!r}")


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


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(hint) if o is not type(None)]
        if len(options) == 1:
            return options[0]
    return hint


def _parse_value(name: str, value: Any, hint: Any, where: Where, base: Path | None, is_path: bool) -> Any:
    """One field's value: nested sections are parsed, paths resolved against `base`, the rest type-checked."""
    inner = _strip_optional(hint)
    origin = typing.get_origin(inner)
    if value is None:
        check_type(name, value, hint, where)
        return None
    if dataclasses.is_dataclass(inner) and isinstance(inner, type):
        if isinstance(value, inner):
            return value
        return parse(inner, value, where.child(name), base=base)
    args = typing.get_args(inner)
    if origin is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        check_type(name, value, dict, where)
        return {k: parse(args[1], v, where.child(name).child(k), base=base) for k, v in value.items()}
    if origin is list and len(args) == 1 and dataclasses.is_dataclass(args[0]):
        check_type(name, value, list, where)
        return [parse(args[0], v, where.child(name).child(i), base=base) for i, v in enumerate(value)]
    check_type(name, value, hint, where)
    if is_path and base is not None and isinstance(value, str) and value and not Path(value).is_absolute():
        return str(base / value)
    return value


def parse(cls: type[T], data: Any, where: str | Where = "", base: str | Path | None = None,
          required: tuple[str, ...] = (), unknown: str = "error", extra_field: str | None = None) -> T:
    """Build dataclass `cls` from `data` (recursively), then run its `validate(where)` if it has one.

    Fields whose metadata has `path=True` are file paths: a relative one is joined to `base` (the config
    file's folder) so that paths in a file mean the same from any working directory. `unknown` is "error"
    (a typo names the key and the nearest known one) or "keep" (stored in `extra_field`).
    """
    where = as_where(where)
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}expected a mapping of fields, got {type(data).__name__} {data!r}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{where}missing required field(s) {missing}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != extra_field and f.init}  # type: ignore[arg-type]
    strays = {k: v for k, v in data.items() if k not in fields}
    if strays and unknown == "error":
        raise unknown_fields(where, list(strays), list(fields))
    hints = typing.get_type_hints(cls)
    base_path = Path(base) if base is not None else None
    obj = cls.__new__(cls)
    for name, f in fields.items():
        if name in data:
            value = _parse_value(name, data[name], hints[name], where, base_path, bool(f.metadata.get("path")))
        elif f.default is not dataclasses.MISSING:
            value = copy.copy(f.default)
        else:
            value = f.default_factory()  # type: ignore[misc]
        setattr(obj, name, value)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init and f.name != extra_field:
            setattr(obj, f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
    if extra_field is not None:
        setattr(obj, extra_field, strays)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where)
    return obj


def from_mapping(cls: type[T], data: Any, where: str = "", required: tuple[str, ...] = (),
                 unknown: str = "error", extra_field: str | None = None) -> T:
    """Build dataclass `cls` from `data` without running __init__ on wrong types; the caller validates.

    Kept for the model configs (`BertConfig.from_dict`), whose validate needs the extra fields first.
    """
    where = as_where(where)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}expected a mapping of fields, got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{where}missing required field(s) {missing}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != extra_field}  # type: ignore[arg-type]
    strays = {k: v for k, v in data.items() if k not in fields}
    if strays and unknown == "error":
        raise unknown_fields(where, list(strays), list(fields))
    hints = typing.get_type_hints(cls)
    obj = cls.__new__(cls)
    for name, f in fields.items():
        if name in data:
            value = data[name]
            check_type(name, value, hints[name], where)
        elif f.default is not dataclasses.MISSING:
            value = copy.copy(f.default)
        else:
            value = f.default_factory()  # type: ignore[misc]
        setattr(obj, name, value)
    if extra_field is not None:
        setattr(obj, extra_field, strays)
    return obj


def to_plain(obj: Any) -> Any:
    """A parsed config back to plain data (for config.yaml in a run folder)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
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
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
        node[parts[-1]] = load_yaml(raw)
    return data
