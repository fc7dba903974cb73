"""A new model family is one module with its registration: defined here, pretrained by name from YAML,
exported, and loaded back by `bertology.load` from its config.json's model_type."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from ext_helpers import run_bertology, small_pretrain_config, train_rows, write_yaml

import bertology
from bertology.models.bert import BertModel
from bertology.models.config import BertConfig
from bertology.models.embeddings import TokenPositionSegmentEmbedding
from bertology.models.family import FAMILIES, Family, register_family


@dataclass
class ScaledConfig(BertConfig):
    #: the embeddings are multiplied by this before the encoder (a toy architectural change)
    embedding_scale: float = 1.0
    model_type: str = "scaled-bert"


class ScaledEmbeddings(TokenPositionSegmentEmbedding):
    """BERT's input layer times a constant (same tensors, so the Hugging Face name map still applies)."""

    def __init__(self, config: ScaledConfig) -> None:
        super().__init__(config)
        self.scale = config.embedding_scale

    def forward(self, *args, **kwargs):
        return super().forward(*args, **kwargs) * self.scale


class ScaledBertModel(BertModel):
    config_class = ScaledConfig

    def build_embeddings(self, config, **options):
        return ScaledEmbeddings(config)


register_family(Family("scaled-bert", ScaledConfig, ScaledBertModel))


@pytest.fixture(scope="module", autouse=True)
def _forget_the_registration_afterwards():
    """The registration is this module's: later test modules see the registry as shipped."""
    yield
    FAMILIES.remove("scaled-bert")


def test_a_family_registered_in_a_test_file_pretrains_exports_and_loads(english, tmp_path):
    run = tmp_path / "run"
    config = write_yaml(tmp_path / "run.yaml", small_pretrain_config(
        english, run, __file__, model={"family": "scaled-bert", "embedding_scale": 0.5}, objectives={"mlm": 1.0}))
    result = run_bertology(["pretrain", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(train_rows(run)) == 6

    model = bertology.load(run / "model")
    assert isinstance(model, ScaledBertModel) and model.config.embedding_scale == 0.5
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    half = model(ids).last_hidden_state
    model.embeddings.scale = 1.0
    assert not torch.allclose(half, model(ids).last_hidden_state)  # the family's own block is in the path


def test_the_new_familys_fields_are_checked_at_load(english, tmp_path):
    config = write_yaml(tmp_path / "run.yaml", small_pretrain_config(
        english, tmp_path / "run", __file__, model={"family": "scaled-bert", "embedding_scal": 0.5}))
    result = run_bertology(["pretrain", str(config)], tmp_path)
    assert result.returncode == 2
    assert "model: unknown field 'embedding_scal'; did you mean 'embedding_scale'?" in result.stderr, result.stderr
