"""BertConfig: transformers' field names, config.json round trips, presets and validation errors."""

from __future__ import annotations

import dataclasses
import json

import pytest
import transformers

from bertology import BertConfig, ConfigError
from bertology.assets import minilm_dir
from bertology.models import preset_names

ARCHITECTURE_FIELDS = {
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
    "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id", "position_embedding_type",
    "classifier_dropout",
}


# ------------------------------------------------------------------------------------ field names
def test_field_names_are_transformers_names():
    names = {f.name for f in dataclasses.fields(BertConfig)}
    assert ARCHITECTURE_FIELDS <= names
    theirs = transformers.BertConfig()
    ours = BertConfig()
    # (transformers 5 no longer carries position_embedding_type on a fresh config; only "absolute" exists)
    shared = {name for name in ARCHITECTURE_FIELDS if hasattr(theirs, name)}
    assert ARCHITECTURE_FIELDS - shared <= {"position_embedding_type"}
    for name in shared:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.model_type == theirs.model_type == "bert"


def test_transformers_reads_our_dict():
    ours = BertConfig(vocab_size=77, hidden_size=48, num_hidden_layers=3, num_attention_heads=6,
                      intermediate_size=100, hidden_act="relu", layer_norm_eps=1e-6, type_vocab_size=3)
    theirs = transformers.BertConfig(**ours.to_dict())
    for name in ARCHITECTURE_FIELDS:
        assert getattr(theirs, name) == getattr(ours, name), name
    assert ours.head_dim == 8


def test_minilm_config_round_trip_keeps_unknown_keys(tmp_path):
    source = minilm_dir() / "config.json"
    original = json.loads(source.read_text())
    cfg = BertConfig.from_json_file(source)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (384, 6, 12)
    assert cfg.architectures == ["BertModel"]
    for key in ("transformers_version", "gradient_checkpointing", "use_cache", "_name_or_path"):
        assert cfg.extra[key] == original[key]
    assert not set(cfg.extra) & {f.name for f in dataclasses.fields(BertConfig)}

    written = cfg.save_pretrained(tmp_path)
    assert written == tmp_path / "config.json"
    again = json.loads(written.read_text())
    for key, value in original.items():
        assert again[key] == value, key
    assert BertConfig.from_pretrained(tmp_path) == cfg
    assert BertConfig.from_pretrained(tmp_path).extra == cfg.extra


def test_replace_validates():
    cfg = BertConfig.preset("tiny")
    assert cfg.replace(num_hidden_layers=3).num_hidden_layers == 3
    with pytest.raises(ConfigError, match="num_attention_heads"):
        cfg.replace(num_attention_heads=3)


# ---------------------------------------------------------------------------------------- presets
def _shape(cfg: BertConfig) -> tuple[int, int, int, int]:
    return cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("mini", (4, 256, 4, 1024)),
        ("tiny", (2, 128, 2, 512)),
        ("small", (4, 512, 8, 2048)),
        ("medium", (8, 512, 8, 2048)),
        ("base", (12, 768, 12, 3072)),
        ("large", (24, 1024, 16, 4096)),
        ("tinybert", (4, 312, 12, 1200)),
    ],
)
def test_named_presets(name, shape):
    cfg = BertConfig.preset(name)
    assert _shape(cfg) == shape
    assert cfg.vocab_size == 30522 and cfg.max_position_embeddings == 512


@pytest.mark.parametrize("layers", [2, 4, 6, 8, 10, 12])
@pytest.mark.parametrize("hidden", [128, 256, 512, 768])
def test_google_small_presets(layers, hidden):
    cfg = BertConfig.preset(f"bert-L{layers}-H{hidden}")
    assert _shape(cfg) == (layers, hidden, hidden // 64, 4 * hidden)
    assert f"bert-L{layers}-H{hidden}" in preset_names()


def test_preset_overrides():
    cfg = BertConfig.preset("mini", vocab_size=1000, hidden_act="relu")
    assert (cfg.vocab_size, cfg.hidden_act, cfg.hidden_size) == (1000, "relu", 256)
    with pytest.raises(ConfigError, match="hidden_size"):
        BertConfig.preset("mini", num_attention_heads=3)


def test_unknown_preset_lists_names():
    with pytest.raises(ConfigError) as info:
        BertConfig.preset("bert-L3-H100")
    message = str(info.value)
    assert "bert-L3-H100" in message
    for known in ("mini", "base", "tinybert", "bert-L4-H256", "bert-L12-H768"):
        assert known in message


# ------------------------------------------------------------------------------------- validation
def test_hidden_size_must_divide_by_heads():
    with pytest.raises(ConfigError, match="hidden_size") as info:
        BertConfig(hidden_size=100, num_attention_heads=12)
    assert "num_attention_heads" in str(info.value)


@pytest.mark.parametrize("name", ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                  "intermediate_size", "max_position_embeddings"])
@pytest.mark.parametrize("value", [0, -4])
def test_sizes_must_be_positive(name, value):
    with pytest.raises(ConfigError, match=name):
        BertConfig(**{name: value})


def test_negative_type_vocab_size():
    with pytest.raises(ConfigError, match="type_vocab_size"):
        BertConfig(type_vocab_size=-1)


def test_unknown_activation():
    with pytest.raises(ConfigError, match="hidden_act") as info:
        BertConfig(hidden_act="swishy")
    assert "swishy" in str(info.value) and "gelu" in str(info.value)


@pytest.mark.parametrize("name", ["hidden_dropout_prob", "attention_probs_dropout_prob"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_dropout_out_of_range(name, value):
    with pytest.raises(ConfigError, match=name):
        BertConfig(**{name: value})


def test_other_invalid_values():
    with pytest.raises(ConfigError, match="layer_norm_eps"):
        BertConfig(layer_norm_eps=0.0)
    with pytest.raises(ConfigError, match="pad_token_id"):
        BertConfig(vocab_size=10, pad_token_id=10)
    with pytest.raises(ConfigError, match="position_embedding_type"):
        BertConfig(position_embedding_type="relative_key")
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        BertConfig(num_hidden_layers=2.0)
    with pytest.raises(ConfigError, match="hidden_size"):
        BertConfig(hidden_size=True)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def _write(tmp_path, data) -> str:
    path = tmp_path / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _minilm_dict() -> dict:
    return json.loads((minilm_dir() / "config.json").read_text())


def test_wrongly_typed_field_in_file(tmp_path):
    data = _minilm_dict()
    data["hidden_size"] = "384"
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        BertConfig.from_json_file(path)
    assert "hidden_size" in str(info.value)
    assert str(path) in str(info.value)


def test_wrong_value_in_file_names_the_file(tmp_path):
    data = _minilm_dict()
    data["num_attention_heads"] = 5
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        BertConfig.from_pretrained(tmp_path)
    assert "num_attention_heads" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("field", ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size"])
def test_missing_required_field_in_file(tmp_path, field):
    data = _minilm_dict()
    del data[field]
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        BertConfig.from_json_file(path)
    assert field in str(info.value)
    assert str(path) in str(info.value)


def test_optional_fields_take_defaults(tmp_path):
    data = {k: _minilm_dict()[k] for k in BertConfig.REQUIRED}
    cfg = BertConfig.from_json_file(_write(tmp_path, data))
    assert cfg.hidden_act == "gelu" and cfg.type_vocab_size == 2 and cfg.extra == {}


@pytest.mark.parametrize("text", ['{"hidden_size": 384,', "", "not json at all"])
def test_invalid_json_names_the_file(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        BertConfig.from_json_file(path)
    assert str(path) in str(info.value)


def test_json_that_is_not_an_object(tmp_path):
    path = _write(tmp_path, [1, 2, 3])
    with pytest.raises(ConfigError) as info:
        BertConfig.from_json_file(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        BertConfig.from_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value)


# ------------------------------------------------------------------------------------------ families
def test_every_family_is_registered_once_with_its_classes():
    from bertology import models as m
    from bertology.models.family import FAMILIES, family_for_config, family_for_encoder

    assert set(FAMILIES) == {"bert", "albert", "roberta", "chinesebert", "ambert"}
    bert = FAMILIES["bert"]
    assert (bert.encoder_class, bert.pretraining_class, bert.masked_lm_class) == (
        m.BertModel, m.BertForPreTraining, m.BertForMaskedLM)
    assert FAMILIES["albert"].pretraining_class is m.AlbertForPreTraining
    assert FAMILIES["albert"].masked_lm_class is m.AlbertForMaskedLM
    assert FAMILIES["roberta"].pretraining_class is None
    assert FAMILIES["roberta"].masked_lm_class is m.RobertaForMaskedLM
    for name, config_class, encoder in (("albert", m.AlbertConfig, m.AlbertModel),
                                        ("roberta", m.RobertaConfig, m.RobertaModel),
                                        ("chinesebert", m.ChineseBertConfig, m.ChineseBertModel),
                                        ("ambert", m.AmbertConfig, m.AmbertModel)):
        family = FAMILIES[name]
        assert family.config_class is config_class and family.encoder_class is encoder
        # `load` finds the family by the model_type its config.json carries
        assert config_class.__dataclass_fields__["model_type"].default == name
        assert family_for_encoder(encoder) is family
    assert family_for_config(BertConfig()) is FAMILIES["bert"]
    assert "embedding_size" in FAMILIES["albert"].config_fields()
    assert "extra" not in FAMILIES["bert"].config_fields() and "REQUIRED" not in FAMILIES["bert"].config_fields()


def test_family_defaults_for_pretraining():
    from types import SimpleNamespace

    from bertology.models.family import FAMILIES

    tok = SimpleNamespace(vocab_size=1200, pad_token_id=1)
    bert = FAMILIES["bert"].defaults({}, tok, 128)
    assert bert == {"vocab_size": 1200, "pad_token_id": 1, "max_position_embeddings": 512}
    assert FAMILIES["bert"].defaults({}, tok, 1024)["max_position_embeddings"] == 1024
    # RoBERTa's positions start after the padding index: pad + 1 more rows; one segment type
    assert FAMILIES["roberta"].defaults({}, tok, 128) == {**bert, "max_position_embeddings": 514, "type_vocab_size": 1}
    assert FAMILIES["ambert"].defaults({}, tok, 128) == {**bert, "coarse_vocab_size": 20000}


def test_load_refuses_an_unknown_model_type(tmp_path):
    from bertology.models import load

    (tmp_path / "config.json").write_text(json.dumps({**_minilm_dict(), "model_type": "bart"}))
    with pytest.raises(ConfigError, match="'bart'; known types: .*'albert'"):
        load(tmp_path)
