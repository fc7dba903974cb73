"""A new regularizer is one definition with its registration: defined here, used by name from YAML through
`bertology finetune`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from bertology.cli.main import main
from bertology.errors import ConfigError
from bertology.finetuning.regularization import REGULARIZERS, Regularizer, Stage
from bertology.runs.finetune import load_config
from bertology.training.callbacks import Callback


# ----------------------------------------------------------------------------------------- a new regularizer
@dataclass
class L2SPOptions:
    #: weight of the squared distance of the encoder's weights from where they started
    weight: float = 0.01

    def validate(self, where: str = "") -> None:
        if self.weight < 0:
            raise ConfigError(f"{where}field 'weight' must be >= 0, got {self.weight}")


class L2SPCallback(Callback):
    """L2-SP (Li et al. 2018): pull the tuned encoder towards its pretrained weights."""

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.start: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer: Any) -> None:
        self.start = {n: p.detach().clone() for n, p in trainer.raw.encoder.named_parameters() if p.requires_grad}

    def extra_losses(self, trainer: Any, batch: Any, out: Any) -> dict[str, torch.Tensor]:
        params = dict(trainer.raw.encoder.named_parameters())
        return {"l2sp": self.weight * sum(((params[n] - p0) ** 2).sum() for n, p0 in self.start.items())}


@REGULARIZERS.register("l2sp", options=L2SPOptions)
class L2SP(Regularizer):
    order = 40

    def check(self, method: str, where: Any = "") -> None:
        if method != "full":
            raise ConfigError(f"{where}l2sp pulls tuned encoder weights back; method {method!r} tunes none")

    def callbacks(self, stage: Stage) -> list[Callback]:
        return [L2SPCallback(self.options.weight)]


@pytest.fixture(scope="module", autouse=True)
def _forget_the_registration_afterwards():
    """The registration is this module's: later test modules see the registry as shipped."""
    yield
    REGULARIZERS.remove("l2sp")


def _write_config(folder: Path, name: str, workspace: Path, **fields: Any) -> Path:
    config = {"model": str(workspace / "enc"), "run_dir": str(folder / "runs" / name),
              "train": {"epochs": 8, "batch_size": 8, "learning_rate": 3e-3, "progress": False, "plot": False},
              **fields}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path



def test_a_regularizer_defined_here_runs_by_name_from_yaml(workspace, tmp_path):
    cls = {"kind": "classification", "train": str(workspace / "cls/train.jsonl"),
           "dev": str(workspace / "cls/dev.jsonl"), "max_length": 16}
    config = _write_config(tmp_path, "l2sp", workspace, tasks={"sent": cls}, regularizers={"l2sp": {"weight": 0.05}},
                           train={"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "progress": False,
                                  "plot": False, "log_every": 1})
    assert main(["finetune", str(config)]) == 0
    logged = [json.loads(line) for line in (tmp_path / "runs" / "l2sp" / "metrics.jsonl").open()]
    penalties = [r["loss/l2sp"] for r in logged if "loss/l2sp" in r]
    assert penalties and penalties[0] == 0.0 and max(penalties) > 0  # zero at the start, growing as it tunes

    typo = _write_config(tmp_path, "typo", workspace, tasks={"sent": cls}, regularizers={"l2sp": {"wieght": 1.0}})
    with pytest.raises(ConfigError, match=r"typo.yaml: regularizers.l2sp: unknown field 'wieght'; "
                                          r"did you mean 'weight'\?"):
        load_config(typo)
    frozen = _write_config(tmp_path, "frozen", workspace, tasks={"sent": cls}, method="frozen",
                           regularizers={"l2sp": {}})
    with pytest.raises(ConfigError, match=r"frozen.yaml: regularizers.l2sp: l2sp pulls tuned encoder weights back"):
        load_config(frozen)
