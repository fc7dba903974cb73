"""What a pretraining run guarantees, driven as a user types it (`bertology pretrain` in a subprocess):
same seed, same losses; a used run folder refused (or moved aside); one writer per folder; an interrupted
run exits non-zero without exporting, and `--resume` finishes it with the losses of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import pytest
import yaml

from bertology import Tokenizer
from bertology.assets import peoples_daily_path
from bertology.data import prepare_corpus

CONFIG = {
    "corpus": "corpus", "tokenizer": "tok",  # relative to this file's folder
    "model": {"preset": "tiny", "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
              "num_hidden_layers": 1},
    "data": {"max_length": 32, "eval_fraction": 0.0},
    "objectives": {"mlm": 1.0},
    "train": {"batch_size": 4, "learning_rate": 1e-3, "schedule": "constant", "log_every": 1, "eval_every": 0,
              "progress": False, "bf16": False, "plot": False},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Path:
    """A config file in configs/ beside a small corpus and tokenizer (its paths relative to it)."""
    root = tmp_path_factory.mktemp("guarantees")
    configs = root / "configs"
    configs.mkdir()
    with open(peoples_daily_path(), encoding="utf-8") as handle:
        text = "".join(islice(handle, 200))
    source = configs / "pd.txt"
    source.write_text(text, encoding="utf-8")
    tok = Tokenizer.train(iter(text.splitlines()), vocab_size=1500, limit_alphabet=3000, min_frequency=1)
    tok.save_pretrained(configs / "tok")
    prepare_corpus([source], configs / "corpus", tok, input_format="pku", progress=False)
    (configs / "run.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    return root


def command(setup: Path, run_dir: str, *extra: str, steps: int = 8) -> list[str]:
    return [sys.executable, "-m", "bertology.cli.main", "pretrain", str(setup / "configs" / "run.yaml"),
            "--run-dir", run_dir, "--set", f"train.max_steps={steps}", *extra]


def bertology(setup: Path, cwd: Path, run_dir: str, *extra: str, steps: int = 8) -> subprocess.CompletedProcess:
    return subprocess.run(command(setup, run_dir, *extra, steps=steps), cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r["split"] == "train"]


def test_same_seed_same_losses_and_a_used_folder_is_refused_or_moved_aside(setup, tmp_path):
    first = bertology(setup, tmp_path, "a")  # --run-dir is relative to the working directory
    assert first.returncode == 0, first.stderr
    second = bertology(setup, tmp_path, "b")
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "a" / "model" / "config.json").is_file()
    assert len(losses(tmp_path / "a")) == 8
    assert losses(tmp_path / "a") == losses(tmp_path / "b")  # bit-identical across processes
    other_seed = bertology(setup, tmp_path, "c", "--set", "seed=7", "--set", "train.seed=7")
    assert other_seed.returncode == 0, other_seed.stderr
    assert losses(tmp_path / "c") != losses(tmp_path / "a")

    before = (tmp_path / "a" / "metrics.jsonl").read_bytes()
    refused = bertology(setup, tmp_path, "a")
    assert refused.returncode == 2
    assert "already holds another run" in refused.stderr and "--resume" in refused.stderr
    assert "--overwrite" in refused.stderr
    assert (tmp_path / "a" / "metrics.jsonl").read_bytes() == before  # the old run untouched

    changed = bertology(setup, tmp_path, "a", "--resume", "--set", "train.batch_size=8", steps=10)
    assert changed.returncode == 2 and "train.batch_size" in changed.stderr
    assert (tmp_path / "a" / "metrics.jsonl").read_bytes() == before

    moved = bertology(setup, tmp_path, "a", "--overwrite")
    assert moved.returncode == 0, moved.stderr
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("a.old-")]
    assert len(aside) == 1 and aside[0].name in moved.stdout
    assert (aside[0] / "metrics.jsonl").read_bytes() == before
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_one_writer_per_folder_and_an_interrupted_run_resumes_exactly(setup, tmp_path):
    long = subprocess.Popen(command(setup, "run", steps=100000), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        metrics = tmp_path / "run" / "metrics.jsonl"
        deadline = time.monotonic() + 120
        while not (metrics.is_file() and metrics.read_text().strip()):
            assert long.poll() is None, long.communicate()
            assert time.monotonic() < deadline, "the run never logged a step"
            time.sleep(0.05)
        started = time.monotonic()
        second = bertology(setup, tmp_path, "run", "--resume")
        assert second.returncode == 2 and "in use by another run" in second.stderr
        assert time.monotonic() - started < 60  # refused at once, before anything is built
        assert long.poll() is None  # the first run goes on
        long.send_signal(signal.SIGTERM)
        out, err = long.communicate(timeout=120)
    finally:
        if long.poll() is None:
            long.kill()
            long.wait()
    assert long.returncode == 143, err  # interrupted is not success
    assert "--resume" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model").exists()  # not exported as if finished
    stopped = max(step for step, _ in losses(tmp_path / "run"))

    target = stopped + 3
    resumed = bertology(setup, tmp_path, "run", "--resume", steps=target)  # max_steps: a harmless change
    assert resumed.returncode == 0, resumed.stderr
    assert "train.max_steps" in resumed.stdout
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    reference = bertology(setup, tmp_path, "reference", steps=target)
    assert reference.returncode == 0, reference.stderr
    assert losses(tmp_path / "run") == losses(tmp_path / "reference")


def test_a_second_interrupt_stops_at_once_without_a_traceback(setup, tmp_path):
    run = subprocess.Popen(command(setup, "run", steps=100000), cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        metrics = tmp_path / "run" / "metrics.jsonl"
        deadline = time.monotonic() + 120
        while not (metrics.is_file() and metrics.read_text().strip()):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    assert not (tmp_path / "run" / "model").exists()


def test_the_lock_is_held_for_the_claim_and_released_after(tmp_path):
    from bertology.errors import RunFolderError
    from bertology.runs.guard import claim_run_folder, config_changes

    with claim_run_folder(tmp_path / "x"):
        with pytest.raises(RunFolderError, match="in use by another run"):
            with claim_run_folder(tmp_path / "x"):
                pass
    with claim_run_folder(tmp_path / "x"):  # released: a stale lock file does not block
        pass
    with pytest.raises(RunFolderError, match="give one"):
        with claim_run_folder(tmp_path / "y", resume=True, overwrite=True):
            pass
    old = {"seed": 1, "train": {"batch_size": 4, "max_steps": 10}, "masking": {"rate": 0.15}}
    new = {"seed": 1, "train": {"batch_size": 8, "max_steps": 20}, "masking": {"rate": 0.15}}
    assert config_changes(old, new) == ["train.batch_size", "train.max_steps"]


def test_resume_may_change_the_length_only_under_a_constant_schedule(tmp_path):
    from bertology.errors import RunFolderError
    from bertology.runs.guard import check_resume

    stored = {"seed": 1, "train": {"max_steps": 10, "schedule": "linear", "log_every": 5, "batch_size": 8}}
    longer = {"seed": 1, "train": {"max_steps": 20, "schedule": "linear", "log_every": 5, "batch_size": 8}}
    with pytest.raises(RunFolderError, match=r"train\.max_steps"):
        check_resume(tmp_path, stored, longer, force=False)
    constant = {k: (dict(v, schedule="constant") if k == "train" else v) for k, v in stored.items()}
    assert check_resume(tmp_path, constant, {**longer, "train": dict(longer["train"], schedule="constant")},
                        force=False) == ["train.max_steps"]
    assert check_resume(tmp_path, stored, {**stored, "train": dict(stored["train"], log_every=1)},
                        force=False) == ["train.log_every"]
