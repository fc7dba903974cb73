"""Which heads and neurons matter: gradient importance (Michel et al. 2019), a random baseline, magnitudes.

Michel et al. ("Are Sixteen Heads Really Better than One?", 2019) put a gate xi_h = 1 on each head's output
and score the head by I_h = E_x |dL(x)/dxi_h|: how much the task loss would move if the head were scaled
down. The gate here is a forward pre-hook on each layer's `attention.out` that multiplies the head's slice of
the concatenated context by xi_h, so the model and its state dict stay untouched; as in the paper, the
scores are normalised per layer by their L2 norm (scores of different layers then compare). The same trick
on `ffn.down`'s input scores feed-forward neurons. With gates fixed at 0 the hook masks heads or neurons
without removing them: what pruning must reproduce exactly.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ...utils.io import atomic_write
from ...utils.plot import pyplot, save_png
from ...utils.table import format_table
from ._model import encoder_of, layers_of

logger = logging.getLogger("bertology")

HEATMAP_FILE = "head_importance.png"
TABLE_FILE = "head_importance.md"
SCORES_FILE = "head_importance.json"

LossFn = Callable[[nn.Module, Any], torch.Tensor]


# --------------------------------------------------------------------------------------------- gates
@contextmanager
def gated_inputs(modules: Sequence[nn.Module], gates: Sequence[torch.Tensor], slice_width: int) -> Iterator[None]:
    """While open, each module's input (..., n * slice_width) has its n slices multiplied by its gate (n,).

    A forward pre-hook, so nothing of the model changes and autograd reaches the gates."""
    handles = []

    def make_hook(gate: torch.Tensor) -> Callable:
        def hook(module: nn.Module, args: tuple) -> tuple | None:
            if gate.numel() == 0:
                return None
            x = args[0]
            gated = x.unflatten(-1, (gate.numel(), slice_width)) * gate.to(x.dtype)[:, None]
            return (gated.flatten(-2), *args[1:])
        return hook

    for module, gate in zip(modules, gates, strict=True):
        handles.append(module.register_forward_pre_hook(make_hook(gate)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _head_gates(model: nn.Module, value: float = 1.0) -> list[torch.Tensor]:
    device = next(model.parameters()).device
    return [torch.full((layer.attention.num_heads,), value, device=device) for layer in layers_of(model)]


@contextmanager
def mask_heads(model: nn.Module, heads: Mapping[int, Iterable[int]]) -> Iterator[nn.Module]:
    """Mask heads without removing them: {layer: [original head indices]} get a zero gate while open.

    The pruned model must give what the masked one gives (the pruning tests compare them)."""
    layers = layers_of(model)
    gates = _head_gates(model)
    for layer_index, wanted in heads.items():
        ids = _check_layer(layers, layer_index).attention.head_ids
        for head in wanted:
            if head not in ids:
                raise ConfigError(f"layer {layer_index} has no head {head} (its heads: {ids})")
            gates[layer_index][ids.index(head)] = 0.0
    with gated_inputs([layer.attention.out for layer in layers], gates, layers[0].attention.head_dim):
        yield model


@contextmanager
def mask_neurons(model: nn.Module, neurons: Mapping[int, Iterable[int]]) -> Iterator[nn.Module]:
    """Zero feed-forward neurons {layer: [indices in the layer's current numbering]} without removing them."""
    layers = layers_of(model)
    device = next(model.parameters()).device
    gates = [torch.ones(layer.ffn.down.in_features, device=device) for layer in layers]
    for layer_index, wanted in neurons.items():
        width = _check_layer(layers, layer_index).ffn.down.in_features
        for neuron in wanted:
            if not 0 <= neuron < width:
                raise ConfigError(f"layer {layer_index} has no neuron {neuron} (width {width})")
            gates[layer_index][neuron] = 0.0
    with gated_inputs([layer.ffn.down for layer in layers], gates, 1):
        yield model


def _check_layer(layers: Sequence[nn.Module], index: int) -> nn.Module:
    if not isinstance(index, int) or not 0 <= index < len(layers):
        raise ConfigError(f"layer {index!r} does not exist; the model has layers 0..{len(layers) - 1}")
    return layers[index]


# ----------------------------------------------------------------------------------------- losses
def task_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """The loss a batch with labels gives: the sum of a StepOutput's losses (TaskModel) or `.loss`."""
    out = model(**batch)
    losses = getattr(out, "losses", None)
    if isinstance(losses, dict) and losses:
        return sum(losses.values())  # type: ignore[return-value]
    loss = getattr(out, "loss", None)
    if loss is None:
        raise ConfigError("importance needs a loss: the batches carry no labels (or the model computes no loss)")
    return loss


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, dict):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return batch


def _gate_gradients(model: nn.Module, batches: Iterable[Any], gates: list[torch.Tensor], modules: list[nn.Module],
                    slice_width: int, loss_fn: LossFn) -> tuple[list[torch.Tensor], int]:
    """Mean over batches of |dL/d gate|, the model in eval mode (no dropout), its parameters untouched."""
    device = next(model.parameters()).device
    totals = [torch.zeros_like(g) for g in gates]
    for g in gates:
        g.requires_grad_(True)
    was_training = model.training
    model.eval()
    count = 0
    try:
        with gated_inputs(modules, gates, slice_width):
            for batch in batches:
                loss = loss_fn(model, _to(batch, device))
                wanted = [g for g in gates if g.numel()]
                grads = iter(torch.autograd.grad(loss, wanted, allow_unused=True))
                for i, g in enumerate(gates):
                    if g.numel():
                        grad = next(grads)
                        if grad is not None:
                            totals[i] += grad.detach().abs()
                count += 1
    finally:
        model.train(was_training)
    if not count:
        raise ConfigError("importance needs at least one batch of data; got none")
    return [t / count for t in totals], count


# ------------------------------------------------------------------------------------ head scores
@dataclass
class HeadImportance:
    """Scores of every head, (layers, original head count); NaN where a head is already pruned."""

    scores: torch.Tensor
    method: str = "gradient"
    batches: int = 0
    normalized: bool = True

    @property
    def num_layers(self) -> int:
        return self.scores.shape[0]

    def present(self, layer: int) -> list[int]:
        """Original indices of the heads layer `layer` still has."""
        return [h for h in range(self.scores.shape[1]) if not torch.isnan(self.scores[layer, h])]

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """Per-layer table: one column per head (- for a pruned head), the layer's head count, mean and max."""
        heads = self.scores.shape[1]
        header = ["layer", "heads", *[f"h{h}" for h in range(heads)], "mean", "max"]
        rows = []
        for layer in range(self.num_layers):
            row = self.scores[layer]
            kept = row[~torch.isnan(row)]
            rows.append([str(layer), str(kept.numel()), *["-" if torch.isnan(v) else f"{float(v):.3f}" for v in row],
                         f"{float(kept.mean()):.3f}" if kept.numel() else "-",
                         f"{float(kept.max()):.3f}" if kept.numel() else "-"])
        return header, rows

    def format(self, markdown: bool = False) -> str:
        header, rows = self.rows()
        return format_table(header, rows, markdown=markdown)

    def markdown(self) -> str:
        what = ("mean |dL/dxi_h| (absolute gradient at the head gate) over batches (Michel et al. 2019)"
                if self.method == "gradient" else "random scores (baseline)")
        norm = ", each layer normalised by its L2 norm" if self.normalized else ""
        return (f"# Head importance\n\nScores: {what}{norm}; {self.batches} batches. "
                f"A dash is a head already pruned.\n\n{self.format(markdown=True)}\n")

    def to_dict(self) -> dict[str, Any]:
        scores = [[None if torch.isnan(v) else float(v) for v in row] for row in self.scores]
        return {"method": self.method, "batches": self.batches, "normalized": self.normalized, "scores": scores}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadImportance:
        scores = torch.tensor([[float("nan") if v is None else v for v in row] for row in data["scores"]])
        return cls(scores, data.get("method", "gradient"), data.get("batches", 0), data.get("normalized", True))

    def heatmap(self, path: str | os.PathLike) -> str | None:
        """head_importance.png (layers x heads). Returns None when written, else why not (no matplotlib)."""
        plt = pyplot("heatmap")
        if plt is None:
            return "Warning: matplotlib is not installed (pip install 'bertology[plot]'); no heatmap written."
        layers, heads = self.scores.shape
        fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * heads + 2), max(3.0, 0.4 * layers + 1.5)))
        image = ax.imshow(self.scores.float().numpy(), cmap="viridis", aspect="auto")
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(heads))
        ax.set_yticks(range(layers))
        ax.set_title(f"Head importance ({self.method}); blank: pruned")
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        save_png(fig, path, dpi=110)
        return None

    def write(self, folder: str | os.PathLike) -> dict[str, Path]:
        """head_importance.md (table), .json (scores) and .png (heatmap, when matplotlib is there)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = {}
        why_not = self.heatmap(folder / HEATMAP_FILE)
        if why_not is None:
            written["heatmap"] = folder / HEATMAP_FILE
        with atomic_write(folder / TABLE_FILE) as handle:
            handle.write(self.markdown() + (f"\n![head importance]({HEATMAP_FILE})\n" if why_not is None
                                            else f"\n{why_not}\n"))
        written["table"] = folder / TABLE_FILE
        with atomic_write(folder / SCORES_FILE) as handle:
            json.dump(self.to_dict(), handle, indent=2)
            handle.write("\n")
        written["scores"] = folder / SCORES_FILE
        return written


def normalize_per_layer(values: torch.Tensor, exponent: float = 2.0) -> torch.Tensor:
    """Each row divided by its L_exponent norm over its non-NaN entries (Michel et al.: L2)."""
    out = values.clone()
    for i, row in enumerate(values):
        kept = ~torch.isnan(row)
        if kept.any():
            norm = row[kept].abs().pow(exponent).sum().pow(1.0 / exponent)
            out[i, kept] = row[kept] / (norm + 1e-20)
    return out


def _spread(model: nn.Module, per_layer: list[torch.Tensor]) -> torch.Tensor:
    """Per-layer scores of the present heads -> (layers, original heads) with NaN for pruned ones."""
    config = encoder_of(model).config
    full = torch.full((len(per_layer), config.num_attention_heads), float("nan"))
    for i, (layer, scores) in enumerate(zip(layers_of(model), per_layer, strict=True)):
        if scores.numel():
            full[i, layer.attention.head_ids] = scores.detach().float().cpu()
    return full


def head_importance(model: nn.Module, batches: Iterable[Any], loss_fn: LossFn = task_loss,
                    normalize: bool = True) -> HeadImportance:
    """I_h = mean over batches of |dL/dxi_h| (the task loss of each batch), per layer L2-normalised."""
    layers = layers_of(model)
    gates = _head_gates(model)
    grads, count = _gate_gradients(model, batches, gates, [layer.attention.out for layer in layers],
                                   layers[0].attention.head_dim, loss_fn)
    scores = _spread(model, grads)
    return HeadImportance(normalize_per_layer(scores) if normalize else scores, "gradient", count, normalize)


def random_head_importance(model: nn.Module, seed: int = 0) -> HeadImportance:
    """The baseline the paper compares with: uniform random scores (seeded), shaped like the real ones."""
    generator = torch.Generator().manual_seed(seed)
    scores = [torch.rand(layer.attention.num_heads, generator=generator) for layer in layers_of(model)]
    return HeadImportance(normalize_per_layer(_spread(model, scores)), "random", 0, True)


# ---------------------------------------------------------------------------------- neuron scores
def neuron_importance(model: nn.Module, batches: Iterable[Any] | None = None, loss_fn: LossFn = task_loss,
                      method: str = "gradient") -> list[torch.Tensor]:
    """One score per feed-forward neuron of each layer (current numbering).

    "gradient": mean |dL/dxi| of a gate on the neuron's activation (the head trick on `ffn.down`'s input);
    "magnitude": ||W_up[i, :]|| * ||W_down[:, i]||, no data needed."""
    layers = layers_of(model)
    if method == "magnitude":
        return [(layer.ffn.up.weight.detach().norm(dim=1) * layer.ffn.down.weight.detach().norm(dim=0)).float().cpu()
                for layer in layers]
    if method != "gradient":
        raise ConfigError(f"neuron importance method {method!r}; use 'gradient' or 'magnitude'")
    if batches is None:
        raise ConfigError("gradient neuron importance needs batches of task data")
    device = next(model.parameters()).device
    gates = [torch.ones(layer.ffn.down.in_features, device=device) for layer in layers]
    grads, _ = _gate_gradients(model, batches, gates, [layer.ffn.down for layer in layers], 1, loss_fn)
    return [g.float().cpu() for g in grads]


__all__ = ["HEATMAP_FILE", "SCORES_FILE", "TABLE_FILE", "HeadImportance", "gated_inputs", "head_importance",
           "mask_heads", "mask_neurons", "neuron_importance", "normalize_per_layer", "random_head_importance",
           "task_loss"]
