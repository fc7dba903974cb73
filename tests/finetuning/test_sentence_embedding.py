"""The sentence_embedding task kind: InfoNCE with hard negatives by hand, its files, its metrics by hand,
and `bertology finetune` / `evaluate` / `predict` end to end on a tiny encoder."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

import bertology.finetuning.tasks.sentence_embedding  # noqa: F401  (registers the kind)
from bertology import load
from bertology.analysis.embeddings_eval import embed_texts, retrieval_scores
from bertology.cli.main import main
from bertology.errors import ConfigError, DataError
from bertology.finetuning.data import read_examples
from bertology.finetuning.examples import Example
from bertology.finetuning.tasks import task_kind
from bertology.finetuning.tasks.sentence_embedding import EMBEDDING_DIM, SentenceEmbeddingOptions
from bertology.tokenization import Tokenizer


def _kind(**options):
    return task_kind("sentence_embedding", SentenceEmbeddingOptions(**options))


def test_info_nce_with_hard_negatives_by_hand():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 3, 4, generator=g)  # (examples, [text, positive, negative], width)
    loss, metrics = _kind(temperature=0.5).loss(None, logits, {})
    keys = [logits[j, 1] for j in range(3)] + [logits[j, 2] for j in range(3)]  # positives, then hard negatives
    total, right = 0.0, 0
    for i in range(3):
        q = logits[i, 0]
        sims = [float(q @ k / (q.norm() * k.norm())) / 0.5 for k in keys]
        total += -(sims[i] - math.log(sum(math.exp(s) for s in sims)))
        right += int(np.argmax(sims) == i)
    assert loss.item() == pytest.approx(total / 3, abs=1e-5)
    assert metrics["accuracy"].item() == pytest.approx(right / 3)
    assert _kind().loss(None, logits[:, :1], {}) == (None, {})  # texts alone: nothing to contrast


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_rows_need_a_positive_and_the_same_columns(tmp_path):
    kind = _kind()
    good = _jsonl(tmp_path / "a.jsonl", [{"text": "x", "positive": "y", "negative": "z"}] * 2)
    examples = read_examples(good, kind).examples
    assert examples[0].text_pair == "y" and examples[0].choices == ["z"] and examples[0].label is None
    mixed = _jsonl(tmp_path / "b.jsonl", [{"text": "x", "positive": "y", "negative": "z"},
                                          {"text": "x", "positive": "y"}])
    with pytest.raises(DataError, match="every row needs the same columns"):
        read_examples(mixed, kind)
    assert len(read_examples(mixed, kind, on_error="skip").examples) == 1
    with pytest.raises(DataError, match="missing column 'positive'"):
        read_examples(_jsonl(tmp_path / "c.jsonl", [{"text": "x"}]), kind)
    alone = read_examples(_jsonl(tmp_path / "c.jsonl", [{"text": "x"}]), kind, require_labels=False).examples
    assert alone[0].text_pair is None  # a prediction file: texts to embed
    scored = read_examples(_jsonl(tmp_path / "d.jsonl", [{"text": "x", "positive": "y", "score": "2.5"}]), kind)
    assert scored.examples[0].label == 2.5
    with pytest.raises(ConfigError, match="temperature"):
        SentenceEmbeddingOptions(temperature=0).validate()


def test_metrics_by_hand():
    kind = _kind(k=2)
    rows = [np.array([[1.0, 0.0], [1.0, 0.1]]), np.array([[0.0, 1.0], [-1.0, 0.0]]),
            np.array([[1.0, 1.0], [0.0, 1.0]])]
    predictions = kind.decode(None, "dev", rows)
    assert predictions[1]["cosine"] == pytest.approx(0.0) and "negative" not in predictions[0]
    examples = [Example(text=t, text_pair=p) for t, p in (("a", "A"), ("b", "B"), ("c", "C"))]
    task = SimpleNamespace(examples={"dev": examples})
    # each text ranks the 3 positives: ranks 1, 3, 2 (see tests/analysis/test_embeddings_eval.py)
    assert kind.metrics(task, "dev", predictions) == pytest.approx(
        {"acc@1": 1 / 3, "acc@2": 2 / 3, "mrr": (1 + 1 / 3 + 1 / 2) / 3, "candidates": 3.0})
    # a positive shared by two rows is one candidate, the right answer of both
    shared = [Example(text="a", text_pair="A"), Example(text="b", text_pair="A"), Example(text="c", text_pair="C")]
    assert kind.metrics(SimpleNamespace(examples={"dev": shared}), "dev", predictions)["candidates"] == 2.0
    scored = [Example(text=t, text_pair=t, label=s) for t, s in (("a", 3.0), ("b", 1.0), ("c", 2.0))]
    # cosines 0.995, 0, 0.707: the same order as the scores
    spearman = kind.metrics(SimpleNamespace(examples={"dev": scored}), "dev", predictions)
    assert spearman == {"spearman": pytest.approx(1.0)}


A = ["cat", "dog", "john", "fox", "mat", "city", "paris", "york"]
B = ["red", "new", "sat", "who"]


def _pairs(root: Path) -> None:
    """Text "a b", its positive a sentence holding both words; the hard negative shares only "a"."""
    rng = random.Random(0)
    concepts = [(a, b) for a in A for b in B]

    def sentence(a, b):
        words = [rng.choice(["the", "a", "is", "on", "in"]) for _ in range(4)]
        words.insert(rng.randrange(5), a)
        words.insert(rng.randrange(6), b)
        return " ".join(words)

    train = [{"text": f"{a} {b}", "positive": sentence(a, b),
              "negative": sentence(a, rng.choice([x for x in B if x != b]))} for _ in range(4) for a, b in concepts]
    _jsonl(root / "train.jsonl", train)
    _jsonl(root / "dev.jsonl", [{"text": f"{a} {b}", "positive": sentence(a, b)} for a, b in concepts])
    _jsonl(root / "scored.jsonl", [{"text": f"{a} {b}", "positive": sentence(a, rng.choice(B)), "score": 1.0 * i}
                                   for i, (a, b) in enumerate(concepts[:12])])


def test_finetune_evaluate_predict_end_to_end(workspace, tmp_path):
    _pairs(tmp_path / "se")
    rows = [json.loads(line) for line in (tmp_path / "se" / "dev.jsonl").read_text().splitlines()]
    encoder, tok = load(workspace / "enc"), Tokenizer.from_pretrained(workspace / "enc")
    before = retrieval_scores(embed_texts(encoder, tok, [r["text"] for r in rows]),
                              embed_texts(encoder, tok, [r["positive"] for r in rows]), list(range(len(rows))))
    task = {"kind": "sentence_embedding", "train": str(tmp_path / "se" / "train.jsonl"),
            "dev": str(tmp_path / "se" / "dev.jsonl"), "test": str(tmp_path / "se" / "scored.jsonl"),
            "max_length": 16, "head": {"pooling": "mean"}, "temperature": 0.05}
    config = {"model": str(workspace / "enc"), "run_dir": str(tmp_path / "run"), "tasks": {"se": task},
              "train": {"epochs": 4, "batch_size": 16, "learning_rate": 3e-3, "progress": False, "plot": False}}
    path = tmp_path / "se.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["finetune", str(path)]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    dev = next(r for r in results if r["split"] == "dev")
    test = next(r for r in results if r["split"] == "test")
    assert dev["candidates"] == 32 and dev["mrr"] > before["mrr"] and dev["acc@1"] >= 0.8, (dev, before)
    assert -1 <= test["spearman"] <= 1
    model = tmp_path / "run" / "model"
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(model), str(tmp_path / "se" / "dev.jsonl"), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["mrr"] == pytest.approx(dev["mrr"], abs=1e-6)
    texts = _jsonl(tmp_path / "texts.jsonl", [{"text": "cat red"}, {"text": "dog new"}])
    assert main(["predict", str(model), str(texts), "-o", str(tmp_path / "pred.jsonl")]) == 0
    predictions = [json.loads(line)["prediction"] for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(predictions) == 2 and len(predictions[0]["embedding"]) == EMBEDDING_DIM


def test_bad_kind_options_are_named_before_training(workspace, tmp_path, capsys):
    _pairs(tmp_path / "se")
    task = {"kind": "sentence_embedding", "train": str(tmp_path / "se" / "train.jsonl"), "temprature": 0.1}
    for name, fields in (("typo", task), ("zero", {**task, "temprature": None, "temperature": 0.0}),
                         ("max", {**task, "temprature": None, "head": {"pooling": "max"}})):
        fields = {k: v for k, v in fields.items() if v is not None}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"model": str(workspace / "enc"), "run_dir": str(tmp_path / name),
                                        "tasks": {"se": fields}}), encoding="utf-8")
        assert main(["finetune", str(path)]) == 2
        assert not (tmp_path / name / "model").exists()
    err = capsys.readouterr().err
    assert "unknown field 'temprature'; did you mean 'temperature'?" in err
    assert "field 'temperature' must be positive" in err and "kind 'sentence_embedding' pools with cls or mean" in err
