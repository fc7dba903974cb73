"""The shape of a pretraining objective, and the registry that picks one by name.

An objective is one module: a class decorated with `@register("name", options=OptionsDataclass)`. Its class
attributes declare what it needs (pooler, sentence pairs, case labels, masked inputs) and which objectives it
cannot be trained with, so the checks of a combination never name objectives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.transforms import InstanceTransform, TransformContext
from ..errors import ConfigError
from ..models.outputs import EncoderOutput
from ..utils.registry import Registry
from ..utils.typed import Where, as_where


@dataclass(frozen=True)
class RunFacts:
    """What an objective's `check_run` may look at: the input format, the corpus and the encoder."""

    #: `data.format` (segment_pair, sentence_pair, full_sentences, doc_sentences)
    format: str
    max_length: int
    #: the prepared corpus (a `TokenCorpus`: documents, sentences, `meta`)
    corpus: Any
    #: the encoder the objectives sit on (its class names the family)
    encoder: nn.Module


Losses = dict[str, torch.Tensor]
Metrics = dict[str, torch.Tensor]


class Objective(nn.Module):
    """One pretraining task: reads the encoder output and the batch, returns named losses and metrics.

    Class attributes tell the rest of the system what the task needs: the [CLS] pooler, a sentence-pair
    task in the data (nsp, sop, order, distance), per-token case labels, or masked inputs; `conflicts`
    names the objectives it cannot be combined with, and `conflict_reason` says why. The constructor
    takes (model config, encoder, options), the options parsed into the dataclass the objective was
    registered with (None when it takes none).
    """

    needs_pooler: ClassVar[bool] = False
    pair_task: ClassVar[str | None] = None
    needs_case: ClassVar[bool] = False
    needs_masking: ClassVar[bool] = False
    conflicts: ClassVar[tuple[str, ...]] = ()
    conflict_reason: ClassVar[str] = ""

    @classmethod
    def instance_transform(cls, options: Any, context: TransformContext) -> InstanceTransform | None:
        """The change this objective makes to each training instance before batching (BART's noising,
        StructBERT's shuffled trigrams, ...), run by the collator; None when it reads the instance as it is."""
        return None

    @classmethod
    def check_run(cls, name: str, options: Any, run: RunFacts) -> None:
        """Raise ConfigError, naming the objective and what it needs, when this run cannot feed it (sentence
        pairs, several sentences per document, parallel text, a family it does not support). Called when the
        run is built, before any training."""

    def prepare(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        """Rewrite the encoder's input before it runs (ELECTRA's generator does); most tasks do not."""
        return batch

    def forward(self, encoded: EncoderOutput, batch: dict[str, Any]) -> tuple[Losses, Metrics]:
        raise NotImplementedError


OBJECTIVES: Registry[type[Objective]] = Registry("objective")
#: `@register("name", options=OptionsDataclass)`: make an objective choosable by name in a config
register = OBJECTIVES.register


def objective_classes(names: list[str], where: str | Where = "") -> dict[str, type[Objective]]:
    """The classes of `names`, once the combination passes every check: each name known (a typo gets a
    suggestion), at least one, one sentence-pair task at most, and no two that declare a conflict."""
    where = as_where(where)
    if not names:
        raise ConfigError(f"{where}at least one objective is needed")
    classes = {name: OBJECTIVES.entry(name, where).obj for name in names}
    pair_tasks = [c.pair_task for c in classes.values() if c.pair_task]
    if len(pair_tasks) > 1:
        raise ConfigError(f"{where}one sentence-pair objective at a time, got {pair_tasks}")
    for name, cls in classes.items():
        for other in cls.conflicts:
            if other in classes:
                reason = f": {cls.conflict_reason}" if cls.conflict_reason else ""
                raise ConfigError(f"{where}objective '{name}' cannot be combined with '{other}'{reason}")
    return classes


def objective_options(names: list[str], options: dict[str, Any] | None,
                      where: str | Where = "") -> dict[str, Any]:
    """Each objective's options parsed into its options dataclass (None for one that takes none); `where` is
    the options section, so a misspelt objective name is reported there and a misspelt option under it."""
    where, options = as_where(where), options or {}
    for name in names:
        OBJECTIVES.entry(name, where)
    return {name: OBJECTIVES.options(name, options.get(name), where.child(name)) for name in names}


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return hit_rate(logits.argmax(-1) == target)


def hit_rate(hits: torch.Tensor) -> torch.Tensor:
    """Share of True in `hits` as a detached float tensor on its device (0 for none): no sync on the step."""
    if hits.numel() == 0:
        return torch.zeros((), device=hits.device)
    return hits.float().mean().detach()
