"""`bertology distill` end to end on a toy task: a fine-tuned teacher, a smaller student through both TinyBERT
phases, the report, reuse of the model folder; general distillation and DistilBERT on a tiny corpus; and the
mistakes that must stop a run before it trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bertology.cli.main import main
from bertology.errors import ConfigError, DataError
from bertology.finetuning.model import TaskModel
from bertology.runs.distill import Distilling, load_config

QUICK = {"batch_size": 8, "learning_rate": 1e-3, "progress": False, "plot": False, "log_every": 2}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, fine_tune_toy) -> Path:
    """A fine-tuned toy classifier (2 layers, width 32) and its task files."""
    return fine_tune_toy(tmp_path_factory.mktemp("distill"), "teacher", 12)


def _write(root: Path, name: str, **fields) -> Path:
    config = {"method": "tinybert", "stage": "task", "teacher": str(root / "teacher" / "model"),
              "student": {"init": "random", "size": {"num_hidden_layers": 1, "hidden_size": 16,
                                                      "num_attention_heads": 2, "intermediate_size": 32}},
              "task": {"train": str(root / "cls/train.jsonl"), "test": str(root / "cls/test.jsonl"), "max_length": 16},
              "phase_train": {"intermediate": {"epochs": 4}, "prediction": {"epochs": 8}},
              "run_dir": str(root / "runs" / name), "train": QUICK, **fields}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_task_distillation_runs_both_phases_and_reports(teacher):
    assert main(["distill", str(_write(teacher, "task"))]) == 0
    run = teacher / "runs" / "task"
    for phase in ("phase1-intermediate", "phase2-prediction"):
        rows = [json.loads(line) for line in (run / phase / "metrics.jsonl").read_text().splitlines()]
        assert rows and all(r["loss"] == r["loss"] for r in rows)
    merged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in merged] == sorted((r["phase"] for r in merged), key=["intermediate", "prediction"].index)
    train_steps = [r["step"] for r in merged if r["split"] == "train"]
    assert train_steps == sorted(set(train_steps)), "steps count across phases"
    assert (run / "config.yaml").is_file()
    first = [json.loads(line) for line in (run / "phase1-intermediate" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/embedding", "loss/attention", "loss/hidden"} <= set(first[0])
    assert first[-1]["loss"] < first[0]["loss"], "the intermediate losses did not go down"
    student = TaskModel.from_pretrained(run / "model")
    assert student.encoder.config.num_hidden_layers == 1 and student.encoder.config.hidden_size == 16
    summary = json.loads((run / "distill_summary.json").read_text())
    assert summary["student_parameters"] < summary["teacher_parameters"]
    results = json.loads((run / "results.json").read_text())
    names = [v["name"] for v in results["variants"]]
    assert names == ["teacher", "student"]
    assert (run / "report.md").read_text().count("| student") == 1
    # the student folder is a fine-tuned model like any other: `evaluate` reads it
    assert main(["distill", str(_write(teacher, "task"))]) == 2  # the folder holds this run: not silently redone
    out = teacher / "student-metrics.json"
    assert main(["evaluate", str(run / "model"), str(teacher / "cls/test.jsonl"), "-o", str(out)]) == 0
    assert 0.0 <= json.loads(out.read_text())["accuracy"] <= 1.0


def test_a_layer_map_naming_a_missing_teacher_layer_stops_before_training(teacher, capsys):
    path = _write(teacher, "badmap", layer_map=[5])
    assert main(["distill", str(path)]) == 2
    err = capsys.readouterr().err
    assert "layer map" in err and "teacher has 2 layers" in err
    assert not (teacher / "runs" / "badmap").exists()


def test_labels_the_teacher_does_not_know_stop_before_training(teacher, tmp_path):
    rows = [json.loads(line) for line in (teacher / "cls/train.jsonl").read_text().splitlines()]
    rows[0]["label"] = "fox"
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = load_config(_write(teacher, "badlabels", task={"train": str(other)}))
    with pytest.raises(DataError, match="teacher's head does not list label\\(s\\) used in .*'fox'"):
        Distilling(config)


def test_a_student_with_another_vocabulary_is_refused(teacher, tmp_path):
    from bertology import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "other")
    config = load_config(_write(teacher, "badvocab", student={"init": "pretrained", "model": str(tmp_path / "other")}))
    with pytest.raises(ConfigError, match="vocabulary of 99 tokens"):
        Distilling(config)


def test_a_teacher_that_is_not_fine_tuned_is_refused_for_task_distillation(teacher):
    config = load_config(_write(teacher, "notfinetuned", teacher=str(teacher / "enc")))
    with pytest.raises(ConfigError, match="not a fine-tuned model folder"):
        Distilling(config)


def test_recipes_are_listed_and_parse():
    from bertology.runs.config import recipe_names
    from bertology.runs.distill import RECIPE_FOLDER

    assert recipe_names(RECIPE_FOLDER) == ["distilbert", "tinybert-general", "tinybert-task"]
    assert "tinybert-task" not in recipe_names()  # not a pretraining recipe
    with pytest.raises(ConfigError, match="'teacher' is required"):
        load_config("tinybert-task")


def test_general_distillation_and_distilbert_on_a_corpus(tmp_path):
    from itertools import islice

    from bertology import BertConfig, BertForMaskedLM, Tokenizer
    from bertology.assets import english_fortune_files, read_fortunes
    from bertology.data import prepare_corpus
    from bertology.data.shards import TokenCorpus

    texts = list(islice((t for f in english_fortune_files() for t in read_fortunes(f)), 120))
    (tmp_path / "text.txt").write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    tok = Tokenizer.train(iter(texts), vocab_size=600, min_frequency=1)
    teacher = tmp_path / "teacher"
    BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=64)).save_pretrained(teacher)
    tok.save_pretrained(teacher)
    prepare_corpus([tmp_path / "text.txt"], tmp_path / "corpus", tok, progress=False)
    common = ["--teacher", str(teacher), "--corpus", str(tmp_path / "corpus"), "--set", "train.max_steps=4",
              "--set", "train.batch_size=4", "--set", "train.bf16=false", "--set", "train.progress=false",
              "--set", "train.plot=false", "--set", "train.save_every=0", "--set", "max_length=32",
              "--set", "train.log_every=1"]
    general = ["distill", "tinybert-general", "--run-dir", str(tmp_path / "general"), *common,
               "--set", "student.size.num_hidden_layers=2", "--set", "student.size.hidden_size=16",
               "--set", "student.size.num_attention_heads=2", "--set", "student.size.intermediate_size=32"]
    assert main(general) == 0
    assert (tmp_path / "general" / "model" / "config.json").is_file()
    # a pruned student keeps the corpus's tokens (and the special and ASCII character ones), no other
    pruned = ["distill", "tinybert-general", "--run-dir", str(tmp_path / "pruned"), *general[4:],
              "--set", "student.vocabulary=data"]
    assert main(pruned) == 0
    small = Tokenizer.from_pretrained(tmp_path / "pruned" / "model")
    used = {t for t, i in tok.vocab.items() if int(TokenCorpus(tmp_path / "corpus").token_counts()[i])}
    assert used <= set(small.vocab) and small.vocab_size < tok.vocab_size
    assert json.loads((tmp_path / "pruned" / "model" / "config.json").read_text())["vocab_size"] == small.vocab_size
    assert main(["distill", "distilbert", "--run-dir", str(tmp_path / "distilbert"), *common]) == 0
    rows = [json.loads(line) for line in (tmp_path / "distilbert" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/distilbert_soft", "loss/cosine", "loss/mlm"} <= set(rows[0])
    saved = json.loads((tmp_path / "distilbert" / "model" / "config.json").read_text())
    assert saved["num_hidden_layers"] == 2  # every other one of the teacher's 4
    assert main(general) == 2  # the folder holds a run: refused without --resume or --overwrite
    assert main([*general, "--overwrite"]) == 0


def test_the_true_labels_can_join_the_soft_targets(teacher):
    """label_weight adds the task's own loss (on the true labels) in the prediction phase, logged beside it."""
    path = _write(teacher, "labels", label_weight=0.5, phases=["prediction"],
                  phase_train={"prediction": {"epochs": 2}})
    assert main(["distill", str(path)]) == 0
    rows = [json.loads(line) for line in (teacher / "runs" / "labels" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/prediction", "loss/labels", "accuracy"} <= set(rows[0])
    first = rows[0]
    assert first["loss"] == pytest.approx(first["loss/prediction"] + first["loss/labels"], rel=1e-5)


def test_a_student_with_a_pruned_vocabulary(teacher, tmp_path):
    """student.vocabulary: data keeps the tokens of the training data: smaller embeddings, the same inputs in
    training, its own tokenizer in its folder (evaluate reads it); a later run starts from it and maps the
    teacher's ids onto its vocabulary."""
    from bertology import Tokenizer

    path = _write(teacher, "pruned", student={"init": "teacher_layers", "layers": [1], "vocabulary": "data"})
    assert main(["distill", str(path)]) == 0
    run = teacher / "runs" / "pruned"
    full = Tokenizer.from_pretrained(teacher / "enc")
    small = Tokenizer.from_pretrained(run / "model" / "tokenizer")
    train_words = {w for line in (teacher / "cls/train.jsonl").read_text().splitlines()
                   for w in json.loads(line)["text"].split()}
    assert train_words <= set(small.vocab) and small.vocab_size < full.vocab_size
    student = TaskModel.from_pretrained(run / "model")
    assert student.encoder.config.vocab_size == small.vocab_size
    summary = json.loads((run / "distill_summary.json").read_text())
    assert summary["student_parameters"] < summary["teacher_parameters"]
    assert summary["student_test accuracy"] is not None
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(run / "model"), str(teacher / "cls/test.jsonl"), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(summary["student_test accuracy"])
    # the pruned student as the start of another run: the teacher's ids are mapped onto its vocabulary
    again = _write(teacher, "pruned-again", student={"init": "pretrained", "model": str(run / "model")},
                   phases=["prediction"], phase_train={"prediction": {"epochs": 1}})
    distilling = Distilling(load_config(again))
    assert distilling.input_map is not None and distilling.student_tokenizer.vocab == small.vocab
    assert distilling.run()["student_parameters"] == summary["student_parameters"]
    twice = _write(teacher, "pruned-twice", student={"init": "pretrained", "model": str(run / "model"),
                                                     "vocabulary": "data"})
    with pytest.raises(ConfigError, match="already has a pruned vocabulary"):
        Distilling(load_config(twice))
