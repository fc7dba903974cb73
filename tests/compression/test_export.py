"""ONNX export: every family's encoder and every head kind agree with torch within 1e-4 on batches of other
shapes than the export's example (the export checks this itself and raises otherwise; here it is checked
again, independently, on a batch of a third shape); int8 graphs stay close to fp32; refusals are one clear
message; the model's own training flags survive the export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from bertology.compression.export import (  # noqa: E402
    ExportMismatchError,
    MissingExtra,
    export_onnx,
    random_inputs,
    read_sidecar,
    require,
)
from bertology.compression.onnx_quantization import quantize_onnx  # noqa: E402
from bertology.errors import ConfigError  # noqa: E402
from bertology.finetuning.model import HeadConfig, TaskModel  # noqa: E402
from bertology.inference.onnx_runtime import OnnxModel, OnnxTaskModel  # noqa: E402
from bertology.models import AlbertConfig, AmbertConfig, BertConfig, ChineseBertConfig, RobertaConfig  # noqa: E402
from bertology.models.family import FAMILIES  # noqa: E402

FAMILY_NAMES = ["bert", "albert", "roberta", "chinesebert", "ambert"]
TOLERANCE = 1e-4
HEADS = {
    "cls": HeadConfig(kind="classification", labels=["a", "b", "c"]),
    "multi": HeadConfig(kind="classification", labels=["a", "b", "c"], multi_label=True),
    "reg": HeadConfig(kind="regression", pooling="mean"),
    "tag": HeadConfig(kind="tagging", labels=["O", "B-X", "I-X"], layers="scalar_mix"),
    "qa": HeadConfig(kind="qa"),
    "mc": HeadConfig(kind="multiple_choice", pooling="max"),
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(family: str, **changes) -> BertConfig:
    sizes = dict(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=40)
    cls = {"bert": BertConfig, "albert": AlbertConfig, "roberta": RobertaConfig, "chinesebert": ChineseBertConfig,
           "ambert": AmbertConfig}[family]
    extra = {"ambert": {"coarse_vocab_size": 30}, "chinesebert": {"glyph_size": 8, "pinyin_embedding_dim": 16,
                                                                 "glyph_fonts": ["test-font"]}}.get(family, {})
    return cls(**{**sizes, **extra, **changes})


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():  # away from zero biases and unit norms, so a dropped tensor would show
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def _encoder(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cls = FAMILIES[family].encoder_class
    if family == "chinesebert":
        glyphs = np.random.RandomState(0).rand(50, 1, 8, 8).astype("float32")
        return _perturbed(cls(_config(family), glyphs=glyphs))
    return _perturbed(cls(_config(family)))


def _compare(model, path, inputs, task=None) -> None:
    """ORT against torch's default (packed) call, at real tokens for per-token outputs."""
    graph = OnnxModel(path)
    with torch.no_grad():
        if task is not None:
            expected = {"logits": model(**inputs, task=task).outputs["logits"]}
        elif graph.info.kind == "masked_lm":
            expected = {"logits": model(**inputs).logits}
        else:
            out = model(**inputs)
            expected = {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}
            if out.coarse is not None:
                expected["coarse_last_hidden_state"] = out.coarse.last_hidden_state
    got = graph.run(inputs)
    assert set(got) == {k for k, v in expected.items() if v is not None}
    for name, value in got.items():
        want = expected[name].numpy()
        assert value.shape == want.shape, name
        mask_key = "coarse_attention_mask" if name.startswith("coarse") else "attention_mask"
        mask = inputs[mask_key].bool().numpy()
        if name != "pooler_output" and value.shape[:mask.ndim] == mask.shape:
            value, want = value[mask], want[mask]
        assert np.abs(value - want).max() <= TOLERANCE, f"{name}: {np.abs(value - want).max():.3g}"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_family_encoder_matches_torch_on_new_shapes(family, tmp_path):
    model = _encoder(family).train()  # a training model: the export evaluates and gives the mode back
    info = export_onnx(model, tmp_path / "enc.onnx")
    assert model.training and all(m.training for m in model.modules()), "the export left the model in eval mode"
    assert info.check and max(info.check.values()) <= TOLERANCE
    sidecar = read_sidecar(tmp_path / "enc.onnx")
    assert sidecar.family == family and sidecar.kind == "encoder" and sidecar.opset == 17
    assert set(sidecar.inputs) <= {"input_ids", "attention_mask", "token_type_ids", *model.token_inputs}
    assert {"input_ids", "attention_mask", *model.token_inputs} <= set(sidecar.inputs)
    model.eval()
    _compare(model, tmp_path / "enc.onnx", random_inputs(model, 4, 21, seed=11))
    _compare(model, tmp_path / "enc.onnx", random_inputs(model, 1, 5, seed=12, padded=False))


@pytest.mark.parametrize(("family", "head"), [("bert", head) for head in HEADS] + [
    (family, head) for family in ("chinesebert", "ambert") for head in ("cls", "tag", "qa", "mc")])
def test_every_head_kind_matches_torch(family, head, tmp_path):
    model = TaskModel(_encoder(family), HEADS).eval()
    info = export_onnx(model, tmp_path / "task.onnx", task=head)
    assert info.outputs == ["logits"] and info.head["kind"] == HEADS[head].kind and info.task == head
    choices = 4 if head == "mc" else None
    _compare(model, tmp_path / "task.onnx", random_inputs(model, 3, 17, choices=choices, seed=21), task=head)
    onnx_model = OnnxTaskModel(OnnxModel(tmp_path / "task.onnx"))
    assert onnx_model.default_task == head and onnx_model.encoder.token_inputs == tuple(model.encoder.token_inputs)


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "chinesebert"])
def test_masked_lm_matches_torch(family, tmp_path):
    torch.manual_seed(0)
    model = _perturbed(FAMILIES[family].masked_lm_class(_config(family))).eval()
    info = export_onnx(model, tmp_path / "mlm.onnx")
    assert info.kind == "masked_lm" and info.outputs == ["logits"]
    _compare(model, tmp_path / "mlm.onnx", random_inputs(model, 2, 19, seed=31))


def test_forced_packing_is_set_aside_during_export_and_restored(tmp_path):
    model = _encoder("bert").eval()
    model.unpad_inputs = True
    export_onnx(model, tmp_path / "enc.onnx")
    assert model.unpad_inputs is True


def test_dynamic_int8_stays_close_to_fp32(tmp_path):
    model = TaskModel(_encoder("bert"), {"cls": HEADS["cls"]}).eval()
    export_onnx(model, tmp_path / "model.onnx")
    settings = quantize_onnx(tmp_path / "model.onnx", tmp_path / "model-int8.onnx", "dynamic")
    assert settings["mode"] == "dynamic" and read_sidecar(tmp_path / "model-int8.onnx").quantization == settings
    _close_to_fp32(model, tmp_path)


def test_static_int8_with_calibration_batches_stays_close_to_fp32(tmp_path):
    model = TaskModel(_encoder("bert"), {"cls": HEADS["cls"]}).eval()
    export_onnx(model, tmp_path / "model.onnx")
    calibration = [random_inputs(model, 8, 16, seed=s) for s in range(4)]
    settings = quantize_onnx(tmp_path / "model.onnx", tmp_path / "model-int8.onnx", "static", calibration=calibration)
    assert settings["calibration_batches"] == 4 and settings["format"] == "qoperator"
    _close_to_fp32(model, tmp_path)


def _close_to_fp32(model, folder) -> None:
    """Loose, stated tolerance for int8: logits' cosine similarity to fp32 above 0.99 per row, and the same
    argmax on at least 90% of rows (random weights put some rows near a tie)."""
    batch = random_inputs(model, 32, 16, seed=41)
    fp32 = OnnxModel(folder / "model.onnx").run(batch)["logits"]
    int8 = OnnxModel(folder / "model-int8.onnx").run(batch)["logits"]
    cosine = (fp32 * int8).sum(-1) / np.linalg.norm(fp32, axis=-1) / np.linalg.norm(int8, axis=-1)
    assert cosine.min() > 0.99, cosine.min()
    assert (fp32.argmax(-1) == int8.argmax(-1)).mean() >= 0.9


def test_quantize_refuses_bad_requests(tmp_path):
    with pytest.raises(ConfigError, match="no such ONNX file"):
        quantize_onnx(tmp_path / "none.onnx", tmp_path / "q.onnx")
    model = _encoder("bert").eval()
    export_onnx(model, tmp_path / "enc.onnx")
    with pytest.raises(ConfigError, match="mode must be one of"):
        quantize_onnx(tmp_path / "enc.onnx", tmp_path / "q.onnx", "fp4")
    with pytest.raises(ConfigError, match="needs calibration"):
        quantize_onnx(tmp_path / "enc.onnx", tmp_path / "q.onnx", "static")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch.ao's own deprecation
def test_torch_quantized_layers_are_refused_by_name(tmp_path):
    model = torch.ao.quantization.quantize_dynamic(_encoder("bert").eval(), {torch.nn.Linear}, dtype=torch.qint8)
    with pytest.raises(ConfigError, match=r"layer encoder\..*torch-quantized module.*--int8"):
        export_onnx(model, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


def test_half_weights_and_unknown_modules_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"torch.bfloat16; the export takes float32"):
        export_onnx(_encoder("bert").to(torch.bfloat16), tmp_path / "h.onnx")
    with pytest.raises(ConfigError, match="not a model bertology can export"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "l.onnx")
    with pytest.raises(ConfigError, match="must end in .onnx"):
        export_onnx(_encoder("bert"), tmp_path / "model.bin")
    with pytest.raises(ConfigError, match="no task 'nope'"):
        export_onnx(TaskModel(_encoder("bert"), {"cls": HEADS["cls"]}), tmp_path / "t.onnx", task="nope")


def test_a_mismatch_raises_and_leaves_no_file(tmp_path, monkeypatch):
    import bertology.compression.export as export

    model = _encoder("bert").eval()
    real = export._torch_outputs

    def shifted(*args, **kwargs):
        return {k: v + 1e-2 for k, v in real(*args, **kwargs).items()}

    monkeypatch.setattr(export, "_torch_outputs", shifted)
    with pytest.raises(ExportMismatchError, match=r"output 'last_hidden_state' differs from torch by 0\.01"):
        export_onnx(model, tmp_path / "enc.onnx")
    assert not (tmp_path / "enc.onnx").exists() and not (tmp_path / "enc.json").exists()


def test_a_missing_extra_names_the_extra():
    with pytest.raises(MissingExtra, match=r"pip install 'bertology\[export\]'"):
        require("onnxruntime_not_installed_here")
