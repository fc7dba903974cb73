"""Feed-forward neuron pruning: neuron i of a layer is row i of `ffn.up` (with its bias) and column i of
`ffn.down`; removing both gives exactly the layer with that neuron's activation zeroed. The new widths go to
the config's `intermediate_sizes` (ours: transformers builds every layer at `intermediate_size`, so a
neuron-pruned folder does not load there)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from ...errors import ConfigError
from ._model import encoder_of, layers_of
from .heads import _sliced_linear


def prune_neurons(model: nn.Module, neurons: Mapping[int, Iterable[int]]) -> nn.Module:
    """Remove feed-forward neurons {layer: [indices in the layer's current numbering]} in place; the config's
    `intermediate_sizes` records every layer's new width. Returns `model`."""
    layers = layers_of(model)
    config = encoder_of(model).config
    plan: dict[int, list[int]] = {}
    for layer_index, wanted in neurons.items():
        if not isinstance(layer_index, int) or not 0 <= layer_index < len(layers):
            raise ConfigError(f"neuron pruning names layer {layer_index!r}; the model has layers "
                              f"0..{len(layers) - 1}")
        width = layers[layer_index].ffn.up.out_features
        wanted = sorted(set(wanted))
        bad = [i for i in wanted if not 0 <= i < width]
        if bad:
            raise ConfigError(f"layer {layer_index} has {width} feed-forward neurons; cannot prune {bad}")
        if wanted:
            plan[layer_index] = wanted
    for layer_index, wanted in plan.items():
        ffn = layers[layer_index].ffn
        drop = set(wanted)
        keep = torch.tensor([i for i in range(ffn.up.out_features) if i not in drop], dtype=torch.long)
        ffn.up = _sliced_linear(ffn.up, rows=keep)
        ffn.down = _sliced_linear(ffn.down, cols=keep)
    config.intermediate_sizes = [layer.ffn.up.out_features for layer in layers]
    config.validate()
    return model


def plan_neuron_pruning(scores: Sequence[torch.Tensor], amount: float, per_layer: bool = True,
                        min_neurons: int = 1) -> dict[int, list[int]]:
    """The least important neurons: a fraction (or count) of each layer's (`per_layer`) or of all of them
    ranked together; at least `min_neurons` stay in every layer."""
    if isinstance(amount, bool) or amount < 0:
        raise ConfigError(f"neurons to prune: expected a count >= 0 or a fraction in (0, 1), got {amount!r}")

    def count(total: int) -> int:
        return int(math.floor(amount * total + 1e-9)) if isinstance(amount, float) and amount < 1 else int(amount)

    plan: dict[int, list[int]] = {}
    if per_layer:
        for layer, row in enumerate(scores):
            k = count(row.numel())
            if k > row.numel() - min_neurons:
                raise ConfigError(f"layer {layer} has {row.numel()} feed-forward neurons and keeps at least "
                                  f"{min_neurons}; cannot prune {k}")
            if k:
                plan[layer] = sorted(torch.argsort(row.float(), stable=True)[:k].tolist())
        return plan
    total = sum(row.numel() for row in scores)
    k = count(total)
    ranked = sorted((float(v), layer, i) for layer, row in enumerate(scores) for i, v in enumerate(row))
    for _, layer, i in ranked:
        if sum(len(v) for v in plan.values()) == k:
            break
        if scores[layer].numel() - len(plan.get(layer, [])) > min_neurons:
            plan.setdefault(layer, []).append(i)
    if sum(len(v) for v in plan.values()) < k:
        raise ConfigError(f"cannot prune {k} of {total} feed-forward neurons while keeping {min_neurons} per layer")
    return {layer: sorted(plan[layer]) for layer in sorted(plan)}


__all__ = ["plan_neuron_pruning", "prune_neurons"]
