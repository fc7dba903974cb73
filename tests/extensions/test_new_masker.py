"""A new masking strategy is one module with its registration: defined here, chosen by name from YAML."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from ext_helpers import run_bertology, small_pretrain_config, train_rows, write_yaml

from bertology.data.maskers import MASKERS, Masker
from bertology.errors import ConfigError


@dataclass
class StrideOptions:
    #: predict every `stride`-th maskable token (up to the budget)
    stride: int = 3

    def validate(self, where: str = "") -> None:
        if self.stride < 1:
            raise ConfigError(f"{where}field 'stride' must be >= 1, got {self.stride}")


@MASKERS.register("stride", options=StrideOptions)
class StrideMasker(Masker):
    """Deterministic: the first `budget` maskable positions at a fixed stride (a toy, easy to check)."""

    def select(self, tokens, maskable, word_starts, rng):
        candidates = np.flatnonzero(maskable)[:: self.options.stride][: self.budget(int(maskable.sum()))]
        selected = np.zeros(tokens.shape, dtype=bool)
        selected[candidates] = True
        return selected


@pytest.fixture(scope="module", autouse=True)
def _forget_the_registration_afterwards():
    """The registration is this module's: later test modules see the registry as shipped."""
    yield
    MASKERS.remove("stride")


def test_a_masker_registered_in_a_test_file_runs_by_name(english, tmp_path):
    run = tmp_path / "run"
    config = write_yaml(tmp_path / "run.yaml", small_pretrain_config(
        english, run, __file__, masking={"strategy": "stride", "options": {"stride": 2}, "rate": 0.15},
        objectives={"mlm": 1.0}))
    result = run_bertology(["pretrain", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = train_rows(run)
    assert [r["step"] for r in rows] == list(range(1, 7)) and all(np.isfinite(r["loss"]) for r in rows)

    # in this process too (the registration above ran at import): the run's collator uses the new strategy
    from bertology.runs.pretrain import Pretraining, load_config

    pretraining = Pretraining.build(load_config(str(config)))
    masker = pretraining.collator.masker
    assert isinstance(masker, StrideMasker) and masker.options.stride == 2
    tokens = np.arange(5, 25)
    selected = masker.select(tokens, np.ones(20, dtype=bool), np.ones(20, dtype=bool), None)
    assert np.flatnonzero(selected).tolist() == [0, 2, 4]  # budget: 15% of 20 rounds to 3


def test_the_new_maskers_options_are_checked_at_load(english, tmp_path):
    config = write_yaml(tmp_path / "run.yaml", small_pretrain_config(
        english, tmp_path / "run", __file__, masking={"strategy": "stride", "options": {"strid": 2}}))
    result = run_bertology(["pretrain", str(config)], tmp_path)
    assert result.returncode == 2
    assert "masking.options: unknown field 'strid'; did you mean 'stride'?" in result.stderr
    assert str(config) in result.stderr and "Traceback" not in result.stderr
