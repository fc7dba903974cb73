"""Pruning that shrinks the model: heads (by gradient importance, Michel et al. 2019, or at random),
feed-forward neurons and whole layers are removed from the weight matrices, so the saved model is smaller and
faster; unstructured magnitude pruning (Zhu & Gupta 2017) zeroes weights during fine-tuning without changing
shapes (smaller only once compressed, no faster on dense kernels)."""

from .export import padded_copy
from .heads import heads_left, plan_head_pruning, prune_heads
from .importance import (
    HeadImportance,
    gated_inputs,
    head_importance,
    mask_heads,
    mask_neurons,
    neuron_importance,
    normalize_per_layer,
    random_head_importance,
    task_loss,
)
from .layers import drop_layers, layers_to_keep
from .magnitude import (
    MagnitudePruning,
    SparseSize,
    compressed_size,
    cubic_sparsity,
    magnitude_mask,
    prunable_weights,
    sparsity_of,
)
from .neurons import plan_neuron_pruning, prune_neurons

__all__ = [
    "HeadImportance", "MagnitudePruning", "SparseSize", "compressed_size", "cubic_sparsity", "drop_layers",
    "gated_inputs", "head_importance", "heads_left", "layers_to_keep", "magnitude_mask", "mask_heads",
    "mask_neurons", "neuron_importance", "normalize_per_layer", "padded_copy", "plan_head_pruning", "plan_neuron_pruning",
    "prunable_weights", "prune_heads", "prune_neurons", "random_head_importance", "sparsity_of", "task_loss",
]
