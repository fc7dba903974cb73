"""AMBERT: fine-grained tokens (characters, word pieces) and coarse-grained tokens (words, phrases), each with
its own embedding table, through one shared encoder (Zhang and Li, 2021).

The two sides are two `BertModel`s whose encoder and pooler are the same module objects, so every encoder
parameter is shared by construction; only the embedding tables differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .bert import BertModel
from .checkpoint import NameMap, Rule
from .config import BertConfig
from .family import Family, VocabInfo, bert_defaults, register_family
from .outputs import EncoderOutput
from .pretrained import PreTrainedModel, register


@dataclass
class AmbertConfig(BertConfig):
    #: size of the coarse-grained (word / phrase) vocabulary
    coarse_vocab_size: int = 0
    model_type: str = "ambert"

    def validate(self, where: str = "") -> None:
        super().validate(where)
        if self.coarse_vocab_size <= 0:
            raise ConfigError(f"{where}field 'coarse_vocab_size' must be positive, got {self.coarse_vocab_size}")

    def coarse(self) -> BertConfig:
        return BertConfig.from_dict({**self.to_dict(), "vocab_size": self.coarse_vocab_size, "model_type": "bert"})


# Our own layout (transformers has no AMBERT): the fine side whole, the coarse side's embeddings only (its
# encoder and pooler are the fine side's).
AMBERT_NAMES = NameMap([Rule("fine.{rest}", "fine.{rest}"), Rule("coarse.embeddings.{rest}", "coarse.embeddings.{rest}")])


@register("ambert")
class AmbertModel(PreTrainedModel):
    config_class = AmbertConfig

    def __init__(self, config: AmbertConfig, add_pooling_layer: bool = True, unpad_inputs: bool | None = None) -> None:
        super().__init__()
        self.config = config
        self.fine = BertModel(config, add_pooling_layer=add_pooling_layer, unpad_inputs=unpad_inputs)
        self.coarse = BertModel(config.coarse(), add_pooling_layer=False, unpad_inputs=unpad_inputs)
        self.coarse.encoder = self.fine.encoder  # one encoder for both granularities
        self.coarse.pooler = self.fine.pooler

    @classmethod
    def name_map(cls) -> NameMap:
        return AMBERT_NAMES

    @property
    def unpad_inputs(self) -> bool | None:
        return self.fine.unpad_inputs

    @unpad_inputs.setter
    def unpad_inputs(self, value: bool | None) -> None:
        self.fine.unpad_inputs = self.coarse.unpad_inputs = value

    #: views of one input the encoder returns (fine characters and coarse words): task heads read both
    granularities = 2

    #: batch keys the encoder reads besides ids, mask and segments (the coarse sequence, from AmbertTokenizer)
    token_inputs = ("coarse_ids", "coarse_attention_mask", "coarse_token_type_ids")

    @property
    def embeddings(self) -> torch.nn.Module:
        """The fine-grained input layer (what adversarial training perturbs, what a summary counts first)."""
        return self.fine.embeddings

    @property
    def pooler(self) -> torch.nn.Module | None:
        return self.fine.pooler

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, coarse_ids: torch.Tensor | None = None,
                coarse_attention_mask: torch.Tensor | None = None, coarse_token_type_ids: torch.Tensor | None = None,
                **kwargs) -> EncoderOutput:
        """The fine-grained output, the same type every family returns; with `coarse_ids`, the coarse side's
        output through the same encoder rides along as its `coarse` field."""
        fine = self.fine(input_ids, attention_mask, token_type_ids, **kwargs)
        if coarse_ids is not None:
            fine.coarse = self.coarse(coarse_ids, coarse_attention_mask, coarse_token_type_ids, **kwargs)
        return fine


def agreement_gap(fine_logits: torch.Tensor, coarse_logits: torch.Tensor, multi_label: bool = False) -> torch.Tensor:
    """Mean over examples of ||p_fine - p_coarse||^2, how far the two granularities' predictions are apart:
    class probabilities for single-label classification, per-label probabilities for multi-label, the
    predicted values themselves for a one-output head (regression)."""
    fine, coarse = fine_logits.float(), coarse_logits.float()
    if multi_label:
        fine, coarse = fine.sigmoid(), coarse.sigmoid()
    elif fine.shape[-1] > 1:
        fine, coarse = fine.softmax(-1), coarse.softmax(-1)
    return (fine - coarse).pow(2).sum(-1).mean()


def agreement_loss(fine_logits: torch.Tensor, coarse_logits: torch.Tensor, combined_logits: torch.Tensor,
                   labels: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """AMBERT's fine-tuning loss for classification, as we read the paper: cross-entropy of the fine, coarse
    and combined ([CLS_fine; CLS_coarse]) classifiers, plus `weight` times the squared distance between the
    fine and coarse predicted distributions, which asks the two granularities to agree."""
    ce = sum(F.cross_entropy(logits.float(), labels) for logits in (fine_logits, coarse_logits, combined_logits))
    return ce + weight * agreement_gap(fine_logits, coarse_logits)


def ambert_defaults(spec: Mapping[str, Any], tokenizer: VocabInfo, max_length: int) -> dict[str, Any]:
    """BERT's, plus a cap on the coarse vocabulary; the vocabulary built from the corpus then sets its size."""
    return {**bert_defaults(spec, tokenizer, max_length), "coarse_vocab_size": 20000}


register_family(Family("ambert", AmbertConfig, AmbertModel, defaults=ambert_defaults))
