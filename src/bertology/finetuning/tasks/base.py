"""A task kind owns everything that differs between tasks, so the rest of fine-tuning never branches on one.

What it reads (`suffixes`, `check_header`, `row`), how examples become features (`encode`) and batches
(`pad_inputs`, `collate_target`), the head's size and level (`outputs`, `sentence_level`), the loss and batch
metrics (`loss`), how adversarial training compares predictions (`divergence`), and how logits decode
into the user's units and their metrics (`decode`, `metrics`). A new kind is one module::

    @TASK_KINDS.register("ordinal", options=OrdinalOptions)
    class Ordinal(TextKind):
        ...

and a config picks it with ``kind: ordinal`` (its options written beside the task's other fields), after
naming the module under ``plugins:`` when nothing else imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...utils.registry import Registry
from ...utils.typed import Where, as_where, parse, unknown_fields
from ..divergence import symmetric_kl
from ..encoding import Features, pad_rows
from ..examples import Example

if TYPE_CHECKING:
    from ..data import Reader
    from ..labels import LabelSet
    from ..model import HeadConfig, HeadOptions
    from ..taskdata import TaskData

__all__ = ["TASK_KINDS", "TaskKind", "argmax", "class_loss", "kind_options", "kind_with", "task_kind"]


class TaskKind:
    """One kind of task; an instance carries the kind's options (a dataclass, or None)."""

    #: file suffixes this kind reads; the reader picks the format (JSONL, CSV/TSV, SQuAD JSON, CoNLL) by suffix
    suffixes: tuple[str, ...] = (".csv", ".tsv", ".jsonl")
    #: one prediction per example from a pooled vector (False: one per token)
    sentence_level: bool = True
    #: the task has named labels (class names, tags), from a label file or the training data
    uses_labels: bool = False
    #: the head may predict several labels at once (independent sigmoids)
    supports_multi_label: bool = False
    #: batch keys holding the gold answers (kept from the encoder, handed to `loss`)
    target_keys: tuple[str, ...] = ("labels",)

    def __init__(self, options: Any = None, name: str = "") -> None:
        self.options = options
        self.name = name or type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, options={self.options!r})"

    # ----------------------------------------------------------------------------------------- reading
    def check_header(self, reader: Reader, header: list[str], source: str) -> None:
        """Check a CSV/TSV header before any row is read (a missing column is never a skippable row)."""

    def row(self, reader: Reader, row: Mapping[str, Any], source: str) -> Example:
        """One row (a mapping of column -> value) as an Example; raise `BadRow` for a bad one."""
        raise NotImplementedError(f"task kind {self.name!r} reads no rows")

    # ------------------------------------------------------------------------------ features, batches
    def encode(self, examples: Sequence[Example], tokenizer: Any, labels: LabelSet | None,
               max_length: int) -> Features:
        """Model features of `examples` (labels encoded with `labels` when given)."""
        raise NotImplementedError(f"task kind {self.name!r} cannot encode examples")

    def pad_inputs(self, values: list[Any], pad: int, key: str) -> torch.Tensor:
        """A batch of one model input (`key`), padded with `pad`."""
        return pad_rows(values, pad)

    def collate_target(self, key: str, values: list[Any]) -> torch.Tensor:
        """A batch of one of `target_keys`."""
        return torch.tensor(values, dtype=torch.long)

    # ------------------------------------------------------------------------------------------- head
    def outputs(self, head: HeadConfig) -> int:
        """Width of the head's linear layer."""
        return 1

    def check_head(self, head: HeadOptions, where: str = "") -> None:
        """Head settings this kind cannot use are errors (labels are checked when they are known)."""
        if head.multi_label and not self.supports_multi_label:
            raise ConfigError(f"{where}field 'multi_label' applies to classification heads, not to kind {self.name!r}")

    def check_labels(self, head: HeadConfig) -> None:
        """The head's label names suit this kind (checked once the data has named them)."""
        if self.uses_labels and len(head.labels) < 2 and not head.multi_label:
            raise ConfigError(f"a {self.name} head needs at least two labels, got {head.labels}")

    def group(self, inputs: dict[str, Any], cached: torch.Tensor | None
              ) -> tuple[dict[str, Any], torch.Tensor | None, int | None]:
        """Inputs (and cached features) as the encoder's rows; the group size `ungroup` needs back."""
        return inputs, cached, None

    def ungroup(self, logits: torch.Tensor, groups: int | None) -> torch.Tensor:
        """Logits per example from logits per encoder row."""
        return logits

    def loss(self, head: HeadConfig, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """The training loss (None without targets) and batch metrics."""
        raise NotImplementedError(f"task kind {self.name!r} has no loss")

    def divergence(self, head: HeadOptions | None, clean: torch.Tensor, perturbed: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
        """How far perturbed predictions moved from clean ones (SMART); gradients flow through both."""
        return symmetric_kl(perturbed, clean)

    # ------------------------------------------------------------------------------------ predictions
    def decode(self, task: TaskData, split: str, logits: list[np.ndarray]) -> list[Any]:
        """Per-example predictions in the user's units from per-feature logits."""
        raise NotImplementedError(f"task kind {self.name!r} cannot decode predictions")

    def metrics(self, task: TaskData, split: str, predictions: list[Any]) -> dict[str, float]:
        """Scores of `predictions` against the split's gold labels."""
        raise NotImplementedError(f"task kind {self.name!r} has no metrics")


TASK_KINDS: Registry[type[TaskKind]] = Registry("task kind")


def task_kind(kind: str | TaskKind, options: Any = None, where: str | Where = "") -> TaskKind:
    """The kind named `kind` with `options` (default: its options' defaults); a TaskKind passes through."""
    if isinstance(kind, TaskKind):
        return kind
    entry = TASK_KINDS.entry(kind, where)
    if options is None and entry.options is not None:
        options = parse(entry.options, {}, where)
    return entry.obj(options, entry.name)


def kind_options(kind: str, data: Any, where: str | Where = "", also_known: Sequence[str] = ()) -> Any:
    """`data` parsed into the options of `kind`; a stray key names the nearest of these and `also_known`."""
    where = as_where(where)
    entry = TASK_KINDS.entry(kind, where.child("kind"))
    if entry.options is not None and isinstance(data, entry.options):
        return data
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}the options of kind {kind!r} must be a mapping, got {data!r}")
    known = [f.name for f in dataclasses.fields(entry.options)] if entry.options is not None else []
    strays = [key for key in data if key not in known]
    if strays:
        raise unknown_fields(where, strays, [*also_known, *known])
    return None if entry.options is None else parse(entry.options, dict(data), where)


def kind_with(kind: str | TaskKind, **values: Any) -> TaskKind:
    """The kind with those of `values` that are its options (an API caller's keyword arguments)."""
    if isinstance(kind, TaskKind):
        return kind
    entry = TASK_KINDS.entry(kind)
    if entry.options is None:
        return task_kind(kind)
    known = {f.name for f in dataclasses.fields(entry.options)}
    return task_kind(kind, parse(entry.options, {k: v for k, v in values.items() if k in known}))


def argmax(logits: list[np.ndarray]) -> list[int]:
    """The best class (or choice) of each row."""
    return [int(row.argmax(-1)) for row in logits]


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    keep = labels != -100
    return (logits.argmax(-1)[keep] == labels[keep]).float().mean() if keep.any() else logits.new_zeros(())


def class_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross entropy over the last axis (-100 ignored) and the accuracy of the argmax."""
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    return loss, {"accuracy": _accuracy(logits.detach(), labels)}

