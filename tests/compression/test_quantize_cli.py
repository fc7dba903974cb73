"""`bertology quantize` end to end on a toy fine-tuned classifier: every method writes an int8 model that
`evaluate` reads with the score the report gives, and the report compares it with the original."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertology.cli.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fine_tune_toy) -> Path:
    return fine_tune_toy(tmp_path_factory.mktemp("quantize"), "ft", 12)


@pytest.mark.parametrize("method,extra", [
    ("dynamic", ["--embeddings"]),
    ("static", ["--calibration", "cls/train.jsonl"]),
    ("qat", ["--train", "cls/train.jsonl", "--epochs", "1", "--learning-rate", "1e-4"]),
])
def test_quantize_writes_an_int8_model_that_evaluate_reads(trained, method, extra, tmp_path):
    extra = [str(trained / e) if e.endswith(".jsonl") else e for e in extra]
    run = tmp_path / method
    code = main(["quantize", str(trained / "ft" / "model"), str(run), "--method", method, "--test",
                 str(trained / "cls/test.jsonl"), "--no-speed", *extra])
    assert code == 0
    quantization = json.loads((run / "model" / "encoder" / "quantization.json").read_text())
    assert quantization["method"] == method
    results = json.loads((run / "results.json").read_text())
    variants = {v["name"]: v for v in results["variants"]}
    assert set(variants) == {"original", method}
    assert variants[method]["size_bytes"] < variants["original"]["size_bytes"]
    out = tmp_path / f"{method}.json"
    assert main(["evaluate", str(run / "model"), str(trained / "cls/test.jsonl"), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(variants[method]["metric"])
    assert variants["original"]["metric"] - variants[method]["metric"] <= 0.1  # a toy task: int8 keeps it
    if method == "qat":
        assert (run / "qat" / "config.yaml").is_file() and (run / "qat" / "model" / "task.json").is_file()


def test_quantize_refuses_before_writing(trained, tmp_path, capsys):
    model = str(trained / "ft" / "model")
    assert main(["quantize", model, str(tmp_path / "a"), "--method", "static"]) == 2
    assert "calibrates on real texts" in capsys.readouterr().err
    assert main(["quantize", model, str(tmp_path / "b"), "--method", "qat"]) == 2
    assert "give --train FILE" in capsys.readouterr().err
    assert main(["quantize", str(trained / "enc"), str(tmp_path / "c")]) == 2
    assert "not a fine-tuned model folder" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abc")
    run = tmp_path / "d"
    assert main(["quantize", model, str(run), "--no-speed"]) == 0
    assert main(["quantize", model, str(run), "--no-speed"]) == 2  # the folder holds a run
    assert "already holds another run" in capsys.readouterr().err
    assert main(["quantize", model, str(run), "--no-speed", "--overwrite"]) == 0
