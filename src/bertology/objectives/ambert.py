"""AMBERT pretraining: masked-LM on the fine-grained and on the coarse-grained sequence, one shared encoder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..models.ambert import AmbertConfig, AmbertModel
from ..models.heads import IGNORE_INDEX, MaskedLMHead
from ..models.pretrained import init_bert_weights
from ..training.protocol import StepOutput
from .base import accuracy


class AmbertPretrainingModel(nn.Module):
    pair_task = None
    needs_case = False
    needs_masking = True

    def __init__(self, config: AmbertConfig) -> None:
        super().__init__()
        self.config = config
        self.ambert = AmbertModel(config, add_pooling_layer=False, unpad_inputs=True)
        self.fine_head = MaskedLMHead(config, self.ambert.fine.embeddings.word)
        self.coarse_head = MaskedLMHead(config.coarse(), self.ambert.coarse.embeddings.word)
        shared = {id(p) for p in self.ambert.parameters()}
        for head in (self.fine_head, self.coarse_head):
            init_bert_weights(head, config.initializer_range, keep=shared)

    def forward(self, **batch: Any) -> StepOutput:
        fine, coarse = self.ambert(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                   coarse_ids=batch["coarse_ids"], coarse_attention_mask=batch["coarse_attention_mask"],
                                   coarse_token_type_ids=batch["coarse_token_type_ids"])
        fine_logits, fine_loss = self.fine_head.logits_and_loss(fine.last_hidden_state, batch["labels"])
        coarse_logits, coarse_loss = self.coarse_head.logits_and_loss(coarse.last_hidden_state,
                                                                      batch["coarse_labels"])
        labels, coarse_labels = batch["labels"], batch["coarse_labels"]
        return StepOutput(
            {"mlm": fine_loss, "mlm_coarse": coarse_loss},
            {"mlm_acc": accuracy(fine_logits, labels[labels != IGNORE_INDEX]),
             "mlm_coarse_acc": accuracy(coarse_logits, coarse_labels[coarse_labels != IGNORE_INDEX])},
        )

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """The encoder and both embedding tables (our own layout; the MLM heads stay in the checkpoints)."""
        return self.ambert.save_pretrained(folder)
