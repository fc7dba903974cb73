"""ALBERT: BERT's blocks with a factorized embedding (vocabulary x E, then E x H) and cross-layer sharing."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .bert import EMBEDDING_RULES, LEGACY_NAMES, BertForMaskedLM, BertForPreTraining, BertModel
from .checkpoint import NameMap, Rule
from .config import BertConfig
from .embeddings import TokenPositionSegmentEmbedding
from .encoder import Encoder, EncoderLayer
from .family import Family, register_family
from .pretrained import register

SHARING = ("all", "attention", "ffn", "none")


@dataclass
class AlbertConfig(BertConfig):
    vocab_size: int = 30000
    hidden_size: int = 768
    intermediate_size: int = 3072
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    #: E, the width of the token embeddings before the projection to hidden_size
    embedding_size: int = 128
    #: layers are split into this many groups that share parameters ("all" sharing; 1 = one set for all)
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    #: what the layers share: "all" (ALBERT), "attention" only, "ffn" (feed-forward) only, or "none"
    sharing: str = "all"
    model_type: str = "albert"

    def validate(self, where: str = "") -> None:
        super().validate(where)
        if self.embedding_size <= 0:
            raise ConfigError(f"{where}field 'embedding_size' must be positive, got {self.embedding_size}")
        if self.sharing not in SHARING:
            raise ConfigError(f"{where}field 'sharing' is {self.sharing!r}; choose one of {list(SHARING)}")
        if self.inner_group_num != 1:
            raise ConfigError(f"{where}field 'inner_group_num' is {self.inner_group_num}; only 1 is supported")
        if not 1 <= self.num_hidden_groups <= self.num_hidden_layers:
            raise ConfigError(f"{where}field 'num_hidden_groups' must lie in [1, num_hidden_layers], "
                              f"got {self.num_hidden_groups}")
        if not self.uniform_layers:
            raise ConfigError(f"{where}fields 'pruned_heads' / 'intermediate_sizes' are set, but ALBERT shares "
                              "its layers across depth, so one layer cannot lose heads or neurons alone; "
                              "head and neuron pruning support BERT-style encoders only")
        if self.sharing != "all":
            # transformers' format stores these as one group per layer (shared tensors written per layer)
            self.num_hidden_groups = self.num_hidden_layers


def albert_encoder(config: AlbertConfig) -> Encoder:
    """The layer stack for a sharing policy: distinct layers and the order that applies them."""
    layers_n = config.num_hidden_layers
    if config.sharing == "all":
        groups = config.num_hidden_groups
        order = [int(i / (layers_n / groups)) for i in range(layers_n)]  # transformers' group assignment
        return Encoder([EncoderLayer(config) for _ in range(groups)], order)
    layers = [EncoderLayer(config) for _ in range(layers_n)]
    if config.sharing == "attention":
        for layer in layers[1:]:
            layer.attention = layers[0].attention
    elif config.sharing == "ffn":
        for layer in layers[1:]:
            layer.ffn = layers[0].ffn
    return Encoder(layers)


_LAYER = "encoder.albert_layer_groups.{i}.albert_layers.0."
ALBERT_ENCODER_NAMES = NameMap(
    [
        *EMBEDDING_RULES,
        Rule("encoder.embedding_hidden_mapping_in.{w}", "embedding_projection.{w}"),
        Rule(_LAYER + "attention.{part}.{w}", "encoder.layers.{i}.attention.qkv.{w}", parts=("query", "key", "value")),
        Rule(_LAYER + "attention.dense.{w}", "encoder.layers.{i}.attention.out.{w}"),
        Rule(_LAYER + "attention.LayerNorm.{w}", "encoder.layers.{i}.attention_norm.{w}"),
        Rule(_LAYER + "ffn.{w}", "encoder.layers.{i}.ffn.up.{w}"),
        Rule(_LAYER + "ffn_output.{w}", "encoder.layers.{i}.ffn.down.{w}"),
        Rule(_LAYER + "full_layer_layer_norm.{w}", "encoder.layers.{i}.ffn_norm.{w}"),
        Rule("pooler.{w}", "pooler.dense.{w}"),
    ],
    legacy=LEGACY_NAMES,
)
ALBERT_MLM_NAMES = NameMap(
    [
        Rule("predictions.dense.{w}", "mlm_head.transform.{w}"),
        Rule("predictions.LayerNorm.{w}", "mlm_head.norm.{w}"),
        Rule("predictions.bias", "mlm_head.decoder.bias"),
        Rule("predictions.decoder.bias", "mlm_head.decoder.bias", load_only=True),
        Rule("predictions.decoder.weight", "mlm_head.decoder.weight", load_only=True),
    ],
    legacy=LEGACY_NAMES,
)
ALBERT_SOP_NAMES = NameMap([Rule("sop_classifier.classifier.{w}", "sentence_head.classifier.{w}")])


@register("albert")
class AlbertModel(BertModel):
    config_class = AlbertConfig
    base_prefix = "albert."

    def build_embeddings(self, config: AlbertConfig, **options) -> nn.Module:
        self.embedding_projection = nn.Linear(config.embedding_size, config.hidden_size)
        return TokenPositionSegmentEmbedding(config, width=config.embedding_size)

    def build_encoder(self, config: AlbertConfig) -> Encoder:
        return albert_encoder(config)

    @classmethod
    def name_map(cls) -> NameMap:
        return ALBERT_ENCODER_NAMES

    def embed(self, ids: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor | None,
              **token_inputs: torch.Tensor) -> torch.Tensor:
        return self.embedding_projection(self.embeddings(ids, positions, segments, **token_inputs))


@register("albert")
class AlbertForMaskedLM(BertForMaskedLM):
    config_class = AlbertConfig
    encoder_class = AlbertModel
    base_prefix = "albert."

    @classmethod
    def name_map(cls) -> NameMap:
        return ALBERT_ENCODER_NAMES.with_prefix("albert.", "bert.") + ALBERT_MLM_NAMES


@register("albert")
class AlbertForPreTraining(BertForPreTraining):
    """ALBERT's MLM head and its sentence-order (SOP) head; pass SOP labels as `next_sentence_label`."""

    config_class = AlbertConfig
    encoder_class = AlbertModel
    base_prefix = "albert."

    @classmethod
    def name_map(cls) -> NameMap:
        return ALBERT_ENCODER_NAMES.with_prefix("albert.", "bert.") + ALBERT_MLM_NAMES + ALBERT_SOP_NAMES


register_family(Family("albert", AlbertConfig, AlbertModel, AlbertForPreTraining, AlbertForMaskedLM))
