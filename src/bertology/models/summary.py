"""What a model costs: parameters per component, bytes on disk, and FLOPs per token."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .config import BertConfig


def parameters_by_component(model: nn.Module) -> OrderedDict[str, int]:
    """Parameters grouped by the first two levels of module names (shared tensors counted once)."""
    groups: OrderedDict[str, int] = OrderedDict()
    for name, param in model.named_parameters():  # named_parameters skips tied duplicates
        parts = name.split(".")
        if parts[0] == "bert":
            parts = parts[1:]
        if parts[0] == "encoder" and len(parts) > 2 and parts[1] == "layers":
            key = "encoder.layers (all)"
        elif parts[0] == "embeddings":
            key = f"embeddings.{parts[1]}"
        else:
            key = parts[0]
        groups[key] = groups.get(key, 0) + param.numel()
    return groups


def forward_flops_per_token(config: BertConfig, seq_len: int, mlm_head: bool = False,
                            mlm_fraction: float = 1.0) -> int:
    """Multiply-adds x 2 of one token's forward pass at sequence length `seq_len`.

    Counts the matrix products (QKV, attention scores and mix, output, feed-forward, optional MLM head
    at `mlm_fraction` of positions), layer by layer with the heads and feed-forward width each keeps;
    element-wise work (softmax, LayerNorm, GELU) is under 1% and left out.
    """
    h = config.hidden_size
    head_dim = h // config.num_attention_heads
    total = 0
    for layer in range(config.num_hidden_layers):  # pruned heads and neurons make layers differ
        inner = len(config.heads_of(layer)) * head_dim  # width of attention (all heads unless pruned)
        inter = config.intermediate_size_of(layer)
        total += 2 * (3 * h * inner + inner * h + 2 * h * inter) + 2 * 2 * seq_len * inner
    if mlm_head:
        total += int(mlm_fraction * 2 * (h * h + h * config.vocab_size))
    return total
