"""Masked-language modelling: predict the original token at masked positions (logits only there)."""

from __future__ import annotations

from ..models.bert import BertModel
from ..models.config import BertConfig
from ..models.heads import IGNORE_INDEX, MaskedLMHead
from .base import Objective, accuracy, register


@register("mlm")
class MaskedLM(Objective):
    needs_masking = True

    def __init__(self, config: BertConfig, encoder: BertModel, options: None = None) -> None:
        super().__init__()
        self.head = MaskedLMHead(config, encoder.embeddings.word)

    def forward(self, encoded, batch):
        labels = batch["labels"]
        logits, loss = self.head.logits_and_loss(encoded.last_hidden_state, labels)
        return {"mlm": loss}, {"mlm_acc": accuracy(logits, labels[labels != IGNORE_INDEX])}
