"""Input embeddings: token + position (+ segment), then LayerNorm and dropout."""

from __future__ import annotations

import torch
from torch import nn

from .config import BertConfig
from .dropout import Dropout


class TokenPositionSegmentEmbedding(nn.Module):
    """BERT's input layer. Works on any leading shape, so the encoder can feed it unpadded tokens."""

    def __init__(self, config: BertConfig, width: int | None = None) -> None:
        super().__init__()
        width = width or config.hidden_size
        self.word = nn.Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, width)
        self.segment = nn.Embedding(config.type_vocab_size, width) if config.type_vocab_size > 0 else None
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.word(input_ids)
        if self.segment is not None:  # summed in transformers' order, so results agree bit for bit
            x = x + (self.segment.weight[0] if token_type_ids is None else self.segment(token_type_ids))
        x = x + self.position(position_ids)
        return self.dropout(self.norm(x))
