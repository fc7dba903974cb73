"""Multi-head self-attention with one fused QKV projection.

The fast path is `scaled_dot_product_attention`; the explicit path (matmul, softmax) runs only when a
caller asks for attention probabilities or pre-softmax scores.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import dropout as fast_dropout

#: The padding share from which the default call packs real tokens. Measured on this CPU (6 x 384 encoder,
#: batch 32 x 128): packing was faster from a 4% share on (1.15x), 1.2x at 19%, 1.4x at 29%; the index
#: copies it adds cost less than 2% of a layer, so only nearly full batches stay padded.
UNPAD_MIN_SHARE = 0.02


@dataclass
class Padding:
    """Which tokens are real, and (when unpadded) where the packed rows came from.

    With `indices` set, activations travel as (tokens, width) holding only real tokens, so the dense
    layers do no work on padding; attention scatters them back to (batch, seq) around its kernel.
    """

    keep: torch.Tensor | None  # (batch, seq) bool, None when nothing is padded
    batch: int
    seq: int
    indices: torch.Tensor | None = None  # flat positions of real tokens, when unpadded
    #: (batch, seq, seq) bool, query i may attend key j; set only for a per-query (3-D) mask
    square: torch.Tensor | None = None

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor | None, batch: int, seq: int, unpad: bool | None) -> Padding:
        """`unpad`: True packs, False never does, None packs when the padding share reaches UNPAD_MIN_SHARE.

        A (batch, seq, seq) mask (UniLM-style: each query its own keys) never packs, whatever `unpad` says:
        rows of different queries differ, so there is no single set of real tokens to pack.
        """
        if attention_mask is None:
            return cls(None, batch, seq)
        if attention_mask.dim() == 3:
            return cls.from_square_mask(attention_mask, batch, seq)
        keep = attention_mask.bool()
        if exporting():  # no host reads: the exported graph keeps the mask as a tensor and runs padded
            if unpad:
                raise ValueError("unpad=True needs the mask's values; an exported graph runs padded")
            return cls(keep | (~keep.any(dim=-1))[:, None], batch, seq)
        # One host read for every decision below (a GPU waits for it once, not three times).
        real, empty_rows = (int(v) for v in torch.stack([keep.sum(), (~keep.any(dim=-1)).sum()]).tolist())
        if real == batch * seq:
            return cls(None, batch, seq)
        # A row with no real token would give NaN in softmax; let it attend everywhere instead.
        if empty_rows:
            keep = keep | (~keep.any(dim=-1))[:, None]
        if unpad is None:
            unpad = 1.0 - real / (batch * seq) >= UNPAD_MIN_SHARE
        indices = keep.reshape(-1).nonzero().squeeze(-1) if unpad else None
        return cls(keep, batch, seq, indices)

    @classmethod
    def from_square_mask(cls, attention_mask: torch.Tensor, batch: int, seq: int) -> Padding:
        """A per-query mask, 1 where query i may attend key j. A query allowed no key (a padding row) would
        give NaN in softmax; it attends everywhere instead, as an all-padding row does in the 2-D path. No
        host read, so this path records as it runs under tracing and export."""
        if tuple(attention_mask.shape) != (batch, seq, seq):
            raise ValueError(f"a 3-D attention_mask must have shape {(batch, seq, seq)}, "
                             f"got {tuple(attention_mask.shape)}")
        square = attention_mask.bool()
        return cls(None, batch, seq, square=square | ~square.any(dim=-1, keepdim=True))

    @property
    def packed(self) -> bool:
        return self.indices is not None

    def sdpa_mask(self) -> torch.Tensor | None:
        if self.square is not None:
            return self.square[:, None]
        return None if self.keep is None else self.keep[:, None, None, :]

    def additive_mask(self, dtype: torch.dtype) -> torch.Tensor | None:
        if self.square is not None:
            return (~self.square[:, None]).to(dtype) * torch.finfo(dtype).min
        if self.keep is None:
            return None
        return (~self.keep[:, None, None, :]).to(dtype) * torch.finfo(dtype).min

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(tokens, width) -> (batch, seq, width), zeros at padding."""
        if self.indices is None:
            return x
        out = x.new_zeros(self.batch * self.seq, x.shape[-1]).index_copy(0, self.indices, x)
        return out.view(self.batch, self.seq, -1)

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, seq, width) -> (tokens, width)."""
        if self.indices is None:
            return x
        return x.reshape(self.batch * self.seq, -1).index_select(0, self.indices)


def exporting() -> bool:
    """True while torch.jit tracing or an ONNX export records the model: a value read back to the host would
    become a constant of the recording."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def tracing() -> bool:
    """True while anything records the model (torch.compile too, where a host read is a graph break)."""
    return exporting() or torch.compiler.is_compiling()


class SelfAttention(nn.Module):
    """`num_heads` heads of width `head_dim` (default hidden_size // num_heads) in one fused QKV projection.

    After head pruning a layer keeps fewer heads than the config names, each as wide as before, so its
    matrices shrink to (3 * num_heads * head_dim, hidden) and (hidden, num_heads * head_dim); `head_ids`
    are the kept heads' original indices. A layer may keep no head: its attention is then the out bias.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float, head_dim: int | None = None,
                 head_ids: list[int] | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads if head_dim is None else head_dim
        self.head_ids = list(range(num_heads)) if head_ids is None else list(head_ids)
        if len(self.head_ids) != num_heads:
            raise ValueError(f"SelfAttention: {num_heads} heads but head_ids {self.head_ids}")
        inner = num_heads * self.head_dim
        with warnings.catch_warnings():  # no head left: empty matrices, which torch warns it cannot initialise
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            self.qkv = nn.Linear(hidden_size, 3 * inner)
            self.out = nn.Linear(inner, hidden_size)
        self.dropout_p = dropout

    def forward(
        self, x: torch.Tensor, padding: Padding, return_probs: bool = False, return_scores: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        if self.num_heads == 0:  # every head pruned: nothing to attend with, only the out bias remains
            maps = x.new_zeros(padding.batch, 0, padding.seq, padding.seq)
            return (self.out(x.new_zeros(*x.shape[:-1], 0)), maps if return_probs else None,
                    maps if return_scores else None)
        qkv = padding.pad(self.qkv(x))
        batch, seq, _ = qkv.shape
        q, k, v = qkv.view(batch, seq, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        dropout = self.dropout_p if self.training else 0.0
        probs = scores = None
        # With dropout, the CPU's SDPA falls back to this same math path but draws its mask more slowly.
        if return_probs or return_scores or (dropout > 0 and x.device.type == "cpu"):
            scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
            mask = padding.additive_mask(scores.dtype)
            probs = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            context = torch.matmul(fast_dropout(probs, dropout, self.training), v)
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=padding.sdpa_mask(), dropout_p=dropout)
        context = padding.unpad(context.transpose(1, 2).reshape(batch, seq, -1))
        return self.out(context), (probs if return_probs else None), (scores if return_scores else None)
