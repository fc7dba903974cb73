"""What `bertology finetune / evaluate / predict` say when the file system or a model folder is at fault:
one line naming the file, exit code 2, no traceback, and nothing predicted before an unwritable output fails."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from bertology.cli.main import main
from bertology.errors import CheckpointError
from bertology.finetuning import session as session_module
from bertology.finetuning.model import TaskModel

CLS = {"kind": "classification", "train": "cls/train.jsonl", "dev": "cls/dev.jsonl", "max_length": 16}
TRAIN = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "progress": False, "plot": False}


def _config(workspace: Path, name: str, run_dir: Path, tasks=None) -> Path:
    config = {"model": "enc", "run_dir": str(run_dir), "train": TRAIN, "tasks": tasks or {"sent": CLS}}
    path = workspace / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _one_clear_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line]  # (a progress bar may come before)
    assert "Traceback" not in err
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def model_dir(workspace) -> Path:
    run = workspace / "runs" / "faults"
    assert main(["finetune", str(_config(workspace, "faults", run))]) == 0
    return run / "model"


def test_run_folder_under_a_regular_file_is_one_line_before_training(workspace, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    config = _config(workspace, "under-file", blocker / "run")
    assert main(["finetune", str(config)]) == 2
    _one_clear_line(capsys, str(blocker))


def test_predict_to_an_unwritable_output_fails_before_predicting(model_dir, workspace, tmp_path, capsys, monkeypatch):
    called = []
    monkeypatch.setattr(session_module, "task_predictions", lambda *a, **k: called.append(1) or [])
    blocker = tmp_path / "blocker"
    blocker.write_text("x", encoding="utf-8")
    data = str(workspace / "cls" / "dev.jsonl")
    assert main(["predict", str(model_dir), data, "-o", str(blocker / "out.jsonl")]) == 2
    _one_clear_line(capsys, str(blocker))
    assert main(["predict", str(model_dir), data, "-o", str(tmp_path)]) == 2
    _one_clear_line(capsys, str(tmp_path), "folder")

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # as root chmod does not stop writes: inject it
    assert main(["predict", str(model_dir), data, "-o", str(tmp_path / "out.jsonl")]) == 2
    _one_clear_line(capsys, str(tmp_path / "out.jsonl"), "read-only")
    assert main(["evaluate", str(model_dir), data, "-o", str(tmp_path / "m.json")]) == 2
    _one_clear_line(capsys, str(tmp_path / "m.json"), "read-only")
    assert called == []  # nothing was predicted before the refusal


def test_disk_full_while_writing_predictions_is_one_line(model_dir, workspace, tmp_path, capsys, monkeypatch):
    original = session_module.json.dumps

    def dumps(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(session_module.json, "dumps", dumps)
    out = tmp_path / "out.jsonl"
    code = main(["predict", str(model_dir), str(workspace / "cls" / "dev.jsonl"), "-o", str(out)])
    monkeypatch.setattr(session_module.json, "dumps", original)
    assert code == 2
    _one_clear_line(capsys, str(out), "no space")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temp file left


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    return copy


def test_truncated_heads_file_names_the_file(model_dir, workspace, tmp_path, capsys):
    copy = _copy(model_dir, tmp_path)
    heads = copy / "heads.safetensors"
    heads.write_bytes(heads.read_bytes()[: heads.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="heads.safetensors.*truncated"):
        TaskModel.from_pretrained(copy)
    assert main(["evaluate", str(copy), str(workspace / "cls" / "dev.jsonl")]) == 2
    _one_clear_line(capsys, str(heads))


@pytest.mark.parametrize("text", ["{not json", '{"tasks": {}}', "[]", '{"tasks": {"sent": 3}, "encoder": "x"}'])
def test_broken_task_json_names_the_file(model_dir, workspace, tmp_path, capsys, text):
    copy = _copy(model_dir, tmp_path)
    (copy / "task.json").write_text(text, encoding="utf-8")
    with pytest.raises(CheckpointError, match="task.json"):
        TaskModel.from_pretrained(copy)
    assert main(["predict", str(copy), str(workspace / "cls" / "dev.jsonl"), "-o", str(tmp_path / "p.jsonl")]) == 2
    _one_clear_line(capsys, str(copy / "task.json"))


def test_a_fifo_input_is_not_a_regular_file(model_dir, tmp_path, capsys):
    fifo = tmp_path / "input.jsonl"
    os.mkfifo(fifo)
    assert main(["predict", str(model_dir), str(fifo), "-o", str(tmp_path / "p.jsonl")]) == 2
    line = _one_clear_line(capsys, "not a regular file")
    assert "no such file" not in line


def test_a_fifo_corpus_input_is_not_a_regular_file(tmp_path):
    from bertology.data.sources import list_input_files
    from bertology.errors import FileSystemError

    fifo = tmp_path / "corpus.txt"
    os.mkfifo(fifo)
    with pytest.raises(FileSystemError, match=r"is a FIFO \(named pipe\)"):
        list_input_files([fifo])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_input_files([tmp_path / "absent.txt"])
