"""A task's configuration and data: its files read, cleaned, split, labelled and encoded."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..utils.typed import from_mapping
from .cleaning import clean, shared_texts, split
from .data import Columns, read_examples
from .features import encode
from .labels import LabelSet
from .model import HeadConfig

logger = logging.getLogger("bertology")


@dataclass
class TaskConfig:
    kind: str = "classification"
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    #: field names in the files (see finetuning.data.Columns)
    columns: dict = field(default_factory=dict)
    #: a label file (one per line); otherwise labels come from the training data
    labels: str | None = None
    #: split `train` into train/dev/test with these fractions when dev/test are not given
    split: list | None = None
    #: drop duplicate examples and every copy of a text with conflicting labels (before splitting)
    clean: bool = False
    max_length: int = 128
    #: QA: tokens shared by consecutive windows of a long context
    doc_stride: int = 64
    #: QA: questions are cut to this many tokens
    max_query_length: int = 64
    #: tagging scheme for entity scores
    scheme: str = "BIO"
    #: HeadConfig fields: layers, layer, pooling, dropout, multi_label
    head: dict = field(default_factory=dict)


def task_config(name: str, data: dict[str, Any]) -> TaskConfig:
    return from_mapping(TaskConfig, data, f"task '{name}': ")


@dataclass
class TaskData:
    """A task's examples, labels and encoded features, per split."""

    name: str
    config: TaskConfig
    labels: LabelSet | None
    examples: dict[str, list]
    features: dict[str, list[dict]]
    skipped: dict[str, int]


def read_task(name: str, config: TaskConfig, tokenizer: Any, on_error: str, seed: int) -> TaskData:
    columns = Columns.from_dict(config.columns, f"task '{name}': ")
    examples: dict[str, list] = {}
    skipped: dict[str, int] = {}
    for split_name in ("train", "dev", "test"):
        path = getattr(config, split_name)
        if path:
            result = read_examples(path, config.kind, columns, on_error=on_error)
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
    labels = None
    if config.kind in ("classification", "tagging"):
        if config.labels:
            labels = LabelSet.from_file(config.labels)
            for split_name, items in examples.items():
                labels.check_against(items, getattr(config, split_name) or config.train)
        else:
            labels = LabelSet.from_examples(examples["train"])
    features = {
        split_name: encode(items, tokenizer, config.kind, labels, max_length=config.max_length,
                           doc_stride=config.doc_stride, max_query_length=config.max_query_length)
        for split_name, items in examples.items()
    }
    return TaskData(name, config, labels, examples, features, skipped)


def head_config(task: TaskData) -> HeadConfig:
    names = list(task.labels.names) if task.labels is not None else []
    return HeadConfig(kind=task.config.kind, labels=names, **task.config.head)


