"""Sentence-pair tasks on the [CLS] vector: NSP, SOP, three-way order and sentence distance."""

from __future__ import annotations

import torch.nn.functional as F

from ..data.formats import PAIR_TASKS
from ..models.bert import BertModel
from ..models.config import BertConfig
from ..models.heads import SentencePairHead
from .base import Objective, accuracy, register


class SentencePair(Objective):
    needs_pooler = True
    task = "nsp"

    def __init__(self, config: BertConfig, encoder: BertModel, options: None = None) -> None:
        super().__init__()
        self.head = SentencePairHead(config.hidden_size, PAIR_TASKS[self.task])

    def forward(self, encoded, batch):
        logits = self.head(encoded.pooler_output)
        target = batch["sentence_label"]
        return {self.task: F.cross_entropy(logits.float(), target)}, {f"{self.task}_acc": accuracy(logits, target)}


def _task(name: str) -> type[SentencePair]:
    cls = type(f"SentencePair_{name}", (SentencePair,), {"task": name, "pair_task": name,
                                                        "__doc__": f"The '{name}' sentence-pair task."})
    return register(name)(cls)


NextSentence = _task("nsp")        # is B the continuation of A, or from another document?
SentenceOrder = _task("sop")       # are A and B in their original order? (ALBERT)
ThreeWayOrder = _task("order")     # B follows A, precedes it, or comes from elsewhere
SentenceDistance = _task("distance")  # B adjacent, same document but not adjacent, or another document
