"""`bertology export` end to end on a toy fine-tuned classifier: the graph, its sidecar, int8, the report;
`evaluate`/`predict --backend onnx` on the export and on the model folder (through its cache) give torch's
accuracy and predictions; `embed --backend onnx` gives torch's vectors; bad input is one clear message."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from bertology.cli import export as export_cli  # noqa: E402
from bertology.cli.main import main  # noqa: E402
from bertology.errors import ConfigError  # noqa: E402
from bertology.inference.onnx_runtime import cache_for  # noqa: E402

QUICK = {"batch_size": 8, "learning_rate": 1e-3, "progress": False, "plot": False, "log_every": 2}


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, fine_tune_toy) -> Path:
    """A fine-tuned toy classifier (2 layers, width 32) and its task files."""
    return fine_tune_toy(tmp_path_factory.mktemp("export"), "ft", 8)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bertology")
    export_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["export", *argv])


def _accuracy(capsys, *argv: str, out: Path) -> float:
    assert main(["evaluate", *argv, "-o", str(out)]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())["accuracy"]


def test_export_int8_report_and_onnx_backend_agree_with_torch(fine_tuned, capsys):
    model, out, test = fine_tuned / "ft" / "model", fine_tuned / "exported", fine_tuned / "cls" / "test.jsonl"
    args = _parse(str(model), str(out), "--int8", "static", "--calibration", str(fine_tuned / "cls/train.jsonl"),
                  "--test", str(test))
    assert export_cli.run(args) == 0
    printed = capsys.readouterr().out
    assert "onnx int8 static" in printed and "largest difference to torch" in printed
    for name in ("model.onnx", "model.json", "model-int8.onnx", "model-int8.json", "report.md", "results.json",
                 "tokenizer"):
        assert (out / name).exists(), name
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["kind"] == "task" and sidecar["task"] == "animal" and sidecar["tokenizer"] == "tokenizer"
    assert sidecar["inputs"] == ["input_ids", "attention_mask", "token_type_ids"] and sidecar["head"]["labels"]
    results = json.loads((out / "results.json").read_text())
    variants = {v["name"]: v for v in results["variants"]}
    assert set(variants) == {"torch", "onnx fp32", "onnx int8 static"}
    for v in variants.values():
        assert v["latency_ms"] > 0 and v["tokens_per_s"] > 0 and v["metric_name"] == "test accuracy"
    assert variants["onnx fp32"]["metric"] == variants["torch"]["metric"]

    torch_acc = _accuracy(capsys, str(model), str(test), out=fine_tuned / "t.json")
    assert _accuracy(capsys, str(out), str(test), "--backend", "onnx", out=fine_tuned / "o.json") == torch_acc
    # a fine-tuned folder with --backend onnx: exported into its cache on first use, reused after
    assert _accuracy(capsys, str(model), str(test), "--backend", "onnx", out=fine_tuned / "c.json") == torch_acc
    cached = cache_for(model) / "animal.onnx"
    assert not (model / "onnx").exists()  # the model folder is left as it was
    assert cached.is_file()
    stamp = cached.stat().st_mtime_ns
    assert _accuracy(capsys, str(model), str(test), "--backend", "onnx", out=fine_tuned / "c.json") == torch_acc
    assert cached.stat().st_mtime_ns == stamp, "an up-to-date cache was exported again"
    int8_acc = _accuracy(capsys, str(out / "model-int8.onnx"), str(test), "--backend", "onnx",
                         out=fine_tuned / "q.json")
    assert abs(int8_acc - torch_acc) <= 0.1

    for backend, where in (("torch", model), ("onnx", out)):
        assert main(["predict", str(where), str(test), "-o", str(fine_tuned / f"{backend}.jsonl"),
                     "--backend", backend]) == 0
    rows = {b: [json.loads(line)["prediction"] for line in (fine_tuned / f"{b}.jsonl").read_text().splitlines()]
            for b in ("torch", "onnx")}
    assert rows["torch"] == rows["onnx"]


def test_embed_onnx_backend_gives_torch_vectors(fine_tuned, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat on the mat\na dog\nnew york is a city\n", encoding="utf-8")
    encoder = fine_tuned / "enc"
    for backend in ("torch", "onnx"):
        assert main(["embed", "--model", str(encoder), str(texts), "-o", str(tmp_path / f"{backend}.npy"),
                     "--backend", backend]) == 0
    capsys.readouterr()
    assert (cache_for(encoder) / "encoder.onnx").is_file()
    np.testing.assert_allclose(np.load(tmp_path / "onnx.npy"), np.load(tmp_path / "torch.npy"), atol=1e-4)


def test_bad_input_is_one_clear_message(fine_tuned, tmp_path, capsys):
    with pytest.raises(ConfigError, match="no such model folder"):
        export_cli.run(_parse(str(tmp_path / "missing"), str(tmp_path / "out")))
    with pytest.raises(ConfigError, match="neither a fine-tuned model folder"):
        export_cli.run(_parse(str(tmp_path), str(tmp_path / "out")))
    with pytest.raises(ConfigError, match="--int8 static needs --calibration"):
        export_cli.run(_parse(str(fine_tuned / "ft" / "model"), str(tmp_path / "out"), "--int8", "static"))
    assert main(["evaluate", str(tmp_path), str(fine_tuned / "cls/test.jsonl"), "--backend", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a fine-tuned model folder (task.json) nor an export folder" in err
    assert main(["evaluate", str(fine_tuned / "ft" / "model"), str(fine_tuned / "cls/test.jsonl"), "--backend",
                 "onnx", "--device", "cuda"]) == 2
    assert "error:" in capsys.readouterr().err
