"""Fine-tuning schedules over the depth of the network: layer-wise learning rates and unfreezing.

Lower layers of a pretrained encoder hold general features that fine-tuning should disturb little, the
task head starts from random and must learn fast. Three published ways act on that, all over the same
notion of *depth*:

* layer-wise learning-rate decay (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification";
  ELECTRA, Clark et al. 2020): each depth below the top trains at `decay` times the rate of the one above;
* gradual unfreezing (Howard and Ruder 2018, ULMFiT): train the head alone first, then unfreeze one more
  depth from the top at a time, so random head gradients never reach the pretrained layers;
* chain-thaw (Felbo et al. 2017, DeepMoji): train the head alone, then each depth alone from the bottom up,
  then everything.

Depths: 0 is the embeddings (and ALBERT's embedding projection), ``i + 1`` the encoder layer ``i``, ``L + 1``
everything above the encoder (pooler, task heads, scalar mixes). Anything living inside a layer (adapters,
LoRA matrices, Mixout wrappers) has that layer's depth. Two choices for shared weights:

* ``L`` counts *distinct* layer modules, numbered by where they are first applied. ALBERT's full sharing
  (one layer applied 12 times) is therefore one depth: embeddings 0, the shared layer 1, the heads 2; with
  ``num_hidden_groups`` groups there are that many layer depths. Otherwise most depths would hold no tensor
  and an unfreezing schedule would spend phases training nothing.
* A tensor used at several depths (attention shared across layers, an output matrix tied to the word
  embeddings) takes the *lowest*: changing it changes every representation above its first use, which is
  what the small rates of low layers guard against (it also matches how tied embeddings are usually treated).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from torch import nn

from ..errors import ConfigError
from ..models.encoder import Encoder
from ..training.callbacks import Callback
from ..training.optim import no_decay_parameter_ids

if TYPE_CHECKING:
    from ..training.trainer import Trainer

logger = logging.getLogger("bertology")

__all__ = ["GradualUnfreezing", "SequentialUnfreezing", "layer_depths", "layerwise_lr_groups", "num_depths"]


def _encoder_paths(model: nn.Module) -> tuple[Encoder, list[list[str]]]:
    """The one Encoder of `model` and every module path it is reachable under (AMBERT reaches it twice)."""
    found: dict[int, tuple[Encoder, list[list[str]]]] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, Encoder):
            found.setdefault(id(module), (module, []))[1].append(path.split(".") if path else [])
    if not found:
        raise ConfigError(f"{type(model).__name__} holds no bertology Encoder (bertology.models.encoder.Encoder); "
                          "layer depths need one to tell the embeddings, the layers and the heads apart")
    if len(found) > 1:
        paths = sorted(".".join(paths[0]) or "<root>" for _, paths in found.values())
        raise ConfigError(f"{type(model).__name__} holds {len(found)} different Encoders ({paths}); layer depths "
                          "are defined for a model with one encoder")
    return next(iter(found.values()))


def _layer_depths(encoder: Encoder) -> dict[int, int]:
    """Depth (1-based) of each distinct layer module, ranked by its first application in `order`."""
    first: dict[int, int] = {}
    for position, index in enumerate(encoder.order):
        first.setdefault(index, position)
    never = len(encoder.order)  # unused layers (no gradient anyway) go on top of the used ones
    ranked = sorted(range(len(encoder.layers)), key=lambda j: (first.get(j, never), j))
    return {index: rank + 1 for rank, index in enumerate(ranked)}


def _depths_by_id(model: nn.Module) -> tuple[dict[int, int], int]:
    """Depth of every parameter tensor (by id), and the top depth L + 1."""
    encoder, paths = _encoder_paths(model)
    layer_depth = _layer_depths(encoder)
    top = len(encoder.layers) + 1

    def depth_of(name: str) -> int:
        parts = name.split(".")
        for path in paths:
            if parts[: len(path)] == path:
                rest = parts[len(path):]
                if len(rest) > 2 and rest[0] == "layers" and rest[1].isdigit():
                    return layer_depth[int(rest[1])]
                return top  # encoder tensors outside the layers (a final norm) act after them
            parent = path[:-1]
            if len(parts) > len(parent) and parts[: len(parent)] == parent and parts[len(parent)].startswith("embed"):
                return 0
        return top

    depths: dict[int, int] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        depth = depth_of(name)
        depths[id(param)] = min(depth, depths.get(id(param), depth))
    return depths, top


def layer_depths(model: nn.Module) -> dict[str, int]:
    """Depth of every parameter, by name: 0 embeddings, i + 1 encoder layer i, L + 1 above the encoder.

    Names are those of `model.named_parameters()` (a shared tensor once); see the module docstring for
    shared layers and tied tensors.
    """
    depths, _ = _depths_by_id(model)
    return {name: depths[id(param)] for name, param in model.named_parameters()}


def num_depths(model: nn.Module) -> int:
    """L + 2: the number of depths, embeddings to heads (L counts distinct layer modules)."""
    return _depths_by_id(model)[1] + 1


def layerwise_lr_groups(model: nn.Module, lr: float, decay: float, weight_decay: float,
                        include_frozen: bool = False) -> list[dict]:
    """AdamW groups with peak rate ``lr * decay ** (L + 1 - depth)``: the heads at `lr`, each depth below at
    `decay` times the rate above. Biases and normalisation parameters keep weight decay 0 (the same rule as
    `training.optim.parameter_groups`).

    Frozen tensors are left out unless `include_frozen` (needed when an unfreezing schedule will thaw them
    later: the optimizer skips tensors without a gradient, so holding them costs nothing until then).
    Groups are ordered from the top down, so the first group (the one the trainer logs) has the peak rate;
    each carries its "depth".
    """
    if not lr > 0:
        raise ConfigError(f"layerwise_lr_groups: lr must be positive, got {lr}")
    if not 0 < decay <= 1:
        raise ConfigError(f"layerwise_lr_groups: decay must lie in (0, 1] (1 = the same rate everywhere), got {decay}")
    if weight_decay < 0:
        raise ConfigError(f"layerwise_lr_groups: weight_decay must be >= 0, got {weight_decay}")
    depths, top = _depths_by_id(model)
    exempt = no_decay_parameter_ids(model)
    buckets: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for param in model.parameters():  # each shared tensor once
        if param.requires_grad or include_frozen:
            buckets.setdefault((depths[id(param)], id(param) in exempt), []).append(param)
    groups = []
    for depth in range(top, -1, -1):
        for no_decay in (False, True):
            params = buckets.get((depth, no_decay))
            if params:
                groups.append({"params": params, "lr": lr * decay ** (top - depth),
                               "weight_decay": 0.0 if no_decay else weight_decay, "depth": depth})
    if not groups:
        raise ConfigError(f"layerwise_lr_groups: {type(model).__name__} has no trainable parameters "
                          "(pass include_frozen=True if an unfreezing schedule will thaw them)")
    return groups


def _describe(depths: frozenset[int], top: int) -> str:
    def name(depth: int) -> str:
        return "embeddings" if depth == 0 else "heads" if depth == top else f"layer {depth - 1}"

    return ", ".join(name(d) for d in sorted(depths))


class _Unfreezing(Callback):
    """Sets `requires_grad` by depth from `trainer.step` alone, so a resumed run is in the right phase.

    Phases run over the depths that hold a tensor to train; an empty depth (say, embeddings the user froze
    before building the Trainer) is skipped rather than given a phase in which nothing could learn.
    """

    label = ""

    def __init__(self, every: int | None = None, model: nn.Module | None = None) -> None:
        """`every`: optimizer steps per phase (None: one epoch, known when training starts). `model` binds
        the depths now (else at the start of training), for `trainable_depths` outside a run."""
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ConfigError(f"{type(self).__name__}: every must be a positive number of steps, got {every!r}")
        self.every = every
        self.top: int | None = None
        #: depths holding at least one managed tensor, ascending
        self.levels: list[int] = []
        self.managed: list[tuple[nn.Parameter, int]] = []
        self.current: frozenset[int] | None = None
        if model is not None:
            self._bind(model, [p for p in model.parameters()])

    def _bind(self, model: nn.Module, params: list[nn.Parameter]) -> None:
        depths, self.top = _depths_by_id(model)
        self.managed = [(p, depths[id(p)]) for p in params]
        self.levels = sorted({depth for _, depth in self.managed})
        if not self.levels:
            raise ConfigError(f"{type(self).__name__}: {type(model).__name__} has no parameter to unfreeze "
                              "(the optimizer holds none)")

    def phase(self, step: int) -> int:
        if self.every is None:
            raise ConfigError(f"{type(self).__name__}: the phase length is unknown before training starts; "
                              "pass every=")
        return step // self.every

    def trainable_depths(self, step: int) -> frozenset[int]:
        """The depths that train during optimizer step `step` (0-based count of finished steps)."""
        raise NotImplementedError

    def _levels(self) -> list[int]:
        if not self.levels:
            raise ConfigError(f"{type(self).__name__}: no model bound yet; pass model= or start training")
        return self.levels

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.world.distributed:
            raise ConfigError(f"{type(self).__name__} changes which parameters get gradients during the run, "
                              "which DistributedDataParallel does not allow; train on one process")
        if self.every is None:
            self.every = max(1, len(trainer.loader) // trainer.config.gradient_accumulation)
        # Only what the optimizer holds: tensors frozen before the Trainer was built (and so not in its
        # groups) stay frozen; pass layerwise_lr_groups(..., include_frozen=True) to thaw those too.
        held = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
        self._bind(trainer.raw, [p for p in trainer.raw.parameters() if id(p) in held])
        self.current = None
        self._apply(trainer.step)

    def on_step_start(self, trainer: Trainer) -> None:
        self._apply(trainer.step)

    def _apply(self, step: int) -> None:
        wanted = self.trainable_depths(step)
        if wanted == self.current:
            return
        count = 0
        for param, depth in self.managed:
            param.requires_grad_(depth in wanted)
            count += param.numel() if depth in wanted else 0
        self.current = wanted
        assert self.top is not None
        what = "everything" if wanted == frozenset(self.levels) else _describe(wanted, self.top)
        logger.info("%s at step %d: training %s (%d parameters)", self.label, step, what, count)


class GradualUnfreezing(_Unfreezing):
    """ULMFiT's gradual unfreezing: the heads alone, then one more depth from the top every `every` steps."""

    label = "gradual unfreezing"

    def trainable_depths(self, step: int) -> frozenset[int]:
        levels = self._levels()
        thawed = min(self.phase(step) + 1, len(levels))
        return frozenset(levels[len(levels) - thawed:])


class SequentialUnfreezing(_Unfreezing):
    """Chain-thaw: the heads alone, then each depth alone from the embeddings up (the heads, already
    trained, are not repeated), then everything; `every` steps per phase, the last one until the end."""

    label = "sequential unfreezing"

    def trainable_depths(self, step: int) -> frozenset[int]:
        levels, phase = self._levels(), self.phase(step)
        if phase == 0:
            return frozenset(levels[-1:])
        if phase < len(levels):
            return frozenset({levels[phase - 1]})
        return frozenset(levels)
