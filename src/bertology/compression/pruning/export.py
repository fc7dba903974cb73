"""A pruned encoder as a full-size one with zeros where the pruned weights were, for readers that cannot
build per-layer sizes (transformers 5 dropped `pruned_heads`; no version builds per-layer feed-forward
widths). A pruned head then has zero query, key and value rows and zero output columns and adds exactly
nothing; a pruned neuron has a zero input row (activation of 0: 0) and zero output column. The outputs equal
the pruned model's, the file is as large as the original's: use it only where the small folder cannot go."""

from __future__ import annotations

import torch
from torch import nn

from ._model import encoder_of, layers_of


def padded_copy(model: nn.Module) -> nn.Module:
    """A new, unpruned encoder (same class) equal in outputs to `model`'s pruned encoder."""
    encoder = encoder_of(model)
    config = encoder.config.replace(pruned_heads={}, intermediate_sizes=None)
    full = type(encoder)(config).to(next(encoder.parameters()).device)
    state = {k: v for k, v in encoder.state_dict().items() if not k.startswith("encoder.layers.")}
    d, heads = config.head_dim, config.num_attention_heads
    for index, layer in enumerate(layers_of(encoder)):
        prefix = f"encoder.layers.{index}."
        state.update({k: v for k, v in encoder.state_dict().items()
                      if k.startswith(prefix) and ".attention.qkv." not in k and ".attention.out.weight" not in k
                      and ".ffn.up." not in k and ".ffn.down.weight" not in k})
        attention, ffn = layer.attention, layer.ffn
        cols = torch.tensor([h * d + i for h in attention.head_ids for i in range(d)], dtype=torch.long)
        rows = torch.cat([cols + part * heads * d for part in range(3)])
        qkv_w = attention.qkv.weight.new_zeros(3 * heads * d, config.hidden_size).index_copy(
            0, rows, attention.qkv.weight.detach())
        qkv_b = attention.qkv.bias.new_zeros(3 * heads * d).index_copy(0, rows, attention.qkv.bias.detach())
        out_w = attention.out.weight.new_zeros(config.hidden_size, heads * d).index_copy(
            1, cols, attention.out.weight.detach())
        # neurons are interchangeable (a sum over them), so the kept ones go first and zeros fill the rest
        kept, width = ffn.up.out_features, config.intermediate_size
        up_w = ffn.up.weight.new_zeros(width, config.hidden_size)
        up_w[:kept] = ffn.up.weight.detach()
        up_b = ffn.up.bias.new_zeros(width)
        up_b[:kept] = ffn.up.bias.detach()
        down_w = ffn.down.weight.new_zeros(config.hidden_size, width)
        down_w[:, :kept] = ffn.down.weight.detach()
        state.update({prefix + "attention.qkv.weight": qkv_w, prefix + "attention.qkv.bias": qkv_b,
                      prefix + "attention.out.weight": out_w, prefix + "ffn.up.weight": up_w,
                      prefix + "ffn.up.bias": up_b, prefix + "ffn.down.weight": down_w})
    full.load_state_dict(state)
    return full.train(encoder.training)


__all__ = ["padded_copy"]
