"""Config parsing helpers: YAML numbers read as users mean them, overrides parsed the same way."""

from __future__ import annotations

import pytest

from bertology.errors import ConfigError
from bertology.training.config import TrainConfig
from bertology.utils.typed import apply_overrides, load_yaml


def test_exponent_without_a_dot_is_a_float() -> None:
    data = load_yaml("lr: 1e-4\nbig: 2E+3\nplain: 3\nquoted: '1e-4'\nword: 1e\n")
    assert data == {"lr": 1e-4, "big": 2000.0, "plain": 3, "quoted": "1e-4", "word": "1e"}
    assert isinstance(data["lr"], float) and isinstance(data["plain"], int)


def test_yaml_file_and_override_reach_the_typed_config() -> None:
    data = apply_overrides(load_yaml("learning_rate: 1e-4\n"), ["weight_decay=1e-2"])
    config = TrainConfig.from_dict(data)
    assert config.learning_rate == pytest.approx(1e-4) and config.weight_decay == pytest.approx(0.01)


def test_a_quoted_number_is_still_rejected() -> None:
    with pytest.raises(ConfigError, match="'learning_rate'"):
        TrainConfig.from_dict(load_yaml("learning_rate: '1e-4'\n"))


def test_yaml_cannot_build_python_objects() -> None:
    import yaml

    with pytest.raises(yaml.YAMLError):
        load_yaml("x: !!python/object/apply:os.system ['true']\n")
