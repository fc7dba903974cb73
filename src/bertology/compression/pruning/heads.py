"""Head pruning that removes the heads' weights: the QKV and output matrices really shrink.

A head h of a layer owns rows h*d..(h+1)*d of each of the query, key and value blocks of the fused `qkv`
projection and the same columns of `out`; pruning keeps the other rows and columns (in order), so the
remaining heads compute exactly what they computed before and the layer equals the unpruned one with the
pruned heads' outputs masked to zero. The config records the removed heads in transformers' field
`pruned_heads` ({layer: [original head indices]}, cumulative), which rebuilds the smaller shapes on load.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ...errors import ConfigError
from ._model import encoder_of, layers_of
from .importance import HeadImportance


def _sliced_linear(old: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    """A new Linear holding some rows (outputs) or columns (inputs) of `old`, on its device and dtype."""
    weight = old.weight.detach()
    if rows is not None:
        weight = weight.index_select(0, rows.to(weight.device))
    if cols is not None:
        weight = weight.index_select(1, cols.to(weight.device))
    bias = old.bias.detach() if old.bias is not None else None
    if bias is not None and rows is not None:
        bias = bias.index_select(0, rows.to(bias.device))
    with warnings.catch_warnings():  # an emptied matrix (every head pruned) cannot be initialised: it is copied
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device,
                        dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.weight.requires_grad_(old.weight.requires_grad)
    if bias is not None:
        new.bias.requires_grad_(old.bias.requires_grad)
    return new


def _check_plan(model: nn.Module, heads: Mapping[int, Iterable[int]]) -> dict[int, list[int]]:
    """The plan as {layer: sorted original heads}; every layer and head must exist (and not be pruned yet)."""
    layers = layers_of(model)
    plan: dict[int, list[int]] = {}
    for layer_index, wanted in heads.items():
        if not isinstance(layer_index, int) or not 0 <= layer_index < len(layers):
            raise ConfigError(f"head pruning names layer {layer_index!r}; the model has layers 0..{len(layers) - 1}")
        wanted = sorted(set(wanted))
        attention = layers[layer_index].attention
        if len(wanted) > attention.num_heads:
            raise ConfigError(f"layer {layer_index} has {attention.num_heads} heads; cannot prune {len(wanted)} "
                              f"({wanted})")
        absent = [h for h in wanted if h not in attention.head_ids]
        if absent:
            raise ConfigError(f"layer {layer_index} has no heads {absent} to prune (its heads, in the original "
                              f"numbering: {attention.head_ids})")
        if wanted:
            plan[layer_index] = wanted
    return plan


def prune_heads(model: nn.Module, heads: Mapping[int, Iterable[int]]) -> nn.Module:
    """Remove heads {layer: [original head indices]} from `model` (a BERT encoder, head model or TaskModel),
    in place; the config's `pruned_heads` grows by them. Returns `model`.

    A layer may lose every head: its attention then adds only the out bias."""
    plan = _check_plan(model, heads)
    encoder = encoder_of(model)
    config = encoder.config
    layers = layers_of(model)
    for layer_index, wanted in plan.items():
        attention = layers[layer_index].attention
        d, n = attention.head_dim, attention.num_heads
        keep = [pos for pos, h in enumerate(attention.head_ids) if h not in wanted]
        per_head = torch.tensor([pos * d + i for pos in keep for i in range(d)], dtype=torch.long)
        rows = torch.cat([per_head + part * n * d for part in range(3)]) if keep else per_head
        attention.qkv = _sliced_linear(attention.qkv, rows=rows)
        attention.out = _sliced_linear(attention.out, cols=per_head)
        attention.head_ids = [attention.head_ids[pos] for pos in keep]
        attention.num_heads = len(keep)
        merged = sorted(set(config.pruned_heads.get(layer_index, [])) | set(wanted))
        config.pruned_heads = {**config.pruned_heads, layer_index: merged}
    config.validate()  # normalises and checks the merged field (the same object every holder of it reads)
    return model


def heads_left(model: nn.Module) -> dict[int, list[int]]:
    """{layer: original indices of the heads it keeps}."""
    return {i: list(layer.attention.head_ids) for i, layer in enumerate(layers_of(model))}


def _count(amount: float, total: int, what: str) -> int:
    """A count, or a fraction in (0, 1) of `total` (rounded down)."""
    if isinstance(amount, bool) or amount < 0:
        raise ConfigError(f"{what}: expected a count >= 0 or a fraction in (0, 1), got {amount!r}")
    if isinstance(amount, float) and amount < 1:
        return int(math.floor(amount * total + 1e-9))
    if float(amount) != int(amount):
        raise ConfigError(f"{what}: {amount!r} is neither a whole count nor a fraction below 1")
    return int(amount)


def plan_head_pruning(importance: HeadImportance, amount: float, per_layer: bool = False,
                      min_heads: int = 0) -> dict[int, list[int]]:
    """The least important heads: `amount` of them (a count, or a fraction of the heads present) over the
    whole model, or that many in each layer with `per_layer`. `min_heads` heads stay in every layer.

    Asking a layer to lose more heads than it has is an error naming the layer."""
    scores = importance.scores
    layers = range(scores.shape[0])
    present = {layer: importance.present(layer) for layer in layers}
    if per_layer:
        plan = {}
        for layer in layers:
            k = _count(amount, len(present[layer]), "heads to prune per layer")
            if k > len(present[layer]) - min_heads:
                raise ConfigError(f"layer {layer} has {len(present[layer])} heads"
                                  f"{f' and keeps at least {min_heads}' if min_heads else ''}; cannot prune {k}")
            order = sorted(present[layer], key=lambda h, row=layer: (float(scores[row, h]), h))
            if k:
                plan[layer] = sorted(order[:k])
        return plan
    total = sum(len(h) for h in present.values())
    k = _count(amount, total, "heads to prune")
    candidates = sorted((float(scores[layer, h]), layer, h) for layer in layers for h in present[layer])
    plan: dict[int, list[int]] = {}
    for _, layer, h in candidates:
        if sum(len(v) for v in plan.values()) == k:
            break
        if len(present[layer]) - len(plan.get(layer, [])) > min_heads:
            plan.setdefault(layer, []).append(h)
    chosen = sum(len(v) for v in plan.values())
    if chosen < k:
        raise ConfigError(f"cannot prune {k} heads: the model has {total} heads and keeps at least {min_heads} "
                          f"per layer ({chosen} can go)")
    return {layer: sorted(plan[layer]) for layer in sorted(plan)}


__all__ = ["heads_left", "plan_head_pruning", "prune_heads"]
