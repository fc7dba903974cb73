"""`bertology demo --quick` (what the README's main job does, at toy scale) and `bertology task-data`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bertology.cli.main import main

ENTRY = "import sys, bertology.cli.main as m; sys.exit(m.main())"


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> tuple[Path, str]:
    """`bertology demo --quick` run as a user runs it: a subprocess, real data, a fresh folder."""
    out = tmp_path_factory.mktemp("demo") / "run"
    done = subprocess.run([sys.executable, "-c", ENTRY, "demo", "--quick", "--out", str(out)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def test_quick_demo_writes_a_report_with_sane_numbers(quick_demo):
    out, printed = quick_demo
    report = (out / "report.md").read_text(encoding="utf-8")
    for figure in ("figures/losses.png", "figures/tradeoff.png", "figures/probe.png", "attention/heads.png"):
        assert (out / figure).stat().st_size > 5000 and f"({figure})" in report
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    tuned = results["finetune"]
    assert tuned["pretrained"]["accuracy"] > tuned["majority"] + 0.05
    assert tuned["random_init"]["accuracy"] > tuned["majority"]
    # it learnt the language, not only to copy the labelled tokens left visible (BERT's 10%)
    pretrain = results["pretrain"]
    assert pretrain["hidden_accuracy"] > pretrain["unigram_accuracy"] + 0.02
    assert re.search(r"pretraining: [+-]0\.\d{4} over the same model from random initialisation, (helps clearly|hurts "
                     r"clearly|no clear difference)", report)  # said plainly, whichever it is
    latency = {row["name"]: row["latency_ms"] for row in results["measure"]["variants"]}
    assert latency["distilled student"] < latency["fine-tuned (pretrained)"]
    assert results["distill"]["parameters"] < results["distill"]["teacher_parameters"] / 2
    assert results["distill"]["accuracy"] > tuned["majority"]
    probe = results["probe"]["pretrained"]
    assert len(probe) == 3 and max(r["accuracy"] for r in probe) > 0.4  # 3 layers: embeddings and two blocks
    # the pretrained model beats random initialisation where a 90-second pretraining shows it: part of speech (on
    # sentiment it does not at this budget, measured in docs/demo.md; the report says so plainly, checked above)
    random_best = max(r["accuracy"] for r in results["probe"]["random_init"])
    assert max(r["accuracy"] for r in probe) > random_best + 0.02
    assert "part of speech: the pretrained encoder beats the same architecture at random weights" in printed
    assert results["english"]["full"]["accuracy"] > 0.15  # 45 classes; the majority class is about 0.12
    assert "Chinese review sentiment, every model variant" in printed and "TF-IDF" in printed
    assert printed.count("never occur in") <= 3  # each warning once, not once per method


def test_quick_demo_again_skips_finished_stages_and_reruns_a_removed_one(quick_demo, capsys):
    out, _ = quick_demo
    (out / "stages" / "baseline.json").unlink()
    assert main(["demo", "--quick", "--out", str(out), "--stages", "baseline,measure"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy against latency for every variant: done earlier" in printed
    assert "baseline: character n-gram TF-IDF + logistic regression\n" in printed  # rerun, not read
    assert (out / "stages" / "baseline.json").is_file()


def test_demo_refuses_an_unknown_stage(capsys):
    assert main(["demo", "--stages", "pretrain,distil"]) == 2
    assert "unknown stage 'distil'; did you mean 'distill'?" in capsys.readouterr().err


def test_task_data_writes_real_splits(tmp_path, capsys):
    assert main(["task-data", "wordnet-lexnames", str(tmp_path), "--train", "90", "--dev", "20", "--test", "30"]) == 0
    lines = {s: (tmp_path / f"{s}.jsonl").read_text().splitlines() for s in ("train", "dev", "test")}
    assert [len(v) for v in lines.values()] == [90, 20, 30]
    assert len((tmp_path / "labels.txt").read_text().split()) == 45
    assert "duplicates dropped" in capsys.readouterr().out
