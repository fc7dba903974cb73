"""Which encoder layers feed a task head.

Fine-tuning and probing work (ELMo, Peters et al. 2018; BERT's feature-based NER, Devlin et al. 2019;
Tenney et al. 2019) shows that the top layer is not always the best input: lower layers carry more
surface/syntactic information and a learned mix or the concatenation of the last four layers is often
stronger.  These modules take the ``hidden_states`` tuple a model returns with
``output_hidden_states=True`` (embeddings output first, then one tensor per layer) and produce the
single ``(batch, seq, width)`` tensor a head consumes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

STRATEGIES: tuple[str, ...] = ("embeddings", "top", "layer", "scalar_mix", "concat_last_four")


class ScalarMix(nn.Module):
    """ELMo's scalar mix: ``gamma * sum_j softmax(w)_j * h_j``.

    The weights start at zero so the mix starts as the plain mean of the layers (no layer is favoured
    before training says so); ``gamma`` (init 1.0) lets the task rescale the whole mix, which ELMo found
    helps optimisation.  ``do_layer_norm`` normalises each layer first (over the unpadded elements when a
    mask is given), because layer activations can differ greatly in scale.
    """

    def __init__(self, num_layers: int, do_layer_norm: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"ScalarMix needs num_layers >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.do_layer_norm = do_layer_norm
        self.scalar_parameters = nn.Parameter(torch.zeros(num_layers))
        self.gamma = nn.Parameter(torch.tensor(1.0))

    def weights(self) -> torch.Tensor:
        """The normalised layer weights ``softmax(w)`` (sum to 1)."""
        return torch.softmax(self.scalar_parameters, dim=0)

    @staticmethod
    def _layer_norm(tensor: torch.Tensor, mask: torch.Tensor | None, eps: float = 1e-12) -> torch.Tensor:
        if mask is None:
            mean = tensor.mean()
            var = tensor.var(unbiased=False)
        else:
            keep = mask.unsqueeze(-1).to(tensor.dtype)
            count = (keep.sum() * tensor.shape[-1]).clamp(min=1.0)
            mean = (tensor * keep).sum() / count
            var = (((tensor - mean) * keep) ** 2).sum() / count
        return (tensor - mean) / torch.sqrt(var + eps)

    def forward(self, tensors: Sequence[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mix ``num_layers`` same-shaped tensors; ``mask`` (batch, seq) only matters with layer norm."""
        if len(tensors) != self.num_layers:
            raise ValueError(f"ScalarMix was built for {self.num_layers} layers but got {len(tensors)}")
        weights = self.weights()
        mixed = None
        for w, h in zip(weights, tensors, strict=True):
            if self.do_layer_norm:
                h = self._layer_norm(h, mask)
            term = w * h
            mixed = term if mixed is None else mixed + term
        assert mixed is not None
        return self.gamma * mixed


class LayerSelector(nn.Module):
    """Turn a model's ``hidden_states`` tuple into the one tensor a task head reads.

    Strategies:

    * ``"embeddings"``: ``hidden_states[0]``, the non-contextual baseline.
    * ``"top"``: the last layer, the standard fine-tuning input.
    * ``"layer"``: ``hidden_states[layer]`` with ``layer`` in ``[-(L+1), L]`` (0 = embeddings), for probing.
    * ``"scalar_mix"``: a learned :class:`ScalarMix` over all ``L+1`` tensors (ELMo).
    * ``"concat_last_four"``: the last four layers concatenated on the feature axis, width ``4H``
      (BERT's best feature-based NER setting).
    """

    def __init__(self, strategy: str, num_hidden_layers: int, layer: int | None = None,
                 do_layer_norm: bool = False) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown layer strategy {strategy!r}; choose one of {list(STRATEGIES)}")
        if num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be >= 1, got {num_hidden_layers}")
        if strategy == "layer":
            if layer is None:
                raise ValueError("strategy 'layer' needs a layer index")
            if not -(num_hidden_layers + 1) <= layer <= num_hidden_layers:
                raise ValueError(f"layer {layer} is out of range for strategy 'layer' with "
                                 f"{num_hidden_layers} hidden layers; use 0..{num_hidden_layers} "
                                 f"(0 = embeddings) or a negative index down to {-(num_hidden_layers + 1)}")
        elif layer is not None:
            raise ValueError(f"layer={layer} is only meaningful with strategy 'layer', not {strategy!r}")
        if strategy == "concat_last_four" and num_hidden_layers < 4:
            raise ValueError(f"strategy 'concat_last_four' needs at least 4 hidden layers, "
                             f"got {num_hidden_layers}")
        self.strategy = strategy
        self.num_hidden_layers = num_hidden_layers
        self.layer = layer
        self.scalar_mix = (ScalarMix(num_hidden_layers + 1, do_layer_norm=do_layer_norm)
                           if strategy == "scalar_mix" else None)

    def output_size(self, hidden_size: int) -> int:
        """Feature width of :meth:`forward`'s output for an encoder of width ``hidden_size``."""
        return 4 * hidden_size if self.strategy == "concat_last_four" else hidden_size

    def forward(self, hidden_states: Sequence[torch.Tensor],
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Select/combine ``hidden_states`` (embeddings first, then one per layer) -> (batch, seq, width)."""
        if hidden_states is None or len(hidden_states) != self.num_hidden_layers + 1:
            got = "None" if hidden_states is None else str(len(hidden_states))
            raise ValueError(f"strategy {self.strategy!r} expects {self.num_hidden_layers + 1} hidden states "
                             f"(embeddings + {self.num_hidden_layers} layers), got {got}; "
                             "call the model with output_hidden_states=True")
        if self.strategy == "embeddings":
            return hidden_states[0]
        if self.strategy == "top":
            return hidden_states[-1]
        if self.strategy == "layer":
            assert self.layer is not None
            return hidden_states[self.layer]
        if self.strategy == "scalar_mix":
            assert self.scalar_mix is not None
            return self.scalar_mix(hidden_states, attention_mask)
        return torch.cat(list(hidden_states[-4:]), dim=-1)

    def extra_repr(self) -> str:
        extra = f", layer={self.layer}" if self.layer is not None else ""
        return f"strategy={self.strategy!r}, num_hidden_layers={self.num_hidden_layers}{extra}"
