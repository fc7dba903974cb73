"""Masked-language modelling: predict the original token at masked positions (logits only there)."""

from __future__ import annotations

from ..models.bert import BertModel
from ..models.config import BertConfig
from ..models.heads import IGNORE_INDEX, MaskedLMHead
from .base import Objective, hit_rate, register


@register("mlm")
class MaskedLM(Objective):
    needs_masking = True

    def __init__(self, config: BertConfig, encoder: BertModel, options: None = None) -> None:
        super().__init__()
        self.head = MaskedLMHead(config, encoder.embeddings.word)

    def forward(self, encoded, batch):
        labels = batch["labels"]
        logits, loss = self.head.logits_and_loss(encoded.last_hidden_state, labels)
        target = labels[labels != IGNORE_INDEX]
        # mlm_acc counts the labelled tokens left unchanged (BERT's 10%), which a model predicts by copying its
        # input; mlm_acc_hidden counts only those the input hides ([MASK] or a random token): what was learnt
        hidden = (batch["input_ids"] != labels)[labels != IGNORE_INDEX]
        hits = logits.argmax(-1) == target  # one argmax for both; no copy of the logits
        return {"mlm": loss}, {"mlm_acc": hit_rate(hits), "mlm_acc_hidden": hit_rate(hits[hidden])}

