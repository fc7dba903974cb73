"""`bertology prune` end to end on a tiny fine-tuned classifier, and magnitude pruning during fine-tuning
through `bertology finetune` with the regularizer named in the config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from bertology.cli import prune as prune_cli
from bertology.cli.main import main
from bertology.compression.pruning import (
    MagnitudePruning,
    compressed_size,
    cubic_sparsity,
    magnitude_mask,
    sparsity_of,
)
from bertology.compression.report import count_parameters
from bertology.errors import ConfigError, RunFolderError
from bertology.finetuning.model import TaskModel
from bertology.runs.finetune import Finetuning, finetune_config

QUICK = {"batch_size": 8, "learning_rate": 1e-3, "progress": False, "plot": False, "log_every": 2}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, fine_tune_toy) -> Path:
    """A fine-tuned toy classifier (2 layers, 2 heads, width 32) and its task files."""
    return fine_tune_toy(tmp_path_factory.mktemp("prune"), "tuned", 6)


def _prune(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bertology")
    prune_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["prune", *argv])
    return args.run(args)


def test_prune_command_end_to_end(tuned, capsys):
    out = tuned / "pruned"
    assert _prune(str(tuned / "tuned" / "model"), str(out), "--data", str(tuned / "cls/train.jsonl"),
                  "--heads", "0.5", "--neurons", "0.25", "--test", str(tuned / "cls/test.jsonl"),
                  "--recover-epochs", "1", "--train", str(tuned / "cls/train.jsonl"), "--batch-size", "16") == 0
    printed = capsys.readouterr().out
    assert "h1" in printed and "original (reference)" in printed
    for name in ("head_importance.md", "head_importance.json", "report.md", "results.json", "prune_summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "prune_summary.json").read_text())
    assert sum(len(v) for v in summary["pruned_heads"].values()) == 2  # half of 2 layers x 2 heads
    assert summary["intermediate_sizes"] == [48, 48]
    assert summary["parameters_after"] < summary["parameters_before"]
    results = json.loads((out / "results.json").read_text())
    assert [v["name"] for v in results["variants"]] == ["original", "pruned"]
    original, pruned = results["variants"]
    assert pruned["parameters"] < original["parameters"] and pruned["size_bytes"] < original["size_bytes"]
    assert pruned["metric_name"] == "test accuracy" and pruned["tokens_per_s"] > 0
    model = TaskModel.from_pretrained(out / "model")
    assert count_parameters(model.encoder) == summary["parameters_after"]
    assert (out / "recovery" / "metrics.jsonl").is_file()
    scores = tuned / "pruned-metrics.json"
    assert main(["evaluate", str(out / "model"), str(tuned / "cls/test.jsonl"), "-o", str(scores)]) == 0
    assert 0.0 <= json.loads(scores.read_text())["accuracy"] <= 1.0


def test_prune_command_drops_layers_and_prunes_at_random(tuned):
    out = tuned / "shallow"
    assert _prune(str(tuned / "tuned" / "model"), str(out), "--data", str(tuned / "cls/dev.jsonl"),
                  "--drop-layers", "top:1", "--heads", "1", "--by", "random", "--no-speed") == 0
    model = TaskModel.from_pretrained(out / "model")
    config = model.encoder.config
    assert config.num_hidden_layers == 1 and config.pruned_heads and len(config.pruned_heads[0]) == 1
    assert json.loads((out / "prune_summary.json").read_text())["heads_by"] == "random"
    with pytest.raises(RunFolderError, match="already holds another run"):
        _prune(str(tuned / "tuned" / "model"), str(out), "--data", str(tuned / "cls/dev.jsonl"))
    _prune(str(tuned / "tuned" / "model"), str(out), "--data", str(tuned / "cls/dev.jsonl"), "--overwrite")
    assert list(out.parent.glob(f"{out.name}.old-*")), "the earlier run was moved aside, not deleted"


def test_prune_command_refuses_bad_requests_before_writing(tuned):
    model, data = str(tuned / "tuned" / "model"), str(tuned / "cls/dev.jsonl")
    with pytest.raises(ConfigError, match="layer 0 has 2 heads; cannot prune 3"):
        _prune(model, str(tuned / "bad1"), "--data", data, "--heads", "3", "--per-layer", "--no-speed")
    with pytest.raises(ConfigError, match="--recover-epochs needs --train"):
        _prune(model, str(tuned / "bad2"), "--data", data, "--recover-epochs", "1")
    with pytest.raises(ConfigError, match="--heads '1.5'"):
        _prune(model, str(tuned / "bad3"), "--data", data, "--heads", "1.5")
    assert not any((tuned / name).exists() for name in ("bad1", "bad2", "bad3"))


# ------------------------------------------------------------------------------------------ magnitude
def test_cubic_schedule_by_hand():
    # s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 with s_i=0.1, s_f=0.9, t0=10, n*dt=40, dt=10
    values = [cubic_sparsity(t, 0.9, 0.1, start=10, end=50, every=10) for t in (0, 10, 15, 20, 30, 40, 50, 99)]
    expected = [0.0, 0.1, 0.1, 0.9 - 0.8 * 0.75 ** 3, 0.9 - 0.8 * 0.5 ** 3, 0.9 - 0.8 * 0.25 ** 3, 0.9, 0.9]
    assert values == pytest.approx(expected)
    with pytest.raises(ConfigError, match="initial"):
        cubic_sparsity(0, 0.2, 0.5)


def test_magnitude_mask_keeps_the_largest_entries():
    weight = torch.tensor([[0.1, -3.0], [0.5, -0.2]])
    assert magnitude_mask(weight, 0.5).tolist() == [[False, True], [True, False]]
    assert magnitude_mask(weight, 0.0).all()


def test_magnitude_pruning_through_finetune_reaches_its_sparsity(tuned):
    run = tuned / "sparse"
    config = finetune_config({"model": str(tuned / "enc"), "run_dir": str(run),
                              "tasks": {"animal": {"kind": "classification", "train": str(tuned / "cls/train.jsonl"),
                                                   "max_length": 16}},
                              "regularizers": {"magnitude_pruning": {"final_sparsity": 0.6, "every": 2}},
                              "train": {**QUICK, "epochs": 2}})
    Finetuning(config).run()
    model = TaskModel.from_pretrained(run / "model")
    assert sparsity_of(model) == pytest.approx(0.6, abs=1e-3)
    size = compressed_size(model)
    assert size.zlib_bytes < size.dense_bytes and size.csr_bytes < size.dense_bytes
    assert size.parameters == count_parameters(model)
    with pytest.raises(ConfigError, match="method 'full'"):
        finetune_config({"model": str(tuned / "enc"), "method": "frozen",
                         "tasks": {"animal": {"kind": "classification", "train": str(tuned / "cls/train.jsonl")}},
                         "regularizers": {"magnitude_pruning": {}}}).validate()


def test_masks_keep_pruned_weights_at_zero_across_steps():
    layer = torch.nn.Module()
    layer.encoder = torch.nn.Module()
    layer.encoder.layers = torch.nn.ModuleList([torch.nn.Module()])
    block = layer.encoder.layers[0]
    block.ffn = torch.nn.Module()
    block.ffn.up = torch.nn.Linear(8, 8)
    trainer = type("T", (), {"raw": layer, "total_steps": 8, "step": 0})()
    callback = MagnitudePruning(0.5, start_step=0, end_step=4, every=1)
    callback.on_train_start(trainer)
    weight = block.ffn.up.weight
    for step in range(1, 9):
        with torch.no_grad():
            weight.add_(0.01)  # an optimizer moving every entry
        trainer.step = step
        callback.on_step_end(trainer)
        zeros = int((weight == 0).sum())
        assert zeros == round(cubic_sparsity(step, 0.5, 0.0, 0, 4, 1) * 64)
    assert callback.state_dict()["mask.encoder.layers.0.ffn.up.weight"].sum() == 32
