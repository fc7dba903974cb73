"""The one way every run reads its config: a YAML file (or a packaged recipe), `--set` overrides, then `parse`.

    config = load_run_config(PretrainConfig, "run.yaml", ["train.max_steps=200"], recipes=True)

Every run type goes through these three steps, so a typo, a wrong type or a bad value fails the same way
for all of them, at load, naming the file (or `recipe 'bert'`) and the key path.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import ConfigError
from ..utils.typed import Where, apply_overrides, load_yaml, parse, suggest

T = TypeVar("T")

#: the package folder that holds the pretraining recipes (`bert.yaml` is recipe `bert`)
RECIPES = "recipes"


def recipe_names(folder: str = RECIPES) -> list[str]:
    """The recipes shipped with the package in `folder` (pretraining's by default), by name."""
    where = resources.files("bertology").joinpath(*folder.split("/"))
    return sorted(p.name[: -len(".yaml")] for p in where.iterdir() if p.name.endswith(".yaml"))


def _parse_yaml(text: str, label: str) -> dict[str, Any]:
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping of fields, got {type(data).__name__}")
    return data


def read_source(source: str | os.PathLike, recipes: bool | str = False) -> tuple[dict[str, Any], str, Path | None]:
    """(data, label, base_dir) of a config file, or of a packaged recipe when `recipes` and no file is there
    (`recipes` True: pretraining's recipes; a string: the package folder of another command's recipes).

    `label` names the source in errors (the path as given, or `recipe 'bert'`); `base_dir` is the file's
    folder, against which path fields are resolved (None for a recipe: its paths are the user's own).
    """
    path = Path(source)
    if path.is_file():
        return _parse_yaml(path.read_text(encoding="utf-8"), str(path)), str(path), path.parent
    name = str(source)
    folder = recipes if isinstance(recipes, str) else RECIPES
    if recipes and name in recipe_names(folder):
        text = resources.files("bertology").joinpath(*folder.split("/"), f"{name}.yaml").read_text(encoding="utf-8")
        label = f"recipe '{name}'"
        return _parse_yaml(text, label), label, None
    if recipes:
        known = recipe_names(folder)
        raise ConfigError(f"{name}: no such config file, and not a recipe{suggest(name, known)} ({', '.join(known)})")
    raise ConfigError(f"{name}: no such config file")


def load_run_config(cls: type[T], source: str | os.PathLike, overrides: list[str] | None = None,
                    recipes: bool | str = False) -> T:
    """Read `source` (see `read_source`), apply `key.path=value` overrides, and parse it into `cls`.

    Every section is parsed and checked here, including those the run will not use, so nothing misspelt
    waits until the middle of a run to fail (or is silently ignored).
    """
    data, label, base = read_source(source, recipes)
    data = rebase_paths(cls, data, base)  # the file's paths, before the overrides (theirs are the user's own)
    data = apply_overrides(data, list(overrides or []))
    load_plugins(data.pop("plugins", None), Where(label).child("plugins"), base)
    return parse(cls, data, Where(label))


def rebase_paths(cls: type, data: Any, base: str | os.PathLike | None) -> Any:
    """`data` (plain, as read from a file) with every relative path field of `cls` (`metadata={"path": True}`,
    in nested sections too) joined to `base`: paths in a config file are relative to the file's folder.

    Values set afterwards (`--set`, `--corpus`) are not touched and stay relative to the working directory;
    with `base` None (a packaged recipe, a config built in Python) nothing changes.
    """
    if base is None or not isinstance(data, dict) or not dataclasses.is_dataclass(cls):
        return data
    out = dict(data)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in out:
            continue
        value = out[f.name]
        if f.metadata.get("path"):
            if isinstance(value, str) and value and not Path(value).is_absolute():
                out[f.name] = str(Path(base) / value)
            continue
        kind, section = _section(hints[f.name])
        if section is None:
            continue
        if kind == "one":
            out[f.name] = rebase_paths(section, value, base)
        elif kind == "dict" and isinstance(value, dict):
            out[f.name] = {k: rebase_paths(section, v, base) for k, v in value.items()}
        elif kind == "list" and isinstance(value, list):
            out[f.name] = [rebase_paths(section, v, base) for v in value]
    return out


def _section(hint: Any) -> tuple[str, type | None]:
    """("one" | "dict" | "list", the dataclass) of a field that holds sections, else ("", None)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(option, type):
            return "one", option
        args = typing.get_args(option)
        if typing.get_origin(option) is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
            return "dict", args[1]
        if typing.get_origin(option) is list and len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return "list", args[0]
    return "", None


def load_plugins(plugins: Any, where: Where, base: Path | None = None) -> list[str]:
    """Import the modules a config names under `plugins:` before it is parsed, so the maskers, objectives,
    families, task kinds and regularizers they register can be chosen by name in the same file.

    Each entry is a module name (`my_package.my_masker`) or a `.py` file (relative to the config file).
    This runs the user's own code, as a conftest.py or a setup script does: only name files you trust.
    """
    if plugins is None:
        return []
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
        raise ConfigError(f"{where}expected a list of module names or .py files, got {plugins!r}")
    loaded = []
    for entry in plugins:
        if entry.endswith(".py"):
            path = Path(entry)
            if not path.is_absolute() and base is not None:
                path = base / path
            if not path.is_file():
                raise ConfigError(f"{where}plugin file {path} does not exist")
            name = f"bertology_plugin_{path.stem}"
            if str(path.parent) not in sys.path:  # a plugin may import the modules beside it
                sys.path.insert(0, str(path.parent))
            if name not in sys.modules and not _already_imported(path):
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                sys.modules[name] = module
                spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            try:
                importlib.import_module(entry)
            except ImportError as exc:
                raise ConfigError(f"{where}cannot import plugin module {entry!r} ({exc})") from None
        loaded.append(entry)
    return loaded


def _already_imported(path: Path) -> bool:
    """Whether the file is loaded under any module name (a plugin imported by its own package, or a test file
    that registers a component and names itself as the plugin), so it does not register twice."""
    target = path.resolve()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == target:
            return True
    return False
