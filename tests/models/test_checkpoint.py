"""Checkpoint mechanics and bad input: every failure names the file, tensor or argument at fault."""

from __future__ import annotations

import json
import logging
import os
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

import bertology
from bertology import BertConfig, BertForMaskedLM, BertForPreTraining, BertModel, CheckpointError, ConfigError

from ._util import assert_close, perturb_, random_batch


def _model(cfg: BertConfig, cls=BertModel, seed: int = 0):
    torch.manual_seed(seed)
    return perturb_(cls(cfg), seed=seed).eval()


def _batch(cfg: BertConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_batch(cfg.vocab_size, cfg.type_vocab_size, 3, 9, seed, padded=True)


@torch.no_grad()
def _same_encoder(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Two models (or their encoders) give the same last hidden state."""
    batch = _batch(a.config)
    a = getattr(a, "bert", a)
    b = getattr(b, "bert", b)
    assert_close(a(**batch).last_hidden_state, b(**batch).last_hidden_state, "last hidden state")


# ------------------------------------------------------------------------------------ bad files
def test_truncated_safetensors(tmp_path, tiny_config):
    _model(tiny_config).save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        BertModel.from_pretrained(tmp_path)
    assert str(path) in str(info.value)


def test_garbage_safetensors_header(tmp_path, tiny_config):
    _model(tiny_config).save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        BertModel.from_pretrained(tmp_path)


def test_folder_without_weights(tmp_path, tiny_config):
    tiny_config.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError) as info:
        BertModel.from_pretrained(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
        assert name in message


def test_folder_that_does_not_exist(tmp_path):
    with pytest.raises((CheckpointError, ConfigError)) as info:
        BertModel.from_pretrained(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_wrong_shape_names_the_tensor_and_both_shapes(tmp_path, tiny_config):
    _model(tiny_config).save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    other = tiny_config.replace(intermediate_size=60)
    wanted = BertModel(other).hf_state_dict()
    differing = [n for n in saved if saved[n].shape != wanted[n].shape]
    assert differing  # intermediate.dense.* and output.dense.weight of every layer
    with pytest.raises(CheckpointError) as info:
        BertModel.from_pretrained(tmp_path, config=other)
    message = str(info.value)
    assert any(
        f"'{n}'" in message and str(tuple(saved[n].shape)) in message and str(tuple(wanted[n].shape)) in message
        for n in differing
    ), message


class _Evil:
    """Unpickling this would create a file: a weights-only loader must never run it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_is_refused(tmp_path, tiny_config):
    tiny_config.save_pretrained(tmp_path)
    marker = tmp_path / "pwned"
    state = _model(tiny_config).hf_state_dict()
    state["payload"] = _Evil(str(marker))
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        BertModel.from_pretrained(tmp_path)
    assert str(path) in str(info.value)
    assert not marker.exists(), "the pickled object was executed"


def test_non_tensor_values_are_refused(tmp_path, tiny_config):
    tiny_config.save_pretrained(tmp_path)
    state = _model(tiny_config).hf_state_dict()
    state["global_step"] = 1000  # allowed by weights_only, but not a tensor
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        BertModel.from_pretrained(tmp_path)


def test_truncated_pytorch_model_bin(tmp_path, tiny_config):
    tiny_config.save_pretrained(tmp_path)
    path = tmp_path / "pytorch_model.bin"
    torch.save(_model(tiny_config).hf_state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        BertModel.from_pretrained(tmp_path)


def test_pytorch_model_bin_loads(tmp_path, tiny_config):
    model = _model(tiny_config)
    tiny_config.save_pretrained(tmp_path)
    torch.save(model.hf_state_dict(), tmp_path / "pytorch_model.bin")
    _same_encoder(BertModel.from_pretrained(tmp_path, strict=True), model)


# ---------------------------------------------------------------------------- missing and unused
def _drop_and_add(folder, drop: list[str], add: dict[str, torch.Tensor] | None = None) -> None:
    path = folder / "model.safetensors"
    state = load_file(str(path))
    for name in drop:
        del state[name]
    state.update(add or {})
    save_file(state, str(path))


def test_missing_tensors_are_reported(tmp_path, caplog, tiny_config):
    _model(tiny_config).save_pretrained(tmp_path)
    _drop_and_add(tmp_path, ["encoder.layer.1.output.LayerNorm.weight", "pooler.dense.bias"])
    with caplog.at_level(logging.WARNING):
        model = BertModel.from_pretrained(tmp_path)
    text = caplog.text
    assert "encoder.layers.1.ffn_norm.weight" in text or "encoder.layer.1.output.LayerNorm.weight" in text
    assert "pooler.dense.bias" in text
    assert model is not None
    with pytest.raises(CheckpointError) as info:
        BertModel.from_pretrained(tmp_path, strict=True)
    assert "pooler.dense.bias" in str(info.value)


def test_unused_tensors_are_reported(tmp_path, caplog, tiny_config):
    model = _model(tiny_config)
    model.save_pretrained(tmp_path)
    _drop_and_add(tmp_path, [], {"some.extra.tensor": torch.zeros(3)})
    with caplog.at_level(logging.WARNING):
        loaded = BertModel.from_pretrained(tmp_path)
    assert "some.extra.tensor" in caplog.text
    _same_encoder(loaded, model)
    with pytest.raises(CheckpointError, match="some.extra.tensor"):
        BertModel.from_pretrained(tmp_path, strict=True)


def test_query_without_key_and_value(tmp_path, tiny_config):
    _model(tiny_config).save_pretrained(tmp_path)
    _drop_and_add(tmp_path, ["encoder.layer.0.attention.self.key.weight"])
    with pytest.raises(CheckpointError, match="key"):
        BertModel.from_pretrained(tmp_path)


def test_position_ids_buffer_is_ignored(tmp_path, caplog, tiny_config):
    model = _model(tiny_config)
    model.save_pretrained(tmp_path)
    _drop_and_add(tmp_path, [], {"embeddings.position_ids": torch.arange(tiny_config.max_position_embeddings)[None]})
    _same_encoder(BertModel.from_pretrained(tmp_path, strict=True), model)


# --------------------------------------------------------------------------------- other layouts
def test_tensorflow_style_layer_norm_names(tmp_path, tiny_config):
    model = _model(tiny_config)
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    state = load_file(str(path))
    renamed = {}
    for name, tensor in state.items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[name] = tensor
    assert sum(".gamma" in n for n in renamed) == 1 + 2 * tiny_config.num_hidden_layers
    save_file(renamed, str(path))
    _same_encoder(BertModel.from_pretrained(tmp_path, strict=True), model)


def test_sharded_checkpoint(tmp_path, tiny_config):
    model = _model(tiny_config, BertForPreTraining, seed=3)
    model.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    (tmp_path / "model.safetensors").unlink()
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for shard, members in shards.items():
        save_file({n: state[n] for n in members}, str(tmp_path / shard))
        weight_map.update(dict.fromkeys(members, shard))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))

    loaded = BertForPreTraining.from_pretrained(tmp_path, strict=True)
    batch = _batch(tiny_config, 1)
    with torch.no_grad():
        a, b = loaded(**batch), model(**batch)
    assert_close(a.prediction_logits, b.prediction_logits, "MLM logits")
    assert_close(a.seq_relationship_logits, b.seq_relationship_logits, "NSP logits")

    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        BertForPreTraining.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------------------ saving
@pytest.mark.parametrize("cls", [BertModel, BertForMaskedLM, BertForPreTraining])
def test_save_writes_config_and_safetensors_only(tmp_path, cls, tiny_config):
    model = _model(tiny_config, cls)
    folder = tmp_path / "out"
    assert model.save_pretrained(folder) == folder
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"]  # no temporary files left
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == [cls.__name__]
    assert config["model_type"] == "bert" and config["hidden_size"] == tiny_config.hidden_size
    assert model.config.architectures is None  # saving does not change the model's own config
    names = set(load_file(str(folder / "model.safetensors")))
    assert "mlm_head.decoder.weight" not in names and "cls.predictions.decoder.weight" not in names
    prefix = "" if cls is BertModel else "bert."
    assert f"{prefix}embeddings.word_embeddings.weight" in names
    assert f"{prefix}encoder.layer.1.attention.self.value.weight" in names
    # saving again over the folder replaces the files and still leaves nothing else behind
    model.save_pretrained(folder)
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"]
    # and the class named in the config is what `load` builds
    loaded = bertology.load(folder)
    assert type(loaded) is cls
    _same_encoder(loaded, model)


@pytest.mark.parametrize("cls", [BertForMaskedLM, BertForPreTraining])
def test_decoder_stays_tied_after_loading(tmp_path, cls, tiny_config):
    model = _model(tiny_config, cls, seed=5)
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path, strict=True)
    assert loaded.mlm_head.decoder.weight.data_ptr() == loaded.bert.embeddings.word.weight.data_ptr()
    assert loaded.mlm_head.decoder.weight is loaded.bert.embeddings.word.weight
    assert torch.equal(loaded.bert.embeddings.word.weight, model.bert.embeddings.word.weight)
    assert torch.equal(loaded.mlm_head.decoder.bias, model.mlm_head.decoder.bias)


def test_pretraining_checkpoint_into_bert_model(tmp_path, caplog, tiny_config):
    source = _model(tiny_config, BertForPreTraining, seed=6)
    source.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING):
        model = BertModel.from_pretrained(tmp_path)
    for name, tensor in source.bert.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    _same_encoder(model, source)
    with torch.no_grad():
        batch = _batch(tiny_config)
        assert_close(model(**batch).pooler_output, source.bert(**batch).pooler_output, "pooler output")
    assert "not in the checkpoint" not in caplog.text  # nothing of the encoder is missing


def test_checkpoint_without_pooler_loads_as_an_encoder_without_one(tmp_path, caplog, tiny_config):
    """Masked LM alone trains no pooler: the bare encoder loads without one (no fresh weights, no warning of
    missing tensors), and a checkpoint with a pooler keeps it."""
    source = _model(tiny_config, BertForMaskedLM, seed=8)
    source.save_pretrained(tmp_path / "mlm")
    _model(tiny_config, BertModel, seed=9).save_pretrained(tmp_path / "pooled")
    with caplog.at_level(logging.WARNING):
        model = BertModel.from_pretrained(tmp_path / "mlm")
    assert model.pooler is None and "not in the checkpoint" not in caplog.text
    _same_encoder(model, source.bert)
    assert BertModel.from_pretrained(tmp_path / "pooled").pooler is not None


def test_bert_model_checkpoint_into_masked_lm(tmp_path, caplog, tiny_config):
    source = _model(tiny_config, BertModel, seed=7)
    source.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING):
        model = BertForMaskedLM.from_pretrained(tmp_path)
    assert "mlm_head.transform.weight" in caplog.text or "cls.predictions.transform.dense.weight" in caplog.text
    assert "pooler.dense.weight" in caplog.text  # BertForMaskedLM has no pooler: reported as unused
    _same_encoder(model, source)
    assert model.mlm_head.decoder.weight is model.bert.embeddings.word.weight
    assert torch.equal(model.mlm_head.decoder.weight, source.embeddings.word.weight)
    with pytest.raises(CheckpointError, match="mlm_head|cls.predictions"):
        BertForMaskedLM.from_pretrained(tmp_path, strict=True)


def test_load_without_config(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        bertology.load(tmp_path)


def test_load_unknown_model_type(tmp_path, tiny_config):
    _model(tiny_config).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["model_type"] = "gpt2"
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="model_type"):
        bertology.load(tmp_path)


# ------------------------------------------------------------------------------------ input errors
def test_input_longer_than_positions(tiny_bert):
    model = tiny_bert
    ids = torch.ones(2, model.config.max_position_embeddings + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="max_length"):
        model(ids)
    model(ids[:, :-1])  # exactly max_position_embeddings is fine


def test_ids_outside_vocabulary(tiny_config):
    model = BertForMaskedLM(tiny_config).eval()
    ids = torch.ones(2, 5, dtype=torch.long)
    ids[1, 3] = tiny_config.vocab_size
    with pytest.raises(ValueError, match="vocab_size"):
        model(ids)
    ids[1, 3] = -1
    with pytest.raises(ValueError, match="vocab_size"):
        model(ids)


def test_mismatched_attention_mask(tiny_bert):
    model = tiny_bert
    ids = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, attention_mask=torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="token_type_ids"):
        model(ids, token_type_ids=torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="token_type_ids"):
        model(ids, token_type_ids=torch.full((2, 5), model.config.type_vocab_size))
    with pytest.raises(ValueError, match="input_ids"):
        model(ids[0])


def test_mismatched_labels(tiny_config):
    model = BertForMaskedLM(tiny_config).eval()
    ids = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="labels"):
        model(ids, labels=torch.ones(2, 4, dtype=torch.long))


def test_fresh_head_models_keep_a_zero_padding_row_and_bert_init():
    import torch as _torch

    from bertology import BertConfig as _Config
    from bertology import BertForMaskedLM as _MLM
    from bertology import BertForPreTraining as _PT

    cfg = _Config(vocab_size=300, hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=96,
                  initializer_range=0.02)
    for cls in (_MLM, _PT):
        _torch.manual_seed(0)
        model = cls(cfg)
        word = model.bert.embeddings.word.weight
        assert _torch.count_nonzero(word[cfg.pad_token_id]) == 0
        assert abs(float(word.detach().std()) - 0.02) < 0.003  # initialised as BERT does, once
        assert _torch.count_nonzero(model.mlm_head.decoder.bias) == 0
