"""Fill-mask and embeddings of a masked-LM folder, adapters over a shared encoder, and the CLI's errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bertology.cli.main as cli_main
from bertology.serving.app import create_app
from bertology.serving.handlers import build_service


def test_fill_mask_and_embed_of_a_masked_lm_folder(toy_mlm, serve, client_for):
    from bertology.analysis.cloze import fill_mask
    from bertology.models import load
    from bertology.runs.probe import load_folder_tokenizer

    client = client_for(serve(create_app(build_service(str(toy_mlm)))))
    reply = client.post("/v1/fill-mask", json={"texts": ["the [MASK] sat on the [MASK]", "a [MASK]"], "top_k": 3})
    assert reply.status_code == 200
    results = reply.json()["results"]
    assert [len(r) for r in results] == [2, 1] and all(len(m) == 3 for r in results for m in r)
    expected = fill_mask(load(toy_mlm), load_folder_tokenizer(str(toy_mlm)), "a [MASK]", 3)[0]
    assert [f["token"] for f in results[1][0]] == [t for t, _ in expected]
    assert results[1][0][0]["probability"] == pytest.approx(expected[0][1], rel=1e-4)
    no_mask = client.post("/v1/fill-mask", json={"texts": ["a cat", "the cat"]})
    assert no_mask.status_code == 422 and "'texts[0]' holds no [MASK]" in no_mask.json()["detail"]
    assert len(client.post("/v1/embed", json={"texts": ["the cat"]}).json()["embeddings"][0]) == 32
    assert client.post("/v1/classify", json={"texts": ["cat"]}).status_code == 404


ENTRY = "import sys, bertology.cli.main as m; sys.exit(m.main())"


@pytest.fixture
def main():
    return cli_main.main


def _adapter_folder(base: Path, out: Path, seed: int) -> Path:
    from bertology.finetuning.model import HeadConfig, TaskModel
    from bertology.finetuning.peft import PeftConfig, add_adapter
    from bertology.models import load

    torch.manual_seed(seed)
    encoder = load(base)
    add_adapter(encoder, "animal", PeftConfig(kind="lora", rank=4))
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if "lora" in name.lower() or ".B" in name or name.endswith("up.weight"):
                parameter.normal_(0, 0.5)
    model = TaskModel(encoder, {"animal": HeadConfig(kind="classification", labels=["cat", "dog"])})
    model.save_encoder, model.base_path = False, str(base)
    model.task_options = {"animal": {"max_length": 16}}
    return model.save_pretrained(out)


def test_adapters_over_one_shared_encoder(toy_mlm, tmp_path, serve, client_for):
    one = _adapter_folder(toy_mlm, tmp_path / "one", 1)
    two = _adapter_folder(toy_mlm, tmp_path / "two", 2)
    service = build_service(str(toy_mlm), adapters=[("one", str(one)), ("two", str(two))])
    client = client_for(serve(create_app(service)))
    texts = ["the cat sat", "a dog is red"]
    first = client.post("/v1/classify", json={"texts": texts, "adapter": "one"}).json()["results"]
    second = client.post("/v1/classify", json={"texts": texts, "adapter": "two"}).json()["results"]
    assert first[0]["probabilities"]["cat"] != pytest.approx(second[0]["probabilities"]["cat"], abs=1e-4)
    again = client.post("/v1/classify", json={"texts": texts, "adapter": "one"}).json()["results"]
    assert again[0]["probabilities"]["cat"] == pytest.approx(first[0]["probabilities"]["cat"], abs=1e-5)
    unknown = client.post("/v1/classify", json={"texts": texts, "adapter": "three"})
    assert unknown.status_code == 422 and "known adapters: ['one', 'two']" in unknown.json()["detail"]


def test_cli_refuses_a_folder_that_supports_nothing(main, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a model", encoding="utf-8")
    assert main(["serve", str(tmp_path), "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bertology serve: error:") and "supports nothing to serve" in err and "\n" not in err
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "no such model folder" in capsys.readouterr().err


def test_cli_onnx_refuses_fill_mask_at_start(main, toy_mlm, capsys):
    assert main(["serve", str(toy_mlm), "--backend", "onnx"]) == 2
    assert "fill-mask cannot run on the onnx backend" in capsys.readouterr().err


def test_cli_serves_and_exits_zero_on_sigterm(toy_classifier):
    import signal
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", ENTRY, "serve", str(toy_classifier),
                                "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.1)
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/classify", json={"texts": ["the cat"]}, timeout=10)
        assert reply.json()["results"][0]["label"] in ("cat", "dog")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_cli_port_in_use_is_one_line_error(main, toy_classifier, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(toy_classifier), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"cannot listen on 127.0.0.1:{port}" in err and "pick another --port" in err
    assert main(["serve", str(toy_classifier), "--host", "no-such-host.invalid"]) == 2
    assert "--host no-such-host.invalid: cannot resolve it" in capsys.readouterr().err
