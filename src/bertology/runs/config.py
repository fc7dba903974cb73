"""The one way every run reads its config: a YAML file (or a packaged recipe), `--set` overrides, then `parse`.

    config = load_run_config(PretrainConfig, "run.yaml", ["train.max_steps=200"], recipes=True)

Every run type goes through these three steps, so a typo, a wrong type or a bad value fails the same way
for all of them, at load, naming the file (or `recipe 'bert'`) and the key path.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import ConfigError
from ..utils.typed import Where, apply_overrides, load_yaml, parse, suggest

T = TypeVar("T")

#: the package folder that holds the pretraining recipes (`bert.yaml` is recipe `bert`)
RECIPES = "recipes"


def recipe_names() -> list[str]:
    """The recipes shipped with the package, by name."""
    folder = resources.files("bertology") / RECIPES
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


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


def read_source(source: str | os.PathLike, recipes: bool = False) -> tuple[dict[str, Any], str, Path | None]:
    """(data, label, base_dir) of a config file, or of a packaged recipe when `recipes` and no file is there.

    `label` names the source in errors (the path as given, or `recipe 'bert'`); `base_dir` is the file's
    folder, against which path fields are resolved (None for a recipe: its paths are the user's own).
    """
    path = Path(source)
    if path.is_file():
        return _parse_yaml(path.read_text(encoding="utf-8"), str(path)), str(path), path.parent
    name = str(source)
    if recipes and name in recipe_names():
        text = (resources.files("bertology") / RECIPES / f"{name}.yaml").read_text(encoding="utf-8")
        label = f"recipe '{name}'"
        return _parse_yaml(text, label), label, None
    if recipes:
        raise ConfigError(f"{name}: no such config file, and not a recipe{suggest(name, recipe_names())} "
                          f"({', '.join(recipe_names())})")
    raise ConfigError(f"{name}: no such config file")


def load_run_config(cls: type[T], source: str | os.PathLike, overrides: list[str] | None = None,
                    recipes: bool = False) -> T:
    """Read `source` (see `read_source`), apply `key.path=value` overrides, and parse it into `cls`.

    Every section is parsed and checked here, including those the run will not use, so nothing misspelt
    waits until the middle of a run to fail (or is silently ignored).
    """
    data, label, base = read_source(source, recipes)
    data = apply_overrides(data, list(overrides or []))
    return parse(cls, data, Where(label), base=base)
