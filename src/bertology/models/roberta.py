"""RoBERTa: BERT's blocks with positions counted after the padding index, one segment type, its own LM head names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .bert import BERT_ENCODER_NAMES, LEGACY_NAMES, BertForMaskedLM, BertModel
from .checkpoint import NameMap, Rule
from .config import BertConfig
from .family import Family, VocabInfo, bert_defaults, register_family
from .pretrained import register


@dataclass
class RobertaConfig(BertConfig):
    vocab_size: int = 50265
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    model_type: str = "roberta"


ROBERTA_LM_NAMES = NameMap(
    [
        Rule("lm_head.dense.{w}", "mlm_head.transform.{w}"),
        Rule("lm_head.layer_norm.{w}", "mlm_head.norm.{w}"),
        Rule("lm_head.bias", "mlm_head.decoder.bias"),
        Rule("lm_head.decoder.bias", "mlm_head.decoder.bias", load_only=True),
        Rule("lm_head.decoder.weight", "mlm_head.decoder.weight", load_only=True),
    ],
    legacy=LEGACY_NAMES,
)


@register("roberta")
class RobertaModel(BertModel):
    config_class = RobertaConfig
    base_prefix = "roberta."

    @property
    def max_sequence_length(self) -> int:
        # positions start after the padding index, so two rows of the table are never used by text
        return self.config.max_position_embeddings - self.config.pad_token_id - 1

    def position_ids_for(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Real tokens count from pad+1; padding sits at the padding index (fairseq's convention)."""
        real = input_ids.ne(self.config.pad_token_id).long()
        return torch.cumsum(real, dim=1) * real + self.config.pad_token_id


@register("roberta")
class RobertaForMaskedLM(BertForMaskedLM):
    config_class = RobertaConfig
    encoder_class = RobertaModel
    base_prefix = "roberta."

    @classmethod
    def name_map(cls) -> NameMap:
        return BERT_ENCODER_NAMES.with_prefix("roberta.", "bert.") + ROBERTA_LM_NAMES


def roberta_defaults(spec: Mapping[str, Any], tokenizer: VocabInfo, max_length: int) -> dict[str, Any]:
    """Positions start after the padding index, so the table needs pad + 1 more rows; one segment type."""
    defaults = bert_defaults(spec, tokenizer, max_length)
    defaults["max_position_embeddings"] += tokenizer.pad_token_id + 1
    return {**defaults, "type_vocab_size": 1}


register_family(Family("roberta", RobertaConfig, RobertaModel, None, RobertaForMaskedLM, defaults=roberta_defaults))
