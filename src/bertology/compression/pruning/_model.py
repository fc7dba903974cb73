"""Finding the prunable encoder inside a model, and refusing the ones whose layers cannot shrink alone."""

from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from ...models.encoder import EncoderLayer


def encoder_of(model: nn.Module) -> nn.Module:
    """The BERT-style encoder of `model`: a fine-tuned TaskModel's `encoder`, a head model's `bert`, or the
    model itself. ALBERT (layers shared across depth) and AMBERT (one encoder behind two embeddings) are
    refused: pruning one of their layers would change every position that reuses it."""
    encoder = model
    for name in ("encoder", "bert"):
        inner = getattr(model, name, None)
        if isinstance(inner, nn.Module) and hasattr(inner, "config"):
            encoder = inner
            break
    config = getattr(encoder, "config", None)
    stack = getattr(encoder, "encoder", None)
    if config is None or stack is None or not hasattr(stack, "layers"):
        raise ConfigError(f"{type(encoder).__name__}: pruning needs a BERT-style encoder (config and "
                          "encoder.layers); AMBERT and other composite encoders are not supported")
    order = list(getattr(stack, "order", range(len(stack.layers))))
    shared_modules = {id(layer.attention) for layer in stack.layers}, {id(layer.ffn) for layer in stack.layers}
    if (len(set(order)) != len(order) or len(order) != len(stack.layers)
            or any(len(ids) != len(stack.layers) for ids in shared_modules)):
        raise ConfigError(f"{type(encoder).__name__}: its layers share parameters across depth (ALBERT), so "
                          "one layer cannot lose heads, neurons or depth alone; pruning is refused")
    if not all(isinstance(layer, EncoderLayer) for layer in stack.layers):
        raise ConfigError(f"{type(encoder).__name__}: pruning needs the standard EncoderLayer blocks")
    return encoder


def layers_of(model: nn.Module) -> list[EncoderLayer]:
    """The encoder's layers, in the order they run."""
    return list(encoder_of(model).encoder.layers)
