"""Batching by length (bucketing) in prediction, evaluation and embedding: the same numbers as input-order
batches, back in input order, with less padding; `--no-bucket` turns it off."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import bertology.finetuning.predict as predict_module
from bertology.cli.main import main
from bertology.finetuning.predict import task_logits, task_predictions
from bertology.inference import SentenceEncoder
from bertology.runs.finetune import Finetuning, finetune_config

FILLER = ["the", "a", "is", "on", "mat", "sat", "red"]


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _data(root: Path) -> dict[str, dict]:
    """Task files whose rows alternate short and long, so input-order batches mix lengths."""
    rng = random.Random(1)
    lengths = [1 + (i * 7) % 15 for i in range(24)]  # 1..15 words, interleaved
    cls = [{"text": " ".join([rng.choice(["cat", "dog"])] + rng.choices(FILLER, k=n)),
            "label": rng.choice(["cat", "dog"])} for n in lengths]
    sentences = []
    for n in lengths[:16]:
        words = [rng.choice(["john", "paris", "the", "sat", "in"]) for _ in range(n)]
        tags = ["B-PER" if w == "john" else "B-LOC" if w == "paris" else "O" for w in words]
        sentences.append("\n".join(f"{w}\t{t}" for w, t in zip(words, tags, strict=True)) + "\n")
    (root / "ner.conll").write_text("\n".join(sentences), encoding="utf-8")
    qa = []
    for i, n in enumerate(lengths[:12]):  # short contexts fit one window, long ones take several
        before = " ".join(rng.choices(["the", "cat", "sat", "on", "a", "mat"], k=n))
        context = f"{before} john is in paris . the dog sat"
        qa.append({"id": str(i), "context": context, "question": "where is john ?",
                   "answers": [{"text": "paris", "answer_start": context.index("in paris") + 3}]})
    mc = []
    for n in lengths[:16]:  # each example's longest choice sets its padded width
        choices = ["the cat sat", "a dog", " ".join(["the"] + rng.choices(FILLER, k=n))]
        mc.append({"question": "who sat ?", "choices": choices, "label": rng.randrange(3)})
    cls_path = _jsonl(root / "cls.jsonl", cls)
    qa_path = _jsonl(root / "qa.jsonl", qa)
    mc_path = _jsonl(root / "mc.jsonl", mc)
    ner_path = str(root / "ner.conll")
    return {
        "cls": {"kind": "classification", "train": cls_path, "dev": cls_path, "max_length": 32},
        "ner": {"kind": "tagging", "train": ner_path, "dev": ner_path},
        "qa": {"kind": "qa", "train": qa_path, "dev": qa_path, "max_length": 24, "doc_stride": 8,
               "max_query_length": 8},
        "mc": {"kind": "multiple_choice", "train": mc_path, "dev": mc_path, "max_length": 32},
    }


@pytest.fixture(scope="module")
def built(workspace, tmp_path_factory) -> tuple[Finetuning, Path]:
    """One untrained model with a head per task kind, built as a fine-tuning run builds it, and saved."""
    root = tmp_path_factory.mktemp("bucketing")
    config = finetune_config({"model": str(workspace / "enc"), "run_dir": str(root / "run"), "tasks": _data(root),
                              "train": {"progress": False, "plot": False}})
    job = Finetuning(config)
    job.model.eval()
    job.model.save_pretrained(root / "model")
    job.tokenizer.save_pretrained(root / "model" / "tokenizer")
    return job, root


def _recording(collate, widths: list[tuple[int, int]]):
    """`collate` that notes each batch's padded width and padded token count."""
    def wrapped(features):
        batch = collate(features)
        ids = batch["input_ids"]
        widths.append((ids.shape[-1], ids.numel()))
        return batch
    return wrapped


@pytest.mark.parametrize("name", ["cls", "ner", "qa", "mc"])
def test_bucketed_predictions_equal_input_order_ones_with_less_padding(built, name):
    job, _ = built
    task, collate = job.tasks[name], job.collators[name]
    features = task.features["dev"]
    reference = task_logits(job.model, name, features, collate, batch_size=1, bucket=False)  # no padding at all
    plain: list[tuple[int, int]] = []
    bucketed: list[tuple[int, int]] = []
    unsorted = task_logits(job.model, name, features, _recording(collate, plain), batch_size=4, bucket=False)
    sorted_ = task_logits(job.model, name, features, _recording(collate, bucketed), batch_size=4)
    assert len(sorted_) == len(unsorted) == len(reference) == len(features)
    for feature, ref, a, b in zip(features, reference, unsorted, sorted_, strict=True):
        assert a.shape == b.shape == ref.shape
        if ref.ndim == 2 and name != "mc":  # token level: one row per real token of this very feature
            assert ref.shape[0] == len(feature["input_ids"])
        np.testing.assert_allclose(b, ref, atol=1e-5)
        np.testing.assert_allclose(b, a, atol=1e-5)
    assert [w for w, _ in bucketed] == sorted((w for w, _ in bucketed), reverse=True)  # longest first
    assert sum(n for _, n in bucketed) < sum(n for _, n in plain)
    if name == "qa":
        assert len(features) > len(task.examples["dev"])  # several windows for some questions
    assert (task_predictions(job.model, task, "dev", collate, batch_size=4, progress=False)
            == task_predictions(job.model, task, "dev", collate, batch_size=4, progress=False, bucket=False))


def _batches_spy(monkeypatch) -> list[bool]:
    seen: list[bool] = []
    original = predict_module._batches

    def spy(features, batch_size, bucket=True):
        seen.append(bucket)
        return original(features, batch_size, bucket)
    monkeypatch.setattr(predict_module, "_batches", spy)
    return seen


@pytest.mark.parametrize("name", ["ner", "mc"])
def test_predict_and_evaluate_no_bucket_flag(built, name, tmp_path, monkeypatch, capsys):
    job, root = built
    data = job.config.tasks[name].dev
    seen = _batches_spy(monkeypatch)
    outputs = {}
    for flags in ([], ["--no-bucket"]):
        out = tmp_path / f"p{len(flags)}.jsonl"
        assert main(["predict", str(root / "model"), data, "--task", name, "-o", str(out), "--batch-size", "3",
                     *flags]) == 0
        outputs[len(flags)] = [json.loads(line) for line in out.open()]
        metrics = tmp_path / f"m{len(flags)}.json"
        assert main(["evaluate", str(root / "model"), data, "--task", name, "-o", str(metrics),
                     "--batch-size", "3", *flags]) == 0
        outputs[f"m{len(flags)}"] = json.loads(metrics.read_text())
    assert seen == [True, True, False, False]
    assert outputs[0] == outputs[1]
    lines = [int(r["source"].rsplit(":", 1)[1]) for r in outputs[0]]
    assert lines == sorted(lines) and len(lines) == 16  # one row per example, in the file's order
    assert outputs["m0"] == pytest.approx(outputs["m1"])


def test_embed_no_bucket_flag(workspace, tmp_path, monkeypatch):
    lines = [" ".join(["the"] * (1 + (i * 5) % 11)) + " cat" for i in range(13)]
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen: list[bool] = []
    original = SentenceEncoder._batches

    def spy(self, texts, bucket):
        seen.append(bucket)
        return original(self, texts, bucket)
    monkeypatch.setattr(SentenceEncoder, "_batches", spy)
    vectors = []
    for flags in ([], ["--no-bucket"]):
        out = tmp_path / f"e{len(flags)}.npy"
        assert main(["embed", "--model", str(workspace / "enc"), str(source), "-o", str(out), "--batch-size", "4",
                     *flags]) == 0
        vectors.append(np.load(out))
    assert seen == [True, False]
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)
    one_by_one = SentenceEncoder.from_pretrained(str(workspace / "enc"), batch_size=1, device="cpu").encode(lines)
    np.testing.assert_allclose(vectors[0], one_by_one, atol=1e-5)  # in input order
