"""Every key of every shipped recipe and example config, misspelt one at a time, fails at load with the file,
the key path and a suggestion; a value of the wrong type fails naming the key. One config language for all."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import yaml

from bertology.errors import ConfigError
from bertology.runs import finetune, pretrain

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
#: mappings whose keys are names the user chooses (task names), not fields: recurse, but do not misspell
FREE_KEYS = {("tasks",), ("train", "loss_weights")}


def shipped() -> list[tuple[str, dict, object]]:
    """(label, data, loader) for every recipe and example config."""
    items = []
    for name in pretrain.recipe_names():
        text = (resources.files("bertology") / "recipes" / f"{name}.yaml").read_text(encoding="utf-8")
        items.append((f"recipe {name}", yaml.safe_load(text), "pretrain"))
    for path in sorted(CONFIGS.rglob("*.yaml")):
        items.append((str(path.relative_to(CONFIGS)), yaml.safe_load(path.read_text(encoding="utf-8")), "finetune"))
    return items


def key_paths(data: dict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in data.items():
        path = (*prefix, str(key))
        if prefix not in FREE_KEYS:
            yield path
        if isinstance(value, dict):
            yield from key_paths(value, path)


def leaves(data: dict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, dict):
            yield from leaves(value, path)
        elif prefix not in FREE_KEYS:
            yield path, value


def misspell(key: str) -> str:
    """Double the second letter: close enough for a suggestion, never another real key."""
    return key[:2] + key[1:] if len(key) > 1 else key + key


def edited(data: dict, path: tuple[str, ...], rename: str | None = None, value: object = None) -> dict:
    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        node = node[part]
    if rename is not None:
        node[rename] = node.pop(path[-1])
    else:
        node[path[-1]] = value
    return data


def load(kind: str, data: dict, tmp_path: Path) -> Path:
    base = {"corpus": "corpus", "tokenizer": "tokenizer"} if kind == "pretrain" else {}
    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump({**base, **data}), encoding="utf-8")
    if kind == "pretrain":
        pretrain.load_config(str(file))
    else:
        finetune.load_config(file)
    return file


CASES = [(label, data, kind, path) for label, data, kind in shipped() for path in key_paths(data)]


@pytest.mark.parametrize(("label", "data", "kind", "path"), CASES,
                         ids=[f"{c[0]}:{'.'.join(c[3])}" for c in CASES])
def test_a_misspelt_key_names_file_path_and_suggestion(label, data, kind, path, tmp_path):
    wrong = misspell(path[-1])
    with pytest.raises(ConfigError) as info:
        load(kind, edited(data, path, rename=wrong), tmp_path)
    message = str(info.value)
    assert str(tmp_path / "config.yaml") in message
    assert repr(wrong) in message or wrong in message
    if len(path) > 1:
        assert ".".join(path[:-1]) in message, message
    assert f"did you mean '{path[-1]}'" in message, message


def test_every_shipped_config_loads_as_it_is(tmp_path):
    for _label, data, kind in shipped():
        load(kind, data, tmp_path)


LEAVES = [(label, data, kind, path) for label, data, kind in shipped() for path, _ in leaves(data)]


@pytest.mark.parametrize(("label", "data", "kind", "path"), LEAVES,
                         ids=[f"{c[0]}:{'.'.join(c[3])}" for c in LEAVES])
def test_a_value_of_the_wrong_type_names_the_key(label, data, kind, path, tmp_path):
    with pytest.raises(ConfigError) as info:
        load(kind, edited(data, path, value={"not": ["a", "value"]}), tmp_path)
    message = str(info.value)
    assert str(tmp_path / "config.yaml") in message
    assert path[-1] in message, message
