"""`bertology demo` (the README's main job) and `bertology task-data`, on a small slice of the real data."""

from __future__ import annotations

import json
import re

from bertology.cli.main import main


def test_demo_fine_tunes_minilm_and_labels_new_glosses(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--train", "1000", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "held-out WordNet glosses" in out and "lora" in out and "full" in out
    for method in ("full", "lora"):
        test = next(r for r in json.loads((tmp_path / method / "results.json").read_text()) if r["split"] == "test")
        assert test["accuracy"] > 0.2  # the majority class (adj.all) is about 0.12 of the glosses
    report = (tmp_path / "report.md").read_text()
    assert re.search(r"^\| full +\|", report, re.M) and re.search(r"^\| lora +\|", report, re.M)
    predictions = (tmp_path / "new-glosses.predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 6 and all(json.loads(p)["prediction"].count(".") == 1 for p in predictions)


def test_task_data_writes_real_splits(tmp_path, capsys):
    assert main(["task-data", "wordnet-lexnames", str(tmp_path), "--train", "90", "--dev", "20", "--test", "30"]) == 0
    lines = {s: (tmp_path / f"{s}.jsonl").read_text().splitlines() for s in ("train", "dev", "test")}
    assert [len(v) for v in lines.values()] == [90, 20, 30]
    assert len((tmp_path / "labels.txt").read_text().split()) == 45
    assert "duplicates dropped" in capsys.readouterr().out
