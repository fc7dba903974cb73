"""Token-document relation (ERNIE 2.0, Sun et al. 2020): does this token of the first sentence occur again
elsewhere in the text around it?

For each ordinary token of the instance's first sentence (not [CLS]/[SEP], nor [UNK], which would "match"
every other unknown token), the target is 1 when its original id (before masking; masked positions count
too, their label reads the hidden token) occurs among the original ids of the ordinary tokens of the rest
of the instance, else 0. The first sentence is the body
up to the first `sentence_starts` mark after position 1 (a sentence the length budget cut at the front of
the instance counts as the first one); an instance holding one sentence has no counted positions.

How this departs from ERNIE 2.0: ERNIE asks whether a token of a segment appears in the other segments of the
whole original document; we look at the rest of the instance only, which `doc_sentences` draws from one
document (a window of it), so the positives are those of a shorter context and the task needs no document
index. Other formats are refused: `full_sentences` packs across document ends, and in the pair formats
segment B may come from another document.

Loss: mean binary cross-entropy over the counted positions, from each token's final hidden state through a
small head (dense, activation, one logit). Metrics: accuracy and the share of positive targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import Instance, InstanceTransform, TransformContext
from ..errors import ConfigError
from ..models.activations import ACTIVATIONS
from ..models.bert import BertModel
from ..models.config import BertConfig
from ..models.heads import IGNORE_INDEX
from .base import Objective, RunFacts, register

LABEL_FIELD = "token_document_labels"


def first_sentence_end(item: Instance) -> int | None:
    """Index of the first sentence start after position 1 (where the rest of the instance begins), or None."""
    starts = np.flatnonzero(np.asarray(item["sentence_starts"], bool)[2:]) + 2
    return int(starts[0]) if len(starts) else None


class TokenDocumentLabels(InstanceTransform):
    """Adds `token_document_labels`: 1/0 at the first sentence's ordinary tokens, -100 elsewhere."""

    name = "token_document"
    token_fields = {LABEL_FIELD: IGNORE_INDEX}

    def __init__(self, unk_token_id: int | None = None) -> None:
        self.unk = unk_token_id

    def __call__(self, item: Instance, rng: np.random.Generator) -> Instance:
        original = np.asarray(item["original_ids"], dtype=np.int64)
        ordinary = np.asarray(item["maskable"], bool) & (original != (-1 if self.unk is None else self.unk))
        labels = np.full(len(original), IGNORE_INDEX, dtype=np.int64)
        end = first_sentence_end(item)
        if end is not None:
            rest = original[end:][ordinary[end:]]
            first = np.flatnonzero(ordinary[:end])
            labels[first] = np.isin(original[first], rest)
        item[LABEL_FIELD] = labels
        return item


@register("token_document")
class TokenDocumentRelation(Objective):
    """Binary: does the token's id occur in the other sentences of its (single-document) instance?"""

    def __init__(self, config: BertConfig, encoder: BertModel, options: None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.classifier = nn.Linear(config.hidden_size, 1)

    @classmethod
    def instance_transform(cls, options: Any, context: TransformContext) -> TokenDocumentLabels:
        return TokenDocumentLabels(context.unk_token_id)

    @classmethod
    def check_run(cls, name: str, options: Any, run: RunFacts) -> None:
        if run.format != "doc_sentences":
            why = ("it packs sentences across document ends" if run.format == "full_sentences"
                   else "its segment B may come from another document")
            raise ConfigError(f"objective '{name}' needs several sentences of one document in each instance "
                              f"(data.format doc_sentences), not '{run.format}': {why}")

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.activation(self.dense(hidden))).squeeze(-1)

    def forward(self, encoded, batch):
        target = batch[LABEL_FIELD]
        keep = target != IGNORE_INDEX
        logits = self.logits(encoded.last_hidden_state[keep]).float()
        y = target[keep].float()
        if y.numel() == 0:  # no instance of the batch holds two sentences: a zero that keeps the graph
            zero = logits.sum() * 0.0
            return {"token_document": zero}, {"token_document_acc": zero.detach(),
                                              "token_document_positive_share": zero.detach()}
        loss = F.binary_cross_entropy_with_logits(logits, y)
        acc = ((logits > 0).float() == y).float().mean().detach()
        return {"token_document": loss}, {"token_document_acc": acc, "token_document_positive_share": y.mean()}
