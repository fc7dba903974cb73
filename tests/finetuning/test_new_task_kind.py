"""A new task kind is one definition with its registration: defined here, used by name from YAML through a
fresh `bertology finetune` process that learns of it only through the config's `plugins:` (this file), then
`evaluate` and `predict`."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from bertology.cli.main import main
from bertology.errors import ConfigError
from bertology.finetuning.encoding import Features, encode_texts
from bertology.finetuning.examples import Example, require_text
from bertology.finetuning.tasks import TASK_KINDS, TaskKind

WORDS = "the a is on cat dog mat sat john paris city in".split()  # all in the workspace encoder's vocabulary


# ------------------------------------------------------------------------------------------- a new task kind
@dataclass
class CountOptions:
    #: the model learns the number of words divided by this
    scale: float = 1.0

    def validate(self, where: str = "") -> None:
        if not self.scale > 0:
            raise ConfigError(f"{where}field 'scale' must be positive, got {self.scale}")


@TASK_KINDS.register("word_count", options=CountOptions)
class WordCount(TaskKind):
    """How many words a text has: the rows need only a text, the label comes from the text itself."""

    suffixes = (".jsonl",)

    def row(self, reader: Any, row: Mapping[str, Any], source: str) -> Example:
        text = require_text(reader.need(row, reader.columns.text, "text", source), "text")
        return Example(text=text, label=len(text.split()), id=reader.ident(row), source=source)

    def encode(self, examples: Sequence[Example], tokenizer: Any, labels: Any, max_length: int) -> Features:
        return encode_texts(examples, tokenizer, max_length, lambda e: e.label / self.options.scale)

    def collate_target(self, key: str, values: list[Any]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float)

    def loss(self, head: Any, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        if "labels" not in batch:
            return None, {}
        return F.mse_loss(logits.float().squeeze(-1), batch["labels"]), {}

    def decode(self, task: Any, split: str, logits: list[np.ndarray]) -> list[float]:
        return [float(row[0]) * self.options.scale for row in logits]

    def metrics(self, task: Any, split: str, predictions: list[Any]) -> dict[str, float]:
        gold = np.array([e.label for e in task.examples[split]], dtype=float)
        predicted = np.array(predictions)
        return {"mae": float(np.abs(gold - predicted).mean()), "exact": float((np.rint(predicted) == gold).mean()),
                "mae_of_the_mean": float(np.abs(gold - gold.mean()).mean())}



@pytest.fixture(scope="module", autouse=True)
def _forget_the_registration_afterwards():
    """The registration is this module's: later test modules see the registry as shipped."""
    yield
    TASK_KINDS.remove("word_count")


def _write_config(folder: Path, name: str, workspace: Path, **fields: Any) -> Path:
    config = {"model": str(workspace / "enc"), "run_dir": str(folder / "runs" / name),
              "train": {"epochs": 8, "batch_size": 8, "learning_rate": 3e-3, "progress": False, "plot": False},
              **fields}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path



def _count_data(folder: Path) -> None:
    rng = random.Random(1)
    rows = [{"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))} for _ in range(150)]
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[:120]), ("dev", rows[120:])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")


def test_a_task_kind_defined_here_runs_by_name_through_the_cli(workspace, tmp_path, capsys):
    _count_data(tmp_path / "count")
    task = {"kind": "word_count", "train": "count/train.jsonl", "dev": "count/dev.jsonl", "scale": 4.0,
            "max_length": 16, "head": {"pooling": "mean"}}
    config = _write_config(tmp_path, "count", workspace, tasks={"count": task}, plugins=[str(Path(__file__))])
    done = subprocess.run([sys.executable, "-m", "bertology.cli.main", "finetune", str(config)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "count"
    dev = next(r for r in json.loads((run / "results.json").read_text()) if r["split"] == "dev")
    assert dev["mae"] < 0.5 * dev["mae_of_the_mean"]  # it learned to count, far better than guessing the mean
    saved = json.loads((run / "model" / "task.json").read_text())
    assert saved["tasks"]["count"]["kind"] == "word_count" and saved["options"]["count"]["options"] == {"scale": 4.0}
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(run / "model"), str(tmp_path / "count" / "dev.jsonl"), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["mae"] == pytest.approx(dev["mae"], abs=1e-6)
    predictions = tmp_path / "pred.jsonl"
    assert main(["predict", str(run / "model"), str(tmp_path / "count" / "dev.jsonl"), "-o", str(predictions)]) == 0
    assert len(predictions.read_text().splitlines()) == 30

    bad = _write_config(tmp_path, "bad", workspace, tasks={"count": {**task, "scael": 2.0}})
    assert main(["finetune", str(bad)]) == 2
    assert f"{bad}: tasks.count: unknown field 'scael'; did you mean 'scale'?" in capsys.readouterr().err


