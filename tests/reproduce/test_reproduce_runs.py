"""`bertology reproduce` end to end at toy scale: claims measured per seed on shared models, verdicts and
reports written, cached results reused, and a model rebuilt from scratch giving the same numbers."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from bertology.cli.main import main
from bertology.runs.reproduce import CLAIMS, run_claim
from bertology.runs.reproduce.claim import FAILS, HOLDS, INCONCLUSIVE
from bertology.runs.reproduce.workspace import SCALE, Workspace

TOY = replace(SCALE, corpus_lines=1500, pretrain_steps=20, train=200, dev=50, test=100, epochs=1, probe_sentences=100)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("reproduce"), plan=TOY)


@pytest.mark.parametrize("name", ["int8", "syntax-middle", "shuffled-order"])
def test_claim_runs_every_seed_and_says_a_verdict(workspace, name):
    result = run_claim(CLAIMS[name], workspace, seeds=2)
    assert result["verdict"] in (HOLDS, FAILS, INCONCLUSIVE)
    assert len(result["per_seed"]) == 2 and set(result["arms"]) == set(CLAIMS[name].arms)
    for arm in result["arms"].values():
        assert len(arm["values"]) == 2 and all(0.0 <= v <= 1.0 for v in arm["values"])
    report = (workspace.root / name / "report.md").read_text(encoding="utf-8")
    assert f"**Verdict: {result['verdict']}**" in report and "**Paper.**" in report
    assert json.loads((workspace.root / name / "results.json").read_text())["verdict"] == result["verdict"]


def test_a_rebuilt_model_gives_the_same_numbers(workspace):
    first = workspace.tuned("wwm", 0)
    (workspace.root / "cache" / "finetune-wwm-seed0.json").unlink()
    shutil.rmtree(workspace.root / "finetune" / "wwm-seed0")
    again = workspace.tuned("wwm", 0)
    assert again["accuracy"] == first["accuracy"]
    assert (workspace.root / "finetune" / "wwm-seed0" / "model").is_dir()


def test_list_and_unknown_claims(capsys):
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in CLAIMS) and "all " in listed
    assert main(["reproduce", "layer-maps"]) == 2
    assert "did you mean 'layer-map'?" in capsys.readouterr().err
    assert main(["reproduce", "int8", "--seeds", "1"]) == 2
    assert "--seeds must be at least 2" in capsys.readouterr().err
