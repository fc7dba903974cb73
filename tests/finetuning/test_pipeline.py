"""End to end: `bertology finetune / evaluate / predict` on toy files for every task kind and method."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from bertology.cli.main import main
from bertology.errors import BertologyError, ConfigError, DataError
from bertology.finetuning.multitask import MultiTaskBatches
from bertology.finetuning.taskdata import TaskData
from bertology.runs.finetune import Finetuning, load_config
from bertology.training import TrainConfig

CLS = {"kind": "classification", "train": "cls/train.jsonl", "dev": "cls/dev.jsonl", "test": "cls/test.jsonl",
       "max_length": 16}
NER = {"kind": "tagging", "train": "ner/train.conll", "dev": "ner/dev.conll", "test": "ner/test.conll",
       "head": {"layers": "scalar_mix"}}
TRAIN = {"epochs": 3, "batch_size": 4, "learning_rate": 1e-3, "progress": False, "plot": False}


def write_config(workspace: Path, name: str, **fields) -> Path:
    config = {"model": "enc", "run_dir": str(workspace / "runs" / name), "train": TRAIN, **fields}
    path = workspace / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def results(run_dir: Path) -> dict[tuple[str, str], dict]:
    return {(r["task"], r["split"]): r for r in json.loads((run_dir / "results.json").read_text())}


def test_classification_learns_and_the_cli_round_trips(workspace, tmp_path, capsys):
    config = write_config(workspace, "cls", tasks={"sent": CLS}, train={**TRAIN, "epochs": 15})
    assert main(["finetune", str(config)]) == 0
    run = workspace / "runs" / "cls"
    scores = results(run)
    assert scores[("sent", "dev")]["accuracy"] >= 0.9  # the label is a word in the text: easy to learn
    assert (run / "report.md").read_text().count("| sent") == 2
    assert any(json.loads(line).get("eval/accuracy") is not None for line in (run / "metrics.jsonl").open())

    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(run / "model"), str(workspace / "cls/test.jsonl"), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(scores[("sent", "test")]["accuracy"])

    predictions = tmp_path / "pred.jsonl"
    assert main(["predict", str(run / "model"), str(workspace / "cls/test.jsonl"), "-o", str(predictions)]) == 0
    rows = [json.loads(line) for line in predictions.open()]
    gold = [json.loads(line)["label"] for line in (workspace / "cls/test.jsonl").open()]
    assert [r["source"].rsplit(":", 1)[1] for r in rows] == [str(i + 1) for i in range(len(gold))]
    accuracy = np.mean([r["prediction"] == g for r, g in zip(rows, gold, strict=True)])
    assert accuracy == pytest.approx(scores[("sent", "test")]["accuracy"])


def test_every_task_kind_in_one_multi_task_run(workspace):
    tasks = {
        "sent": CLS,
        "score": {**CLS, "kind": "regression", "columns": {"label": "score"}, "test": None},
        "ner": NER,
        "qa": {"kind": "qa", "train": "qa/train.jsonl", "dev": "qa/dev.jsonl", "max_length": 24, "doc_stride": 8,
               "max_query_length": 8},
        "mc": {"kind": "multiple_choice", "train": "mc/train.jsonl", "dev": "mc/dev.jsonl", "max_length": 16},
    }
    config = write_config(workspace, "multi", tasks=tasks, sampling="temperature")
    job = Finetuning(load_config(config))
    assert max(len(f["input_ids"]) for f in job.tasks["qa"].features["train"]) <= 24
    assert len(job.tasks["qa"].features["train"]) > 30  # long contexts became several windows
    job.run()
    scores = results(Path(job.config.run_dir))
    expected = {"sent": {"accuracy", "macro_f1"}, "score": {"pearson", "spearman", "mse"},
                "ner": {"precision", "recall", "f1", "tag_accuracy"}, "qa": {"exact_match", "f1"},
                "mc": {"accuracy"}}
    for task, keys in expected.items():
        row = scores[(task, "dev")]
        assert keys <= set(row) and all(np.isfinite(row[k]) for k in keys), task
    # every head was trained and saved; the reloaded model scores the same
    saved = load_file(str(Path(job.config.run_dir) / "model" / "heads.safetensors"))
    assert {k.split(".")[0] for k in saved} == set(tasks)
    assert main(["evaluate", str(Path(job.config.run_dir) / "model"), str(workspace / "ner/test.conll"),
                 "--task", "ner", "-o", str(workspace / "ner-eval.json")]) == 0
    again = json.loads((workspace / "ner-eval.json").read_text())
    assert again["f1"] == pytest.approx(scores[("ner", "test")]["f1"], abs=1e-6)


def test_two_stage_lora_saves_only_adapters_and_reloads(workspace):
    config = write_config(workspace, "two", tasks={"sent": CLS, "ner": NER}, stages=[["sent"], ["ner"]],
                          method="lora", peft={"rank": 4})
    job = Finetuning(load_config(config))
    job.run()
    run = Path(job.config.run_dir)
    assert (run / "stage1-sent" / "metrics.jsonl").is_file() and (run / "stage2-ner" / "metrics.jsonl").is_file()
    model_dir = run / "model"
    assert not (model_dir / "encoder").exists() and (model_dir / "adapters").is_dir()
    adapter_bytes = sum(f.stat().st_size for f in (model_dir / "adapters").rglob("*.safetensors"))
    encoder_bytes = (workspace / "enc" / "model.safetensors").stat().st_size
    assert adapter_bytes < encoder_bytes / 5
    trainable = results(run)[("ner", "test")]["trainable_parameters"]
    assert trainable < sum(p.numel() for p in job.model.encoder.parameters()) / 5
    out = workspace / "two-eval.json"
    assert main(["evaluate", str(model_dir), str(workspace / "ner/test.conll"), "--task", "ner", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["f1"] == pytest.approx(results(run)[("ner", "test")]["f1"], abs=1e-6)


@pytest.mark.parametrize("method", ["frozen", "adapter"])
def test_frozen_and_adapter_leave_the_encoder_untouched(workspace, method):
    config = write_config(workspace, f"m-{method}", tasks={"sent": CLS}, method=method,
                          peft={"bottleneck": 4} if method == "adapter" else {})
    job = Finetuning(load_config(config))
    before = {name: (param, param.detach().clone()) for name, param in job.model.encoder.named_parameters()}
    job.run()  # adapters wrap modules (names change), so compare the original tensors themselves
    for name, (param, value) in before.items():
        assert torch.equal(param.detach(), value), name
    row = results(Path(job.config.run_dir))[("sent", "dev")]
    head = sum(p.numel() for p in job.model.heads.parameters())
    if method == "frozen":
        assert row["trainable_parameters"] == head
    else:
        assert head < row["trainable_parameters"] < sum(v.numel() for _, v in before.values()) / 2


def test_layerwise_decay_unfreezing_mixout_and_self_ensemble_run(workspace):
    config = write_config(workspace, "regs", tasks={"sent": CLS}, layerwise_lr_decay=0.8, unfreezing="gradual",
                          unfreeze_every=5, mixout=0.1, self_ensemble={"every": 5, "last": 3},
                          self_distillation=0.5)
    job = Finetuning(load_config(config))
    job.run()
    row = results(Path(job.config.run_dir))[("sent", "dev")]
    assert np.isfinite(row["accuracy"])
    assert row["trainable_parameters"] == sum(p.numel() for p in job.model.parameters())  # all thawed by the end


# ------------------------------------------------------------------------------------ multi-task sampling
def _fake_task(name: str, n: int) -> TaskData:
    features = [{"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1], "labels": 0} for _ in range(n)]
    return TaskData(name, None, None, {}, {"train": features}, {})  # type: ignore[arg-type]


def _count_tasks(sampling: str, temperature: float = 2.0) -> dict[str, int]:
    tasks = [_fake_task("big", 900), _fake_task("small", 100)]
    collate = {t.name: (lambda items: {"n": len(items)}) for t in tasks}
    return MultiTaskBatches(tasks, collate, 10, sampling, temperature, seed=0).counts


def test_task_sampling_follows_the_configured_rule():
    assert _count_tasks("proportional") == {"big": 90, "small": 10}
    uniform = _count_tasks("uniform")
    assert sum(uniform.values()) == 100 and abs(uniform["small"] - 50) < 3 * np.sqrt(100 * 0.25)
    # temperature 2: p(small) = sqrt(10) / (sqrt(90) + sqrt(10)) = 0.25
    tempered = _count_tasks("temperature")
    assert abs(tempered["small"] - 25) < 3 * np.sqrt(100 * 0.25 * 0.75)


# -------------------------------------------------------------------------------------------- bad input
def test_bad_rows_name_file_and_line_or_are_counted(workspace, tmp_path):
    good = (workspace / "cls/train.jsonl").read_text().splitlines()
    broken = tmp_path / "train.jsonl"
    broken.write_text("\n".join([*good[:5], "", *good[5:]]) + "\n", encoding="utf-8")
    config = write_config(workspace, "bad", tasks={"sent": {**CLS, "train": str(broken)}})
    with pytest.raises(DataError, match=rf"{broken}:6: empty line"):
        Finetuning(load_config(config))
    job = Finetuning(load_config(config, ["on_error=skip"]))
    assert job.tasks["sent"].skipped["train"] == 1 and len(job.tasks["sent"].examples["train"]) == 80


def test_missing_column_and_unknown_column_key(workspace):
    config = write_config(workspace, "col", tasks={"sent": {**CLS, "columns": {"text": "sentence"}}})
    with pytest.raises(DataError, match=r"train.jsonl:1: missing column 'sentence'"):
        Finetuning(load_config(config, ["on_error=skip"]))  # a missing column is never skipped
    config = write_config(workspace, "col2", tasks={"sent": {**CLS, "columns": {"txet": "text"}}})
    with pytest.raises(ConfigError, match=r"col2\.yaml: tasks\.sent\.columns: unknown field 'txet'; did you mean 'text'"):
        Finetuning(load_config(config))


def test_label_file_that_disagrees_with_the_data(workspace):
    (workspace / "labels.txt").write_text("cat\nbird\n", encoding="utf-8")
    config = write_config(workspace, "lab", tasks={"sent": {**CLS, "labels": "labels.txt"}})
    with pytest.raises(DataError, match=r"labels.txt does not list label\(s\).*'dog' \(first at .*train.jsonl:\d+\)"):
        Finetuning(load_config(config))


def test_unknown_label_at_evaluation_time(workspace, tmp_path, capsys):
    config = write_config(workspace, "unk", tasks={"sent": CLS}, train={**TRAIN, "epochs": 1})
    assert main(["finetune", str(config)]) == 0
    model = str(workspace / "runs" / "unk" / "model")
    data = tmp_path / "new.jsonl"
    data.write_text('{"text": "the cat sat", "label": "cat"}\n{"text": "a bird", "label": "bird"}\n')
    assert main(["evaluate", model, str(data)]) == 2
    assert f"{data}:2: unknown label 'bird'" in capsys.readouterr().err
    out = tmp_path / "m.json"
    assert main(["evaluate", model, str(data), "--on-error", "skip", "-o", str(out)]) == 0
    assert "skipped 1 bad rows" in capsys.readouterr().out
    # predicting needs no labels, so the same file is fine
    assert main(["predict", model, str(data), "-o", str(tmp_path / "p.jsonl")]) == 0
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 2


def test_config_errors_are_clear(workspace):
    for fields, message in (
        ({"tasks": {"sent": CLS}, "method": "lora", "mixout": 0.1}, "mixout"),
        ({"tasks": {"sent": CLS}, "stages": [["sent"], ["nope"]]}, r"unknown task\(s\) \['nope'\]"),
        ({"tasks": {"sent": CLS}, "methd": "full"}, r"unknown field 'methd'; did you mean 'method'?"),
        ({"tasks": {"sent": CLS}, "method": "frozen", "unfreezing": "gradual"}, "unfreezing applies"),
        ({"tasks": {"sent": CLS}, "method": "frozen", "adversarial": {"name": "freelb"}}, "cached encoder outputs"),
        ({"tasks": {"sent": CLS}, "adversarial": {"name": "smart", "noise_var": 1e-5}},
         "adversarial: unknown field 'noise_var'; did you mean 'noise_std'"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(write_config(workspace, "cfg", **fields))


def test_a_test_set_that_repeats_training_texts_is_reported(workspace, caplog):
    config = write_config(workspace, "leak", tasks={"sent": {**CLS, "test": "cls/train.jsonl"}})
    Finetuning(load_config(config))
    assert "80 test example(s) also occur in train" in caplog.text


def test_head_learning_rate_sets_the_heads_group_only(workspace):
    config = write_config(workspace, "hlr", tasks={"sent": CLS}, head_learning_rate=5e-3, layerwise_lr_decay=0.5)
    job = Finetuning(load_config(config))
    groups = job._param_groups(TrainConfig.from_dict({**TRAIN}, ""))
    head_ids = {id(p) for p in job.model.heads.parameters()}
    for group in groups:
        in_head = {id(p) in head_ids for p in group["params"]}
        if True in in_head:
            assert group["lr"] == 5e-3
        if group["depth"] == 0:  # embeddings: 1e-3 * 0.5 ** (layers + 1)
            assert group["lr"] == pytest.approx(1e-3 * 0.5 ** 3)


@pytest.mark.parametrize(("method", "adversarial"), [
    ("full", {"name": "pgd", "steps": 2, "epsilon": 0.5}),
    ("lora", {"name": "freelb", "adv_steps": 2}),
    ("full", {"name": "smart", "weight": 1.0}),
])
def test_adversarial_training_from_the_config(workspace, method, adversarial):
    config = write_config(workspace, f"adv-{adversarial['name']}", tasks={"sent": CLS}, method=method,
                          adversarial=adversarial, train={**TRAIN, "epochs": 1})
    job = Finetuning(load_config(config))
    job.run()
    assert np.isfinite(results(Path(job.config.run_dir))[("sent", "dev")]["accuracy"])
    logged = (Path(job.config.run_dir) / "metrics.jsonl").read_text()
    assert ("loss/smart" in logged) == (adversarial["name"] == "smart")


def test_adversarial_config_errors_name_the_option(workspace):
    with pytest.raises(ConfigError, match="unknown method 'vat'"):
        Finetuning(load_config(write_config(workspace, "adv-bad", tasks={"sent": CLS}, adversarial={"name": "vat"})))
    config = write_config(workspace, "adv-frozen", tasks={"sent": CLS}, method="lora", adversarial={"name": "fgm"})
    with pytest.raises(ConfigError, match="frozen"):
        Finetuning(load_config(config)).run()


def test_an_interrupted_run_writes_no_results(workspace, monkeypatch):
    from bertology.training.trainer import TrainResult

    def interrupted(self, resume=False):
        return TrainResult(3, "interrupted", self.run_dir, self.run_dir / "checkpoints" / "step-3")

    monkeypatch.setattr("bertology.runs.finetune.Trainer.train", interrupted)
    job = Finetuning(load_config(write_config(workspace, "interrupted", tasks={"sent": CLS})))
    with pytest.raises(BertologyError, match="interrupted at step 3.*--resume"):
        job.run()
    assert not (Path(job.config.run_dir) / "results.json").exists()
