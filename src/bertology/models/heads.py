"""Heads on top of the encoder: the [CLS] pooler, the masked-LM head and the two-way sentence head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import ACTIVATIONS
from .config import BertConfig

IGNORE_INDEX = -100


class Pooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence vector that NSP (and many classifiers) read."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(last_hidden_state[:, 0]))


class MaskedLMHead(nn.Module):
    """Transform, LayerNorm, then a decoder whose weight is the word embedding matrix (tied)."""

    def __init__(self, config: BertConfig, word_embedding: nn.Embedding) -> None:
        super().__init__()
        width = word_embedding.embedding_dim
        self.transform = nn.Linear(config.hidden_size, width)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(width, config.vocab_size)
        self.decoder.weight = word_embedding.weight
        nn.init.zeros_(self.decoder.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.activation(self.transform(hidden))))

    def logits_and_loss(
        self, sequence_output: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Without labels: logits everywhere. With labels: logits and loss at labelled positions only.

        The vocabulary projection is most of an MLM step's compute; with 15% masking, computing it
        only where a label exists saves about 85% of it.
        """
        if labels is None:
            return self(sequence_output), None
        if labels.shape != sequence_output.shape[:-1]:
            raise ValueError(
                f"labels have shape {tuple(labels.shape)}, expected {tuple(sequence_output.shape[:-1])} "
                "(one label per input token, -100 where there is none)"
            )
        selected = labels != IGNORE_INDEX
        logits = self(sequence_output[selected])
        if logits.shape[0] == 0:  # nothing masked in this batch: a zero that keeps the graph
            return logits, logits.sum() * 0.0
        return logits, F.cross_entropy(logits.float(), labels[selected])


class SentencePairHead(nn.Module):
    """Two-way classifier on the pooled output: NSP (is-next) or SOP (in order)."""

    def __init__(self, hidden_size: int, num_labels: int = 2) -> None:
        super().__init__()
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)
