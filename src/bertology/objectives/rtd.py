"""Replaced-token detection (ELECTRA): a small generator fills the masks, the encoder spots the fakes.

The generator is a shallower encoder (`generator_layers`, default a quarter of the depth) that shares the
embedding module, and so the tied MLM decoder, with the discriminator, which is the encoder being trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.activations import ACTIVATIONS
from ..models.bert import BertModel
from ..models.config import BertConfig
from ..models.heads import IGNORE_INDEX, MaskedLMHead
from ..utils.typed import Where, as_where, check_fields
from .base import Objective, accuracy, register


@dataclass
class RtdOptions:
    """`objective_options.rtd`: the generator's depth and its sampling temperature."""

    #: generator layers; None: a quarter of the encoder's depth (at least one)
    generator_layers: int | None = None
    #: softmax temperature of the generator's samples (1: its own distribution)
    temperature: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        if self.generator_layers is not None and self.generator_layers < 1:
            raise ConfigError(f"{where}field 'generator_layers' must be >= 1 or null, got {self.generator_layers}")
        if not self.temperature > 0:
            raise ConfigError(f"{where}field 'temperature' must be positive, got {self.temperature}")


@register("rtd", options=RtdOptions)
class ReplacedTokenDetection(Objective):
    needs_masking = True
    conflicts = ("mlm",)
    conflict_reason = "'rtd' trains its own masked-LM generator"

    def __init__(self, config: BertConfig, encoder: BertModel, options: RtdOptions | None = None) -> None:
        super().__init__()
        if type(encoder) is not BertModel:
            # ALBERT's narrower embeddings, RoBERTa's positions and ChineseBERT's pinyin inputs would each need
            # their own generator; not built yet.
            raise ConfigError(f"the rtd objective supports the bert family only, not {type(encoder).__name__}")
        options = options or RtdOptions()
        layers = options.generator_layers or max(1, config.num_hidden_layers // 4)
        self.temperature = float(options.temperature)
        self.generator = BertModel(config.replace(num_hidden_layers=layers), add_pooling_layer=False)
        self.generator.embeddings = encoder.embeddings  # shared token, position and segment embeddings
        self.generator_head = MaskedLMHead(config, encoder.embeddings.word)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.classifier = nn.Linear(config.hidden_size, 1)

    def prepare(self, model, batch):
        labels = batch["labels"]
        out = self.generator(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), unpad=True)
        logits, gen_loss = self.generator_head.logits_and_loss(out.last_hidden_state, labels)
        masked = labels != IGNORE_INDEX
        with torch.no_grad():
            probs = torch.softmax(logits.float() / self.temperature, dim=-1)
            sampled = torch.multinomial(probs, 1).squeeze(-1) if probs.shape[0] else labels[masked]
        original = torch.where(masked, labels, batch["input_ids"])
        corrupted = batch["input_ids"].clone()
        corrupted[masked] = sampled
        return {**batch, "input_ids": corrupted, "rtd_labels": (corrupted != original).float(),
                "_generator_loss": gen_loss, "_generator_acc": accuracy(logits, labels[masked])}

    def forward(self, encoded, batch):
        keep = batch["attention_mask"].bool()
        hidden = encoded.last_hidden_state[keep]
        logits = self.classifier(self.activation(self.dense(hidden))).squeeze(-1)
        target = batch["rtd_labels"][keep]
        loss = F.binary_cross_entropy_with_logits(logits.float(), target)
        acc = ((logits > 0).float() == target).float().mean().detach()
        return ({"generator": batch["_generator_loss"], "rtd": loss},
                {"rtd_acc": acc, "generator_acc": batch["_generator_acc"],
                 "replaced_share": target.mean().detach()})
