"""A fine-tuned model ready to score or label files: the task, its label set and its data options travel
in the model folder, so `evaluate` and `predict` read files exactly as training did."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..device import resolve_device
from ..errors import ConfigError, DataError
from ..tokenization import load_tokenizer
from ..utils.io import atomic_write
from .data import read_examples
from .features import Collator, collator_for, encode
from .labels import LabelSet
from .model import TaskModel, tokenizer_folder
from .predict import _batches, evaluate_task, task_logits, task_predictions
from .taskdata import TaskConfig, TaskData

__all__ = ["BACKENDS", "Session", "load_for_inference"]


@dataclass
class Session:
    model: TaskModel
    tokenizer: Any
    name: str
    config: TaskConfig
    labels: LabelSet | None

    @property
    def collate(self) -> Collator:
        return collator_for(self.tokenizer, self.config.task_kind, getattr(self.model.encoder, "token_inputs", ()))

    def read(self, path: str | os.PathLike, split: str, on_error: str = "raise",
             require_labels: bool = True) -> TaskData:
        """Read and encode a file; with labels, an unknown label is an error naming file and line (or a
        counted skip with on_error="skip")."""
        kind = self.config.task_kind
        result = read_examples(path, kind, self.config.columns, on_error=on_error, require_labels=require_labels)
        examples = result.examples
        skipped = len(result.skipped)
        labels = self.labels if require_labels else None
        if labels is not None and on_error == "skip":
            known = set(labels.names)
            keep = [e for e in examples if _labels_of(e) <= known]
            skipped += len(examples) - len(keep)
            examples = keep
        if not examples:
            raise DataError(f"{path}: no usable rows ({skipped} skipped as bad)")
        features = encode(examples, self.tokenizer, kind, labels, max_length=self.config.max_length)
        return TaskData(self.name, self.config, self.labels, {split: examples}, {split: features}, {split: skipped})

    def batches(self, task: TaskData, batch_size: int = 32, limit: int = 0, bucket: bool = False) -> list[dict]:
        """`task`'s one split as collated batches naming the task (so the model picks its head), at most
        `limit` (0: all); in file order, or by length with `bucket`. For the passes that run a model over
        real data outside training: calibration, head importance, export checks."""
        features = task.features[next(iter(task.features))]
        groups = _batches(features, batch_size, bucket)
        groups = groups[:limit] if limit else groups
        return [{**self.collate([features[i] for i in group]), "task": self.name} for group in groups]

    def evaluate(self, task: TaskData, batch_size: int = 64, bucket: bool = True) -> dict[str, float]:
        """Metrics of the model on `task`'s one split; `bucket` batches by length (same scores, less padding)."""
        split = next(iter(task.features))
        return evaluate_task(self.model, task, split, self.collate, batch_size, bucket=bucket)

    def predict_examples(self, examples: list[Any], bf16: bool = False) -> tuple[list[Any], list[Any]]:
        """Predictions and logits for examples built in memory (a service's requests, a demo's sentences),
        in one forward: what `write_predictions` says of the same examples read from a file."""
        features = encode(examples, self.tokenizer, self.config.task_kind, None, max_length=self.config.max_length)
        logits = task_logits(self.model, self.name, features, self.collate, batch_size=max(len(features), 1),
                             bf16=bf16, bucket=False)
        task = TaskData(self.name, self.config, self.labels, {"memory": examples}, {"memory": features}, {"memory": 0})
        return list(self.config.task_kind.decode(task, "memory", logits)), logits

    def write_predictions(self, task: TaskData, output: Path, batch_size: int = 64, bucket: bool = True) -> int:
        """One JSON line per example, in the file's order whatever `bucket` (batching by length) does."""
        split = next(iter(task.features))
        predictions = task_predictions(self.model, task, split, self.collate, batch_size, bucket=bucket)
        with atomic_write(output) as handle:
            for example, prediction in zip(task.examples[split], predictions, strict=True):
                record = {"source": example.source, "prediction": prediction}
                if example.id is not None:
                    record["id"] = example.id
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return len(predictions)


def _onnx_session(folder: str | os.PathLike, task: str | None, device: str) -> Session:
    from ..inference.onnx_runtime import OnnxModel, OnnxTaskModel, resolve_export

    if device not in ("auto", "cpu"):
        raise ConfigError(f"the onnx backend runs on the CPU, not on {device}; use --device cpu or --backend torch")
    graph = OnnxModel(resolve_export(folder, "task", task))
    model = OnnxTaskModel(graph)
    name = task or model.default_task
    if name not in model.heads:
        raise ConfigError(f"{graph.path}: no task {name!r}; the export holds the head {list(model.heads)}")
    head = model.head_config
    config = TaskConfig.from_saved(head.kind, head, model.task_options[name])
    labels = LabelSet(head.labels) if head.labels else None
    if graph.tokenizer_dir is None or not graph.tokenizer_dir.is_dir():
        raise ConfigError(f"{graph.path.with_suffix('.json')}: names no tokenizer folder that exists "
                          f"({graph.info.tokenizer!r}); re-export the model")
    return Session(model, load_tokenizer(graph.tokenizer_dir), name, config, labels)  # type: ignore[arg-type]


def _labels_of(example: Any) -> set[str]:
    label = example.label
    if isinstance(label, list):
        return set(label)
    return {label}


BACKENDS = ("torch", "onnx")


def load_for_inference(folder: str | os.PathLike, task: str | None = None, device: str = "auto",
                       backend: str = "torch") -> Session:
    """The model in `folder` with task `task` (default its first) on `device` (auto: CUDA when present, else
    the CPU), its tokenizer and how it read data.

    `backend="onnx"` runs an exported graph in onnxruntime on the CPU instead (`folder`: an export, or a
    fine-tuned model folder exported into its cache on first use; see `inference.onnx_runtime`); the
    session's model is then an `OnnxTaskModel`, which `task_logits` calls as it calls a TaskModel."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "onnx":
        return _onnx_session(folder, task, device)
    folder = Path(folder)
    target = resolve_device(device)  # a device that is not present fails before the weights are read
    model = TaskModel.from_pretrained(folder).eval().to(target)
    name = task or model.default_task
    if name not in model.heads:
        raise ConfigError(f"{folder}: no task {name!r}; the model has {list(model.heads)}")
    head = model.head_configs[name]
    config = TaskConfig.from_saved(head.kind, head, model.task_options.get(name, {}))
    labels = LabelSet(head.labels) if head.labels else None
    tokenizer = load_tokenizer(tokenizer_folder(folder, model.base_path))
    return Session(model, tokenizer, name, config, labels)
