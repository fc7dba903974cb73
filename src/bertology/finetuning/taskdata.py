"""A task's configuration and data: its files read, cleaned, split, labelled and encoded."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..datasets.splits import check_fractions
from ..errors import ConfigError
from ..utils.typed import Where, as_where, parse
from .cleaning import clean, shared_texts, split
from .data import read_examples
from .examples import Columns
from .features import encode
from .labels import LabelSet
from .model import HeadConfig, HeadOptions
from .tasks import TASK_KINDS, TaskKind, kind_options, task_kind

logger = logging.getLogger("bertology")

__all__ = ["TaskConfig", "TaskData", "fold_kind_options", "head_config", "read_task"]


@dataclass
class TaskConfig:
    """One task of a fine-tuning config. Options of its kind (QA: doc_stride, max_query_length; tagging:
    scheme, label_all_pieces) are written beside these fields, or under `options`."""

    kind: str = "classification"
    train: str | None = field(default=None, metadata={"path": True})
    dev: str | None = field(default=None, metadata={"path": True})
    test: str | None = field(default=None, metadata={"path": True})
    #: field names in the files
    columns: Columns = field(default_factory=Columns)
    #: a label file (one per line); otherwise labels come from the training data
    labels: str | None = field(default=None, metadata={"path": True})
    #: split `train` into train/dev/test with these fractions when dev/test are not given
    split: list[float] | None = None
    #: drop duplicate examples and every copy of a text with conflicting labels (before splitting)
    clean: bool = False
    max_length: int = 128
    #: which encoder outputs the head reads (its labels come from the data)
    head: HeadOptions = field(default_factory=HeadOptions)
    #: the kind's options, parsed into its options dataclass when the config is loaded
    options: Any = None

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        if self.max_length < 1:
            raise ConfigError(f"{where}field 'max_length' must be positive, got {self.max_length}")
        if self.split is not None:
            if not 1 <= len(self.split) <= 3:
                raise ConfigError(f"{where}field 'split' takes 1 to 3 fractions (train, dev, test), got {self.split}")
            try:
                check_fractions(self.split)
            except ConfigError as exc:
                raise ConfigError(f"{where}field 'split': {exc}") from None
        self.options = kind_options(self.kind, self.options, where, also_known=TASK_FIELDS)
        self.task_kind.check_head(self.head, where.child("head"))

    @property
    def task_kind(self) -> TaskKind:
        return task_kind(self.kind, self.options)

    @classmethod
    def from_saved(cls, kind: str, head: HeadOptions, saved: Mapping[str, Any]) -> TaskConfig:
        """The task config a fine-tuned model folder describes: its kind and head, and how its data was read
        (`saved_options`; models saved before kinds owned their options kept them beside the others)."""
        entry = TASK_KINDS.entry(kind)
        names = {f.name for f in dataclasses.fields(entry.options)} if entry.options is not None else set()
        options = {**{k: v for k, v in saved.items() if k in names}, **(saved.get("options") or {})}
        head_fields = {f.name: getattr(head, f.name) for f in dataclasses.fields(HeadOptions)}
        data = {"kind": kind, "columns": saved.get("columns") or {}, "max_length": saved.get("max_length", 128),
                "head": head_fields, "options": options}
        return parse(cls, data, "task.json: ")

    def saved_options(self) -> dict[str, Any]:
        """How the data was read and encoded, for `evaluate` and `predict` to read files the same way."""
        options = dataclasses.asdict(self.options) if dataclasses.is_dataclass(self.options) else {}
        return {"columns": dataclasses.asdict(self.columns), "max_length": self.max_length, "options": options}


TASK_FIELDS = tuple(f.name for f in dataclasses.fields(TaskConfig) if f.name != "options")


def fold_kind_options(task: Mapping[str, Any]) -> dict[str, Any]:
    """A task mapping with every key that is not a TaskConfig field moved under `options`.

    Kind options are written beside the task's other fields (``doc_stride: 64``); the kind then parses
    them, and a key that belongs to neither is an error suggesting the nearest of both.
    """
    if not isinstance(task, Mapping):
        return task  # type: ignore[return-value]  # parse reports the wrong type with its key path
    folded = {k: v for k, v in task.items() if k in TASK_FIELDS}
    extra = {k: v for k, v in task.items() if k not in TASK_FIELDS and k != "options"}
    options = task.get("options")
    if extra and (options is None or isinstance(options, Mapping)):
        options = {**(options or {}), **extra}
    if options is not None:
        folded["options"] = options
    return folded


@dataclass
class TaskData:
    """A task's examples, labels and encoded features, per split."""

    name: str
    config: TaskConfig
    labels: LabelSet | None
    examples: dict[str, list]
    features: dict[str, list[dict]]
    skipped: dict[str, int]

    @property
    def kind(self) -> TaskKind:
        return self.config.task_kind


def _labels(config: TaskConfig, examples: dict[str, list], given: LabelSet | None = None) -> LabelSet | None:
    """The label set of a kind with named labels: `given` (a trained head's), else the label file's (each
    checked against the data), else the data's."""
    if not config.task_kind.uses_labels:
        return None
    if given is None and not config.labels:
        return LabelSet.from_examples(examples["train"])
    labels = given if given is not None else LabelSet.from_file(config.labels)
    for split_name, items in examples.items():
        labels.check_against(items, getattr(config, split_name) or config.train)
    return labels


def read_task(name: str, config: TaskConfig, tokenizer: Any, on_error: str, seed: int,
              labels: LabelSet | None = None) -> TaskData:
    """Read, clean, split, label and encode a task's files. `labels`: the label ids a trained head already
    uses (a teacher's, a model trained further); data with a label outside them is an error."""
    kind = config.task_kind
    examples: dict[str, list] = {}
    skipped: dict[str, int] = {}
    for split_name in ("train", "dev", "test"):
        path = getattr(config, split_name)
        if path:
            result = read_examples(path, kind, config.columns, on_error=on_error)
            examples[split_name] = result.examples
            skipped[split_name] = len(result.skipped)
    if "train" not in examples:
        raise ConfigError(f"task '{name}': field 'train' is required")
    if config.clean:
        for split_name, items in examples.items():
            examples[split_name], report = clean(items)
            logger.info("task %s %s: %s", name, split_name, report)
    for split_name in ("dev", "test"):
        leaked = shared_texts(examples["train"], examples.get(split_name, []))
        if leaked:
            logger.warning("task %s: %d %s example(s) also occur in train (first: %s); their scores flatter the "
                           "model (set clean: true and split: to split one deduplicated file)",
                           name, len(leaked), split_name, leaked[0])
    if config.split and "dev" not in examples:
        parts = split(examples["train"], tuple(config.split), seed)
        examples.update(zip(("train", "dev", "test"), parts, strict=False))
    labels = _labels(config, examples, labels)
    features = {split_name: encode(items, tokenizer, kind, labels, max_length=config.max_length)
                for split_name, items in examples.items()}
    return TaskData(name, config, labels, examples, features, skipped)


def head_config(task: TaskData) -> HeadConfig:
    """The head of `task`: its config's head section, its kind and the label names the data gave."""
    names = list(task.labels.names) if task.labels is not None else []
    return HeadConfig(kind=task.config.kind, labels=names, **dataclasses.asdict(task.config.head))
