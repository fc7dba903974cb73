"""Sentence embeddings from token vectors: mean, [CLS] and max pooling that respect padding."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def _mask(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    if attention_mask is None:
        return hidden.new_ones(hidden.shape[:2], dtype=torch.bool)
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, "
                         f"expected {tuple(hidden.shape[:2])} to match the hidden states")
    return attention_mask.bool()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Average of the real tokens' vectors (sentence-transformers' default)."""
    weights = _mask(hidden, attention_mask).unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def cls_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The first token's vector ([CLS])."""
    return hidden[:, 0]


def max_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Element-wise maximum over the real tokens."""
    keep = _mask(hidden, attention_mask).unsqueeze(-1)
    return hidden.masked_fill(~keep, torch.finfo(hidden.dtype).min).amax(1)


POOLERS: dict[str, Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]] = {
    "mean": mean_pool,
    "cls": cls_pool,
    "max": max_pool,
}


def pool_each(hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor | None = None,
              how: str = "mean") -> list[torch.Tensor]:
    """One pooled vector per layer (a fine-tuning head pools every layer, then selects or mixes them)."""
    if how not in POOLERS:
        raise ValueError(f"unknown pooling {how!r}; choose one of {sorted(POOLERS)}")
    return [POOLERS[how](hidden, attention_mask) for hidden in hidden_states]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None, how: str = "mean",
         normalize: bool = False) -> torch.Tensor:
    """Pool token vectors into one vector per sequence by name; `normalize` gives unit length."""
    if how not in POOLERS:
        raise ValueError(f"unknown pooling {how!r}; choose one of {sorted(POOLERS)}")
    out = POOLERS[how](hidden, attention_mask)
    return F.normalize(out, dim=-1) if normalize else out
