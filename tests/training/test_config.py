"""TrainConfig: wrong types and impossible values fail with a ConfigError that names the field."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bertology.errors import ConfigError
from bertology.training.config import TrainConfig


@pytest.mark.parametrize(("field", "value"), [
    ("learning_rate", "1e-4"),
    ("weight_decay", "0.01"),
    ("learning_rate", True),  # a bool is not a number here
    ("batch_size", 2.5),
    ("batch_size", "32"),
    ("batch_size", True),
    ("max_steps", False),
    ("epochs", 1.0),
    ("seed", None),
    ("schedule", 1),
    ("bf16", 1),
    ("loss_weights", [1.0]),
    ("max_grad_norm", "1.0"),
    ("best_metric", 3),
])
def test_wrong_types_name_the_field(field: str, value) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'"):
        TrainConfig(**{field: value})
    with pytest.raises(ConfigError, match=f"'{field}'"):
        TrainConfig.from_dict({field: value})


@pytest.mark.parametrize(("field", "value"), [
    ("schedule", "exp"),
    ("best_mode", "avg"),
    ("max_steps", -1),
    ("gradient_accumulation", 0),
    ("gradient_accumulation", -2),
    ("batch_size", 0),
    ("learning_rate", 0.0),
    ("learning_rate", -1e-4),
    ("warmup_ratio", 1.0),
    ("warmup_ratio", -0.1),
    ("keep_last", 0),
    ("max_bad_steps", 0),
    ("distributed", "horovod"),
])
def test_bad_values_name_the_field(field: str, value) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'") as info:
        TrainConfig(**{field: value})
    assert repr(value) in str(info.value)
    with pytest.raises(ConfigError, match=f"'{field}'"):
        TrainConfig.from_dict({field: value})


def test_epochs_may_be_zero_only_when_max_steps_bounds_the_run() -> None:
    with pytest.raises(ConfigError, match="'epochs'"):
        TrainConfig(epochs=0)
    assert TrainConfig(epochs=0, max_steps=100).max_steps == 100


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        TrainConfig(schedule="exp")


def test_validate_prefixes_where() -> None:
    with pytest.raises(ConfigError, match=r"^run\.yaml: field 'schedule'"):
        TrainConfig.from_dict({"schedule": "exp"}, where="run.yaml: ")
    with pytest.raises(ConfigError, match=r"^run\.yaml: field 'batch_size'"):
        TrainConfig.from_dict({"batch_size": "8"}, where="run.yaml: ")


def test_from_dict_rejects_unknown_keys_by_name() -> None:
    with pytest.raises(ConfigError, match="learning_rte") as info:
        TrainConfig.from_dict({"learning_rte": 3e-4, "batch_size": 8})
    assert "learning_rate" in str(info.value)  # the known fields are listed to spot the typo
    with pytest.raises(ConfigError, match=r"unknown fields 'bogus', 'zzz'"):
        TrainConfig.from_dict({"zzz": 1, "bogus": 2})
    with pytest.raises(ConfigError, match="mapping"):
        TrainConfig.from_dict([("batch_size", 8)])  # type: ignore[arg-type]


def test_from_dict_accepts_ints_for_floats() -> None:
    config = TrainConfig.from_dict({"learning_rate": 1, "weight_decay": 0, "max_grad_norm": 2, "warmup_ratio": 0})
    assert config.learning_rate == 1 and config.weight_decay == 0 and config.max_grad_norm == 2
    assert TrainConfig(learning_rate=1, adam_epsilon=1).adam_epsilon == 1
    assert TrainConfig.from_dict({"max_grad_norm": None}).max_grad_norm is None


def test_from_dict_fills_defaults() -> None:
    config = TrainConfig.from_dict({"batch_size": 8})
    assert config == dataclasses.replace(TrainConfig(), batch_size=8)
    assert TrainConfig.from_dict({}) == TrainConfig()
    # mutable defaults are not shared between configs
    a, b = TrainConfig.from_dict({}), TrainConfig.from_dict({})
    a.loss_weights["mlm"] = 2.0
    assert b.loss_weights == {}


def test_round_trip() -> None:
    config = TrainConfig(learning_rate=3e-4, schedule="cosine", warmup_steps=10, max_steps=1000, batch_size=16,
                         gradient_accumulation=4, loss_weights={"mlm": 1.0, "nsp": 0.5}, bf16=True,
                         best_metric="eval_loss", best_mode="max", max_grad_norm=None, distributed="fsdp",
                         drop_last=False, keep_last=2)
    data = config.to_dict()
    assert data["learning_rate"] == 3e-4 and data["loss_weights"] == {"mlm": 1.0, "nsp": 0.5}
    assert set(data) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert TrainConfig.from_dict(data) == config
    assert TrainConfig.from_dict(json.loads(json.dumps(data))) == config
    # to_dict is a copy: editing it leaves the config alone
    data["loss_weights"]["mlm"] = 9.0
    assert config.loss_weights["mlm"] == 1.0


@pytest.mark.parametrize(("field", "value"), [
    # clip_grad_norm_ with a negative max_norm multiplies every gradient by a negative factor: gradient ascent
    ("max_grad_norm", -1.0),
    # a negative warm-up is truthy: warmup_ratio is ignored and the decay starts below the peak
    ("warmup_steps", -5),
    # any non-zero patience is "on", and -1 stops the run at the first evaluation without improvement
    ("early_stopping_patience", -1),
])
def test_negative_values_that_would_silently_misbehave_are_refused(field: str, value) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'"):
        TrainConfig(**{field: value})
    with pytest.raises(ConfigError, match=f"'{field}'"):
        TrainConfig.from_dict({field: value})
