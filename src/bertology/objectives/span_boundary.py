"""Span boundary objective (SpanBERT, Joshi et al. 2020): predict each token of a masked span from the
encoder's outputs at the two tokens just outside the span and the token's position inside it.

The point is to make the boundary representations summarise the span's content, which helps span-level
tasks (extractive QA, coreference). Spans are read from the MLM labels: every maximal run of consecutive
labelled positions is one span (two masked spans that touch merge into one), so the objective works with any
masker, but only span masking gives it spans longer than a token; with token masking most spans are single
tokens. An instance transform finds the spans in the collator (off the training step) and hands them to the
objective as per-token fields; the head then runs only at the span tokens:

    h = LayerNorm(act(W2 · LayerNorm(act(W1 · [x_{s-1}; x_{e+1}; p_{i-s+1}]))))

with act the encoder's hidden activation (GeLU in every preset), p a learned table of `max_span_length`
relative positions (offsets beyond it share the last entry), and the vocabulary decoder tied to the word
embeddings, as the MLM head's is. The loss is the cross-entropy averaged over the span tokens of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

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
from ..utils.typed import Where, as_where, check_fields
from .base import Objective, accuracy, register

#: the per-token fields the transform adds (-1 where a token is not predicted by the objective)
LEFT, RIGHT, OFFSET = "sbo_left", "sbo_right", "sbo_offset"


@dataclass
class SboOptions:
    """`objective_options.sbo`: the size of the relative position table."""

    #: relative positions with an embedding of their own (in tokens); tokens further into a span use the last
    max_span_length: int = 30

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        if self.max_span_length < 1:
            raise ConfigError(f"{where}field 'max_span_length' must be >= 1, got {self.max_span_length}")


def span_fields(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per token: (left boundary index s-1, right boundary index e+1, offset i-s in its span), -1 outside.

    A span is a maximal run [s, e] of positions with a label (!= -100). A run that touches either end of the
    sequence has no token outside it on that side and is left out (never the case with [CLS]/[SEP] around
    the text, since special tokens are never labelled).
    """
    labels = np.asarray(labels)
    n = labels.size
    left, right, offset = (np.full(n, -1, dtype=np.int64) for _ in range(3))
    inside = labels != IGNORE_INDEX
    edges = np.flatnonzero(np.diff(np.concatenate(([0], inside.astype(np.int8), [0]))))
    for start, stop in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):  # run = [start, stop)
        if start == 0 or stop == n:
            continue
        left[start:stop] = start - 1
        right[start:stop] = stop
        offset[start:stop] = np.arange(stop - start)
    return left, right, offset


class SpanBoundaryTransform(InstanceTransform):
    """Marks each labelled token with its span's boundaries and its offset in the span (no randomness: the
    spans are the masker's, so the fields are as reproducible as the mask)."""

    name = "sbo-spans"
    token_fields: ClassVar[dict[str, int]] = {LEFT: -1, RIGHT: -1, OFFSET: -1}

    def __call__(self, instance: Instance, rng: np.random.Generator) -> Instance:
        instance[LEFT], instance[RIGHT], instance[OFFSET] = span_fields(instance["labels"])
        return instance


@register("sbo", options=SboOptions)
class SpanBoundary(Objective):
    """The span boundary objective; train it with `mlm` (the SpanBERT recipe weighs them 1:1)."""

    needs_masking = True

    def __init__(self, config: BertConfig, encoder: BertModel, options: SboOptions | None = None) -> None:
        super().__init__()
        options = options or SboOptions()
        word = getattr(getattr(encoder, "embeddings", None), "word", None)
        if not isinstance(word, nn.Embedding):
            raise ConfigError(f"the sbo objective ties its decoder to the word embeddings (embeddings.word), "
                              f"which {type(encoder).__name__} lacks")
        hidden, width = config.hidden_size, word.embedding_dim
        self.max_span_length = int(options.max_span_length)
        self.position = nn.Embedding(self.max_span_length, hidden)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.dense1 = nn.Linear(3 * hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        # the second layer ends at the embedding width, so a factorised (ALBERT) embedding can decode it
        self.dense2 = nn.Linear(hidden, width)
        self.norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(width, config.vocab_size)
        self.decoder.weight = word.weight
        nn.init.zeros_(self.decoder.bias)

    @classmethod
    def instance_transform(cls, options: Any, context: TransformContext) -> InstanceTransform:
        return SpanBoundaryTransform()

    def hidden(self, left: torch.Tensor, right: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """The head's output before the decoder, from boundary states (n, H) and offsets in the span (n,)."""
        p = self.position(offset.clamp(max=self.max_span_length - 1))
        x = self.norm1(self.activation(self.dense1(torch.cat([left, right, p], dim=-1))))
        return self.norm2(self.activation(self.dense2(x)))

    def forward(self, encoded, batch):
        if LEFT not in batch:
            raise RuntimeError("the sbo objective reads the span fields its instance transform adds "
                               f"({LEFT}, {RIGHT}, {OFFSET}); batch the data with PretrainingCollator and "
                               "the model's instance_transforms()")
        labels, offset = batch["labels"], batch[OFFSET]
        states = encoded.last_hidden_state
        rows, cols = torch.nonzero((offset >= 0) & (labels != IGNORE_INDEX), as_tuple=True)
        left = states[rows, batch[LEFT][rows, cols]]
        right = states[rows, batch[RIGHT][rows, cols]]
        logits = self.decoder(self.hidden(left, right, offset[rows, cols]))
        target = labels[rows, cols]
        if logits.shape[0] == 0:  # no span in this batch: a zero that keeps the graph
            loss = logits.sum() * 0.0
        else:
            loss = F.cross_entropy(logits.float(), target)
        return {"sbo": loss}, {"sbo_acc": accuracy(logits, target)}
