"""The post-LN Transformer encoder: attention, add & norm, feed-forward, add & norm."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .activations import ACTIVATIONS
from .attention import Padding, SelfAttention
from .config import BertConfig
from .dropout import Dropout


class FeedForward(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, activation: str) -> None:
        super().__init__()
        with warnings.catch_warnings():  # every neuron pruned: empty matrices, which torch cannot initialise
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            self.up = nn.Linear(hidden_size, intermediate_size)
            self.down = nn.Linear(intermediate_size, hidden_size)
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.up(x)))


class EncoderLayer(nn.Module):
    """One post-LN layer. `index` picks this layer's pruned sizes from the config (heads it keeps, its
    feed-forward width); an unpruned config gives every layer the same sizes."""

    def __init__(self, config: BertConfig, index: int = 0) -> None:
        super().__init__()
        heads = config.heads_of(index)
        self.attention = SelfAttention(
            config.hidden_size, len(heads), config.attention_probs_dropout_prob, head_dim=config.head_dim,
            head_ids=heads,
        )
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config.hidden_size, config.intermediate_size_of(index), config.hidden_act)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(
        self, x: torch.Tensor, padding: Padding, return_probs: bool = False, return_scores: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        attended, probs, scores = self.attention(x, padding, return_probs, return_scores)
        x = self.attention_norm(self.dropout(attended) + x)
        x = self.ffn_norm(self.dropout(self.ffn(x)) + x)
        return x, probs, scores


@dataclass
class EncoderTrace:
    """Per-layer outputs a caller asked for (each tuple is None when not asked)."""

    hidden_states: tuple[torch.Tensor, ...] | None
    attentions: tuple[torch.Tensor, ...] | None
    attention_scores: tuple[torch.Tensor, ...] | None


class Encoder(nn.Module):
    """A stack of layers applied in `order` (default: each once). ALBERT-style cross-layer sharing is a short
    list of distinct layers and an order that repeats them; nothing else changes."""

    def __init__(self, layers: list[nn.Module], order: list[int] | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.order = list(range(len(layers))) if order is None else list(order)

    def forward(
        self,
        x: torch.Tensor,
        padding: Padding,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        output_attention_scores: bool = False,
    ) -> tuple[torch.Tensor, EncoderTrace]:
        hidden = [padding.pad(x)] if output_hidden_states else None
        probs: list[torch.Tensor] | None = [] if output_attentions else None
        scores: list[torch.Tensor] | None = [] if output_attention_scores else None
        for index in self.order:
            x, p, s = self.layers[index](x, padding, output_attentions, output_attention_scores)
            if hidden is not None:
                hidden.append(padding.pad(x))
            if probs is not None:
                probs.append(p)
            if scores is not None:
                scores.append(s)
        as_tuple = lambda items: None if items is None else tuple(items)  # noqa: E731
        return x, EncoderTrace(as_tuple(hidden), as_tuple(probs), as_tuple(scores))
