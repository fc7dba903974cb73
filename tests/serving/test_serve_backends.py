"""Token tagging and extractive QA over HTTP, and the same classifier on the bf16, int8 and onnxruntime back
ends: every answer the service gives equals what the offline predictor (`bertology predict`) says."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertology.cli.main import main
from bertology.finetuning.examples import Example
from bertology.finetuning.session import load_for_inference
from bertology.runs.finetune import Finetuning, finetune_config
from bertology.serving.app import create_app
from bertology.serving.handlers import build_service

QUICK = {"batch_size": 8, "learning_rate": 1e-3, "progress": False, "plot": False, "log_every": 2}


@pytest.fixture(scope="module")
def root(tmp_path_factory, fine_tune_toy) -> Path:
    """The toy workspace with a classifier (run/), a tagger (tag/) and an extractive QA model (qa/)."""
    root = fine_tune_toy(tmp_path_factory.mktemp("serve-heads"), "run", 6)
    for name, task in (("tag", {"kind": "tagging", "train": str(root / "ner/train.conll")}),
                       ("qa", {"kind": "qa", "train": str(root / "qa/train.jsonl"), "max_length": 32,
                               "doc_stride": 16, "max_query_length": 8})):
        config = finetune_config({"model": str(root / "enc"), "run_dir": str(root / name), "tasks": {name: task},
                                  "train": {**QUICK, "epochs": 3}})
        Finetuning(config).run()
    return root


def _offline(folder: Path, examples: list[Example], **options) -> list:
    """What the offline predictor says for `examples` (the session `bertology predict` loads)."""
    return load_for_inference(folder, **options).predict_examples(examples)[0]


def test_tag_endpoint_tags_every_word_as_the_offline_predictor(root, serve, client_for):
    client = client_for(serve(create_app(build_service(str(root / "tag" / "model")))))
    texts = ["john is in new york", "the cat sat on a mat in paris", "john"]
    reply = client.post("/v1/tag", json={"texts": texts})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["tokens"] for r in results] == [t.split() for t in texts]
    assert [r["tags"] for r in results] == [list(t) for t in _offline(root / "tag" / "model",
                                                                        [Example(text=t.split()) for t in texts])]
    assert {tag for r in results for tag in r["tags"]} <= {"O", "B-PER", "B-LOC", "I-LOC"}
    assert client.post("/v1/classify", json={"texts": texts}).status_code == 404


def test_qa_endpoint_answers_with_a_span_of_the_context(root, serve, client_for):
    client = client_for(serve(create_app(build_service(str(root / "qa" / "model")))))
    items = [{"question": "where is john ?", "context": "the cat sat john is in paris . the dog sat"},
             {"question": "where is john ?", "context": "a mat " * 12 + "john is in new york . the dog sat"}]
    answers = []
    for item in items:
        reply = client.post("/v1/qa", json=item)
        assert reply.status_code == 200, reply.text
        answers.append(reply.json()["answer"])
    expected = _offline(root / "qa" / "model", [Example(text=i["context"], text_pair=i["question"]) for i in items])
    assert answers == list(expected)
    assert all(a in i["context"] for a, i in zip(answers, items, strict=True))
    assert client.post("/v1/qa", json={"texts": ["no question here"]}).status_code == 422
    assert client.post("/v1/qa", json={"question": "q", "context": "x" * 5000}).status_code == 422


def _probabilities(client, texts: list[str]) -> list[dict[str, float]]:
    reply = client.post("/v1/classify", json={"texts": texts})
    assert reply.status_code == 200, reply.text
    return [r["probabilities"] for r in reply.json()["results"]]


TEXTS = ["the cat sat on a mat", "a dog is red", "the red dog sat", "cat"]


def test_bf16_backend_stays_close_to_float32(root, serve, client_for):
    folder = str(root / "run" / "model")
    fp32 = _probabilities(client_for(serve(create_app(build_service(folder)))), TEXTS)
    bf16 = _probabilities(client_for(serve(create_app(build_service(folder, bf16=True)))), TEXTS)
    for a, b in zip(fp32, bf16, strict=True):
        assert a["cat"] == pytest.approx(b["cat"], abs=0.03)


def test_int8_folder_is_served_as_the_offline_int8_model(root, tmp_path, serve, client_for):
    run = tmp_path / "int8"
    assert main(["quantize", str(root / "run" / "model"), str(run), "--no-speed"]) == 0
    served = _probabilities(client_for(serve(create_app(build_service(str(run / "model"))))), TEXTS)
    session = load_for_inference(run / "model")
    offline = _offline(run / "model", [Example(text=t) for t in TEXTS])
    assert [max(p, key=p.get) for p in served] == list(offline)
    assert session.model.encoder.quantization["method"] == "dynamic"  # it really ran the int8 model


def test_onnx_backend_matches_torch(root, serve, client_for):
    pytest.importorskip("onnxruntime")
    folder = str(root / "run" / "model")
    torch_probs = _probabilities(client_for(serve(create_app(build_service(folder)))), TEXTS)
    service = build_service(folder, backend="onnx")
    assert "embed" not in service.handlers  # an exported classifier holds no embedding endpoint
    onnx_probs = _probabilities(client_for(serve(create_app(service))), TEXTS)
    for a, b in zip(torch_probs, onnx_probs, strict=True):
        assert a["cat"] == pytest.approx(b["cat"], abs=1e-4)
