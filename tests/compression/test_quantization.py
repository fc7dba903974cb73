"""int8 models: each method's layers and outputs against fp32, weights within half a quantization step, the
int8 folder round trip (exact), Q8BERT's fake quantization by hand, and the refusals."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from bertology import BertConfig, BertForMaskedLM, BertModel, load
from bertology.compression.quantization import (
    QUANTIZERS,
    FakeQuantLinear,
    QuantizeOptions,
    fake_quantize,
    quantize_encoder,
    restore,
)
from bertology.compression.quantization.modules import StaticInt8Linear, linear_names, quiet
from bertology.compression.report import folder_size
from bertology.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def model() -> BertModel:
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=32)).eval()


def _batch(seed: int = 1, batch: int = 4, seq: int = 16):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 300, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, seq // 2:] = 0
    return ids, mask


def _calibrate(m: nn.Module) -> None:
    for seed in range(4):
        m(*_batch(seed + 10, 8))


def _quantized(model: BertModel, method: str, **options) -> BertModel:
    q = copy.deepcopy(model)
    quantize_encoder(q, method, QuantizeOptions(**options), _calibrate if method == "static" else None)
    return q


@pytest.mark.parametrize("method,embeddings", [("dynamic", False), ("static", False), ("dynamic", True),
                                               ("embeddings", False)])
def test_int8_outputs_follow_fp32(model, method, embeddings):
    q = _quantized(model, method, embeddings=embeddings)
    ids, mask = _batch()
    with torch.no_grad():
        ref, out = model(ids, mask).last_hidden_state, q(ids, mask).last_hidden_state
    real = mask.bool()
    cosine = nn.functional.cosine_similarity(out[real], ref[real], dim=-1)
    assert float(cosine.min()) > 0.999
    assert not torch.equal(out, ref)  # it is really int8
    plain = [n for n, m in q.named_modules() if type(m) is nn.Linear]
    assert plain == (linear_names(model) if method == "embeddings" else [])  # else every Linear replaced
    if embeddings or method == "embeddings":
        assert type(q.embeddings.word).__name__ == "Embedding" and q.embeddings.word.__module__.startswith("torch.ao")


def test_int8_weights_lie_within_half_a_step(model):
    q = _quantized(model, "dynamic")
    for name in linear_names(model):
        w = model.get_submodule(name).weight.detach()
        with quiet():
            qw = q.get_submodule(name).weight()
        scales = qw.q_per_channel_scales().float()
        error = (qw.dequantize() - w).abs().amax(dim=1)
        assert torch.all(error <= scales / 2 + 1e-6), name


@pytest.mark.parametrize("method", ["dynamic", "static", "embeddings"])
def test_the_int8_folder_reloads_exactly_and_is_smaller(model, method, tmp_path):
    q = _quantized(model, method, embeddings=method != "embeddings")
    q.save_pretrained(tmp_path / "int8")
    model.save_pretrained(tmp_path / "fp32")
    again = load(tmp_path / "int8")
    ids, mask = _batch()
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask).last_hidden_state, q(ids, mask).last_hidden_state,
                                   rtol=0, atol=0)
    assert again.quantization["method"] == method
    saved = folder_size(tmp_path / "fp32") - folder_size(tmp_path / "int8")
    table = 4 * model.embeddings.word.weight.numel()  # fp32 bytes of the token table
    assert saved > (0.6 * table if method == "embeddings" else 0.6 * folder_size(tmp_path / "fp32"))
    if method == "static":
        assert isinstance(again.encoder.layers[0].attention.qkv, StaticInt8Linear)


def test_an_encoder_without_pooler_reloads_as_int8(tmp_path):
    """An encoder pretrained by masked LM alone has no pooler; its int8 folder reloads without one."""
    torch.manual_seed(0)
    bare = BertModel(BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=32), add_pooling_layer=False).eval()
    q = _quantized(bare, "dynamic")
    q.save_pretrained(tmp_path)
    again = load(tmp_path)
    assert again.pooler is None
    ids, mask = _batch()
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask).last_hidden_state, q(ids, mask).last_hidden_state, rtol=0, atol=0)


def test_a_damaged_int8_folder_is_named(model, tmp_path):
    q = _quantized(model, "dynamic")
    q.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "quantization.json").read_text())
    meta["layers"]["dynamic"].append("encoder.layers.9.ffn.up")
    (tmp_path / "quantization.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="layer 'encoder.layers.9.ffn.up' is not in the model"):
        load(tmp_path)
    (tmp_path / "quantization.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="quantization.json: not a readable quantization description"):
        load(tmp_path)


def test_refusals_name_the_layer(model):
    q = copy.deepcopy(model)
    with pytest.raises(ConfigError, match="unknown quantization method 'dynamc'.*dynamic"):
        quantize_encoder(q, "dynamc")
    with pytest.raises(ConfigError, match="static quantization needs calibration data"):
        quantize_encoder(q, "static")
    from bertology.compression.quantization.modules import dynamic_int8, int8_embeddings

    with pytest.raises(ConfigError, match="layer 'encoder.layers.0.attention_norm' is a LayerNorm; int8 linear"):
        dynamic_int8(q, ["encoder.layers.0.attention_norm"])
    mlm = BertForMaskedLM(model.config)
    with pytest.raises(ConfigError, match="embedding 'bert.embeddings.word' is tied to an output layer"):
        int8_embeddings(mlm, ["bert.embeddings.word"])
    quantize_encoder(q, "dynamic")
    with pytest.raises(ConfigError, match="already quantized"):
        quantize_encoder(q, "dynamic")
    assert sorted(QUANTIZERS) == ["dynamic", "embeddings", "qat", "static"]


def test_fake_quantization_by_hand():
    """Q8BERT: weights rounded per row to max|w| / 127 steps, inputs to the moving max |x| / 127; the
    gradient passes straight through the rounding (inside the clipped range)."""
    torch.manual_seed(0)
    linear = nn.Linear(6, 3)
    reference = copy.deepcopy(linear)
    fake = FakeQuantLinear.convert(linear, bits=8, momentum=0.5)
    x1, x2 = torch.randn(5, 6), torch.randn(5, 6) * 3
    fake.train()
    fake(x1)
    assert float(fake.input_range) == pytest.approx(float(x1.abs().max()))  # the first batch sets it
    x2.requires_grad_(True)
    out = fake(x2)
    expected_range = 0.5 * float(x1.abs().max()) + 0.5 * float(x2.abs().max())
    assert float(fake.input_range) == pytest.approx(expected_range, rel=1e-6)
    w = reference.weight.detach()
    w_step = w.abs().amax(dim=1, keepdim=True) / 127
    w_q = torch.round(w / w_step).clamp(-127, 127) * w_step
    x_step = expected_range / 127
    x_q = torch.round(x2.detach() / x_step).clamp(-127, 127) * x_step
    torch.testing.assert_close(out, x_q @ w_q.T + reference.bias.detach(), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    inside = (x2.detach().abs() <= 127 * x_step).float()
    torch.testing.assert_close(x2.grad, w_q.sum(0).expand_as(x2) * inside, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fake.weight.grad, x_q.sum(0).expand_as(w), rtol=1e-5, atol=1e-5)
    plain = restore(nn.Sequential(fake))
    assert plain == 1 and type(fake) is nn.Linear and "input_range" not in dict(fake.named_buffers())


def test_fake_quantize_covers_every_linear(model):
    q = copy.deepcopy(model)
    names = fake_quantize(q)
    assert names == linear_names(model) and all(isinstance(q.get_submodule(n), FakeQuantLinear) for n in names)
    assert restore(q) == len(names)
