"""Dropping whole layers (top, bottom, every other, or a list), the cheapest structured pruning.

The copy itself is distillation's `from_teacher_layers` (a DistilBERT-style student from some of its
teacher's layers); a model already pruned inside its layers (per-layer head counts or widths) keeps them on
the layers it keeps. A fine-tuned TaskModel keeps its heads (a scalar mix keeps the weights of the layers
that stay).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ...errors import ConfigError
from ..distillation.student import every_other_layer, from_teacher_layers
from ._model import encoder_of

#: the `--drop-layers` spellings
DROP_FORMS = "top:N, bottom:N, every-other, or layer numbers i,j,..."


def layers_to_keep(spec: str | Sequence[int], depth: int) -> list[int]:
    """Which layers stay (0-based, in order) when `spec` layers go: "top:N" (the N last), "bottom:N" (the N
    first), "every-other" (DistilBERT's: keep 0, 2, 4, ...), "i,j" or a list of layer numbers to drop."""
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("every-other", "every_other"):
            return every_other_layer(depth)
        side, _, count = text.partition(":")
        if side in ("top", "bottom") and count:
            try:
                n = int(count)
            except ValueError:
                raise ConfigError(f"drop layers {spec!r}: {count!r} is not a number; use {DROP_FORMS}") from None
            if not 0 <= n < depth:
                raise ConfigError(f"drop layers {spec!r}: the model has {depth} layers; drop 0..{depth - 1} of them")
            return list(range(depth - n)) if side == "top" else list(range(n, depth))
        try:
            drop = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"drop layers {spec!r}: use {DROP_FORMS}") from None
    else:
        drop = [int(i) for i in spec]
    bad = [i for i in drop if not 0 <= i < depth]
    if bad:
        raise ConfigError(f"drop layers {drop}: layers {bad} do not exist; the model has layers 0..{depth - 1}")
    keep = [i for i in range(depth) if i not in set(drop)]
    if not keep:
        raise ConfigError(f"drop layers {drop}: that is every layer of the model; keep at least one")
    return keep


def drop_layers(model: nn.Module, spec: str | Sequence[int]) -> nn.Module:
    """A new model without the layers `spec` names (see `layers_to_keep`); `model` is left as it was.

    `model` is an encoder or a fine-tuned TaskModel (whose heads come along)."""
    encoder = encoder_of(model)
    if model is not encoder and not hasattr(model, "head_configs"):
        raise ConfigError(f"{type(model).__name__}: drop layers of its encoder (or of a fine-tuned TaskModel)")
    keep = layers_to_keep(spec, encoder.config.num_hidden_layers)
    smaller = from_teacher_layers(encoder, keep)
    smaller.to(next(encoder.parameters()).device).train(encoder.training)
    if model is encoder:
        return smaller
    return _task_model_on(model, smaller, keep)


def _task_model_on(model: nn.Module, encoder: nn.Module, keep: list[int]) -> nn.Module:
    """The TaskModel `model` with `encoder` (its layers `keep`) in place of its own; heads copied."""
    from ...finetuning.model import TaskModel

    for name, head in model.head_configs.items():
        if head.layers == "layer":
            raise ConfigError(f"task {name!r}: its head reads one chosen layer (layers: layer); dropping layers "
                              "would change which one, so it is refused")
    new = TaskModel(encoder, model.head_configs)
    new.base_path, new.save_encoder, new.task_options = model.base_path, model.save_encoder, model.task_options
    mix_rows = [0, *[i + 1 for i in keep]]  # embeddings, then the kept layers
    for name, head in model.heads.items():
        state = head.state_dict()
        state = {k: (v[mix_rows] if k.endswith("scalar_parameters") else v) for k, v in state.items()}
        new.heads[name].load_state_dict(state)
    return new.train(model.training)


__all__ = ["DROP_FORMS", "drop_layers", "layers_to_keep"]
