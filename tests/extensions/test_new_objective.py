"""A new pretraining objective is one module with its registration: defined here, chosen by name from YAML."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from ext_helpers import run_bertology, small_pretrain_config, train_rows, write_yaml
from torch import nn

from bertology.errors import ConfigError
from bertology.objectives import OBJECTIVES, Objective, register


@dataclass
class LengthOptions:
    #: sequence lengths are classified into this many buckets
    buckets: int = 4

    def validate(self, where: str = "") -> None:
        if self.buckets < 2:
            raise ConfigError(f"{where}field 'buckets' must be >= 2, got {self.buckets}")


@register("length_bucket", options=LengthOptions)
class LengthBucket(Objective):
    """Predict from [CLS] which length bucket the input falls in (a toy sentence-level objective)."""

    def __init__(self, config, encoder, options: LengthOptions) -> None:
        super().__init__()
        self.buckets = options.buckets
        self.classifier = nn.Linear(config.hidden_size, options.buckets)

    def forward(self, encoded, batch):
        lengths = batch["attention_mask"].sum(1)
        target = (lengths * self.buckets // (batch["attention_mask"].shape[1] + 1)).clamp(max=self.buckets - 1)
        logits = self.classifier(encoded.last_hidden_state[:, 0]).float()
        loss = F.cross_entropy(logits, target)
        return {"length": loss}, {"length_acc": (logits.argmax(-1) == target).float().mean().detach()}


@pytest.fixture(scope="module", autouse=True)
def _forget_the_registration_afterwards():
    """The registration is this module's: later test modules see the registry as shipped."""
    yield
    OBJECTIVES.remove("length_bucket")


def test_an_objective_registered_in_a_test_file_trains_beside_mlm(english, tmp_path):
    run = tmp_path / "run"
    config = write_yaml(tmp_path / "run.yaml", small_pretrain_config(
        english, run, __file__, objectives={"mlm": 1.0, "length_bucket": 0.5},
        objective_options={"length_bucket": {"buckets": 3}}))
    result = run_bertology(["pretrain", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = train_rows(run)
    assert len(rows) == 6 and {"loss/mlm", "loss/length", "length_acc"} <= set(rows[0])
    assert all(torch.isfinite(torch.tensor(r["loss/length"])) for r in rows)

    from bertology.runs.pretrain import Pretraining, load_config

    model = Pretraining.build(load_config(str(config))).model
    assert isinstance(model.objectives["length_bucket"], LengthBucket)
    assert model.objectives["length_bucket"].classifier.out_features == 3


def test_the_new_objectives_name_and_options_are_checked_at_load(english, tmp_path):
    for sections, expected in (
        ({"objectives": {"mlm": 1.0, "length_bucket": 1.0}, "objective_options": {"length_bucket": {"bucket": 3}}},
         "objective_options.length_bucket: unknown field 'bucket'; did you mean 'buckets'?"),
        ({"objectives": {"mlm": 1.0, "length_buckt": 1.0}}, "did you mean 'length_bucket'?"),
        ({"objectives": {"mlm": 1.0, "length_bucket": 1.0}, "objective_options": {"length_bucket": {"buckets": 1}}},
         "field 'buckets' must be >= 2"),
    ):
        config = write_yaml(tmp_path / "run.yaml", small_pretrain_config(english, tmp_path / "run", __file__,
                                                                         **sections))
        result = run_bertology(["pretrain", str(config)], tmp_path)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
