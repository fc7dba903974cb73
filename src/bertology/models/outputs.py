"""What models return: small dataclasses with the attribute names transformers users know."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class ModelOutput:
    """Attribute access plus `out["name"]` and `out.to_dict()` (non-None fields only)."""

    def __getitem__(self, key: str):
        return getattr(self, key)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass
class EncoderOutput(ModelOutput):
    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor | None = None
    #: embeddings output first, then one per layer
    hidden_states: tuple[torch.Tensor, ...] | None = None
    #: softmax probabilities (batch, heads, seq, seq), one per layer
    attentions: tuple[torch.Tensor, ...] | None = None
    #: scaled q.k before the padding mask and softmax (what TinyBERT distils), one per layer
    attention_scores: tuple[torch.Tensor, ...] | None = None
    #: a second granularity of the same input through the same encoder (AMBERT's words), when given
    coarse: EncoderOutput | None = None


@dataclass
class MaskedLMOutput(ModelOutput):
    #: (batch, seq, vocab) without labels; (n_labelled, vocab) in row-major order of the labelled positions
    #: when labels are given, because only those logits are computed
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    attention_scores: tuple[torch.Tensor, ...] | None = None


@dataclass
class PreTrainingOutput(ModelOutput):
    #: same shape rule as MaskedLMOutput.logits
    prediction_logits: torch.Tensor
    seq_relationship_logits: torch.Tensor
    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    attention_scores: tuple[torch.Tensor, ...] | None = None
