"""Capitalization prediction (ERNIE 2.0): from an uncased input, tell how each token was written."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..models.bert import BertModel
from ..models.config import BertConfig
from .base import Objective, accuracy, register

#: no cased letters, lower, Title, UPPER, mIxEd (as recorded by `corpus prepare --record-case`)
CASE_CLASSES = 5


@register("capitalization")
class Capitalization(Objective):
    needs_case = True

    def __init__(self, config: BertConfig, encoder: BertModel, options: None = None) -> None:
        super().__init__()
        self.head = nn.Linear(config.hidden_size, CASE_CLASSES)

    def forward(self, encoded, batch):
        target = batch["case_labels"]
        keep = target != -100
        logits = self.head(encoded.last_hidden_state[keep])
        return ({"capitalization": F.cross_entropy(logits.float(), target[keep])},
                {"capitalization_acc": accuracy(logits, target[keep])})
