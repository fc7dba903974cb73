"""One registration per model family, read by everything that needs to know the families.

A family module (bert.py, albert.py, ...) ends with `register_family(Family(...))`: its config and encoder
classes, its Hugging Face export classes and its pretraining defaults. `load(folder)`, the pretraining run and
the export look the family up here, so adding a family touches one new module and nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..utils.registry import Registry
from .config import BertConfig

if TYPE_CHECKING:
    from .pretrained import PreTrainedModel


class VocabInfo(Protocol):
    """What a config's defaults need from a tokenizer (a tokenizer, or a stand-in before one is read)."""

    vocab_size: int
    pad_token_id: int


#: (the recipe's model fields, tokenizer, longest input) -> config fields the recipe may leave out
Defaults = Callable[[Mapping[str, Any], VocabInfo, int], dict[str, Any]]


def bert_defaults(spec: Mapping[str, Any], tokenizer: VocabInfo, max_length: int) -> dict[str, Any]:
    """The tokenizer's vocabulary and padding id, and position rows for max(512, max_length) tokens."""
    return {"vocab_size": tokenizer.vocab_size, "pad_token_id": tokenizer.pad_token_id,
            "max_position_embeddings": max(512, max_length)}


class FamilyPretraining(Protocol):
    """A family's own pretraining, for a family the shared PretrainingModel cannot train (AMBERT's two
    granularities). Models may not import training code, so the objectives package attaches it."""

    @classmethod
    def check(cls, objectives: list[str], where: str = "") -> None:
        """Refuse objectives this pretraining does not train (at load, before any data is read)."""

    def build_model(self, config: Any, objectives: list[str], corpus: Any, documents: Any) -> Any:
        """The model to train, given the corpus and its training documents."""

    def collator(self, collator: Any, tokenizer: Any, run_dir: str) -> Any:
        """The run's collator, wrapped with whatever the family's model reads besides the usual batch."""


@dataclass
class Family:
    """A model family: what to build, what to export to, and how pretraining fills in its config."""

    #: the registry key, and the `model_type` its config.json carries
    name: str
    config_class: type[BertConfig]
    #: the bare encoder (what `load` returns for a folder whose architectures it does not know)
    encoder_class: type[PreTrainedModel]
    #: Hugging Face export of an MLM + sentence-pair head run, and of an MLM-only run (None: no such class)
    pretraining_class: type[PreTrainedModel] | None = None
    masked_lm_class: type[PreTrainedModel] | None = None
    defaults: Defaults = bert_defaults
    #: a family-specific pretraining (a FamilyPretraining class); None: the shared PretrainingModel
    pretraining: type[FamilyPretraining] | None = None

    def config_fields(self) -> list[str]:
        """The config fields a recipe may set (its `model_type` is the family's own)."""
        return [f.name for f in dataclasses.fields(self.config_class) if f.name not in ("extra", "model_type")]


FAMILIES: Registry[Family] = Registry("model family")


def register_family(family: Family) -> Family:
    """Make a family known to `load`, the pretraining run and the export."""
    FAMILIES.add(family.name, family)
    return family


def family_for_config(config: BertConfig) -> Family | None:
    """The family whose config class is exactly the type of `config` (None for an unregistered one)."""
    return next((f for f in FAMILIES.values() if type(config) is f.config_class), None)


def family_for_encoder(encoder_class: type) -> Family | None:
    """The family whose bare encoder is exactly `encoder_class` (None for an unregistered one)."""
    return next((f for f in FAMILIES.values() if f.encoder_class is encoder_class), None)
