"""Exported graphs in onnxruntime, behind the call shapes our torch inference paths already use.

`OnnxTaskModel` answers `model(**batch, task=...)` with a `StepOutput` whose `logits` are the torch model's,
so `finetuning.predict.task_logits` (and with it `evaluate`, `predict`, decoding and metrics) runs it
unchanged; `OnnxEncoder` answers `model(input_ids, mask, types)` with a `last_hidden_state`, so
`SentenceEncoder` (`bertology embed`) runs it unchanged. Both run on the CPU execution provider.

What `--backend onnx` accepts as MODEL, and where the graph comes from (`resolve_export`):
- an `.onnx` file with its sidecar (`bertology export` writes `model.onnx` + `model.json`, and
  `model-int8.onnx` + `model-int8.json` with --int8): that graph;
- a folder written by `bertology export`: its `model.onnx`;
- a fine-tuned model folder (task.json) or an encoder folder (config.json): exported on first use into
  bertology's cache (`$BERTOLOGY_CACHE/onnx/<folder>-<hash>/`, `<task>.onnx` or `encoder.onnx`; the model
  folder itself is not touched), checked against torch, and re-exported when the folder's files change
  (the sidecar keeps a fingerprint of them). A cache that cannot be written is an error that says to run
  `bertology export MODEL OUT` and pass OUT instead.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from ..compression.export import ExportInfo, export_onnx, read_sidecar, require, sidecar_path
from ..errors import ConfigError, FileSystemError
from ..training.protocol import StepOutput
from ..utils.io import cache_dir

__all__ = ["CACHE_FOLDER", "cache_for", "OnnxEncoder", "OnnxModel", "OnnxTaskModel", "feed_for_ids", "onnx_sentence_encoder",
           "resolve_export"]

#: the on-the-fly export's cache inside a model folder
CACHE_FOLDER = "onnx"
EXPORT_FILE = "model.onnx"
PINYIN_LENGTH = 8


class OnnxModel:
    """An exported graph, its sidecar, and an `onnxruntime.InferenceSession` on the CPU.

    `threads`: onnxruntime's intra-op threads (None: torch's current count, so a report's torch and ORT
    variants run under the same ones)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        ort = require("onnxruntime")
        path = Path(path)
        if path.is_dir():
            path = path / EXPORT_FILE
        if not path.is_file():
            raise ConfigError(f"{path}: no exported ONNX graph there (write one with `bertology export`)")
        self.path = path
        self.info: ExportInfo = read_sidecar(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ConfigError(f"{path}: onnxruntime cannot load the graph ({exc})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    @property
    def tokenizer_dir(self) -> Path | None:
        """The tokenizer folder the sidecar names (relative to the graph's folder, or absolute)."""
        if not self.info.tokenizer:
            return None
        return (self.path.parent / self.info.tokenizer).resolve()

    def run(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Outputs by name for a batch of the graph's inputs (tensors or arrays); extra keys are ignored."""
        missing = [k for k in self.inputs if k not in batch]
        if missing:
            raise ConfigError(f"{self.path.name}: the batch lacks the graph inputs {missing} (it has {sorted(batch)})")
        feed = {k: _int64(batch[k]) for k in self.inputs}
        return dict(zip(self.outputs, self.session.run(self.outputs, feed), strict=True))

    def speed_call(self) -> Any:
        """`ids -> outputs`, the callable `compression.report.measure_speed` times."""
        return lambda ids: self.run(feed_for_ids(ids, self.info))


def _int64(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value, dtype=np.int64)


def feed_for_ids(ids: torch.Tensor, info: ExportInfo) -> dict[str, torch.Tensor]:
    """A full batch from (batch, seq) ids, for timing: no padding, one segment, zero pinyin letters, the ids
    again as AMBERT's coarse words, and one choice per row for a multiple-choice head."""
    mask = torch.ones_like(ids)
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    if "pinyin_ids" in info.token_inputs:
        batch["pinyin_ids"] = torch.zeros(*ids.shape, PINYIN_LENGTH, dtype=torch.long)
    if "coarse_ids" in info.token_inputs:
        batch.update(coarse_ids=ids % 2 + 4, coarse_attention_mask=mask, coarse_token_type_ids=torch.zeros_like(ids))
    if info.head and info.head.get("kind") == "multiple_choice":
        batch = {k: v.unsqueeze(1) for k, v in batch.items()}
    return batch


@dataclass
class _HeadView:
    """What `task_logits` reads of a head: its task kind (for `target_keys`) and level."""

    kind: Any
    sentence_level: bool
    two_views: bool = False


class OnnxTaskModel:
    """A `TaskModel`'s exported head, called as the TaskModel is: `model(**batch, task=name)`.

    It has one task (the exported one), runs on the CPU, and ignores `train()`: a graph does not train."""

    training = False

    def __init__(self, model: OnnxModel) -> None:
        from ..finetuning.model import HeadConfig
        from ..finetuning.tasks import task_kind

        info = model.info
        if info.kind != "task" or not info.task or not info.head:
            raise ConfigError(f"{model.path}: holds a {info.kind} graph, not a fine-tuned task head; evaluate and "
                              "predict need a TaskModel export")
        self.onnx = model
        self.head_config = HeadConfig(**info.head)
        kind = task_kind(self.head_config.kind)
        self.heads = {info.task: _HeadView(kind, kind.sentence_level)}
        self.head_configs = {info.task: self.head_config}
        self.task_options = {info.task: dict(info.task_options)}
        #: what `Session.collate` reads: the family's extra inputs
        self.encoder = SimpleNamespace(token_inputs=tuple(info.token_inputs))
        self.device = torch.device("cpu")

    @property
    def default_task(self) -> str:
        return next(iter(self.heads))

    def eval(self) -> OnnxTaskModel:
        return self

    def train(self, mode: bool = True) -> OnnxTaskModel:
        return self

    def to(self, device: Any) -> OnnxTaskModel:
        if torch.device(device).type != "cpu":
            raise ConfigError(f"the onnx backend runs on the CPU, not on {device}; use --device cpu or --backend torch")
        return self

    def __call__(self, task: str | None = None, **batch: Any) -> StepOutput:
        task = task or self.default_task
        if task not in self.heads:
            raise KeyError(f"unknown task {task!r}; this export has the head {list(self.heads)}")
        logits = self.onnx.run(batch)["logits"]
        return StepOutput({}, {}, {"logits": torch.from_numpy(logits)})


class OnnxEncoder:
    """A bare encoder's export, called as `SentenceEncoder` calls a `BertModel`."""

    def __init__(self, model: OnnxModel) -> None:
        info = model.info
        if info.kind != "encoder":
            raise ConfigError(f"{model.path}: holds a {info.kind} graph; embedding needs a bare encoder export")
        if info.token_inputs:
            raise ConfigError(f"{model.path}: a {info.family} encoder reads {info.token_inputs} besides the token ids, "
                              "which `bertology embed` does not produce")
        self.onnx = model
        self.config = SimpleNamespace(hidden_size=info.hidden_size, max_position_embeddings=info.max_positions,
                                      vocab_size=info.vocab_size, model_type=info.family)
        self.training = False

    def eval(self) -> OnnxEncoder:
        return self

    def to(self, device: Any) -> OnnxEncoder:
        if torch.device(device).type != "cpu":
            raise ConfigError(f"the onnx backend runs on the CPU, not on {device}; use --device cpu or --backend torch")
        return self

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 token_type_ids: torch.Tensor | None = None, **_: Any) -> SimpleNamespace:
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        out = self.onnx.run({"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types})
        return SimpleNamespace(last_hidden_state=torch.from_numpy(out["last_hidden_state"]),
                               pooler_output=torch.from_numpy(out["pooler_output"]) if "pooler_output" in out else None)


# --------------------------------------------------------------------------------------- resolving
def _fingerprint(folder: Path) -> str:
    """Names, sizes and modification times of the folder's files: changes when the weights are rewritten,
    without reading them."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file():
            continue
        stat = path.stat()
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def resolve_export(model: str | os.PathLike, kind: str, task: str | None = None) -> Path:
    """The .onnx file to load for MODEL (see the module docstring), exporting into the cache when needed.
    `kind`: "task" (evaluate, predict) or "encoder" (embed)."""
    path = Path(model)
    if path.is_file() and path.suffix == ".onnx":
        return path
    if not path.is_dir():
        raise ConfigError(f"{path}: no such model folder or .onnx file")
    if (path / EXPORT_FILE).is_file() and sidecar_path(path / EXPORT_FILE).is_file():
        return path / EXPORT_FILE
    if kind == "task":
        if not (path / "task.json").is_file():
            raise ConfigError(f"{path}: neither a fine-tuned model folder (task.json) nor an export folder "
                              f"({EXPORT_FILE} and its sidecar)")
    elif not (path / "config.json").is_file():
        raise ConfigError(f"{path}: neither an encoder folder (config.json) nor an export folder ({EXPORT_FILE})")
    return _cached_export(path, kind, task)


def cache_for(folder: Path) -> Path:
    """Where exports made on the fly for `folder` live: bertology's cache, one sub-folder per model folder
    (the model folder itself is left as it was, so its size and contents stay the user's)."""
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / CACHE_FOLDER / f"{folder.name}-{key}"


def _cached_export(folder: Path, kind: str, task: str | None) -> Path:
    fingerprint = _fingerprint(folder)
    if kind == "task":
        from ..finetuning.model import TaskModel, tokenizer_folder

        model = TaskModel.from_pretrained(folder).eval()
        task = task or model.default_task
        if task not in model.heads:
            raise ConfigError(f"{folder}: no task {task!r}; the model has {list(model.heads)}")
        target = cache_for(folder) / f"{task}.onnx"
        tokenizer = tokenizer_folder(folder, model.base_path)
    else:
        target = cache_for(folder) / "encoder.onnx"
        model = None
        tokenizer = folder
    if target.is_file() and sidecar_path(target).is_file():
        try:
            if read_sidecar(target).fingerprint == fingerprint:
                return target
        except ConfigError:
            pass  # a damaged or older sidecar: export again
    if model is None:
        from ..models.bert import BertModel

        model = BertModel.from_pretrained(folder).eval()  # what the torch path of `embed` loads
    try:
        export_onnx(model, target, task=task if kind == "task" else None, tokenizer=tokenizer.absolute(),
                    source=str(folder.absolute()), fingerprint=fingerprint)
    except (FileSystemError, PermissionError) as exc:
        raise ConfigError(f"cannot write the ONNX cache {target.parent} ({exc}); export elsewhere with "
                          f"`bertology export {folder} OUT` and pass OUT as the model") from None
    return target


def onnx_sentence_encoder(model: str | os.PathLike, threads: int | None = None, **options: Any) -> Any:
    """A `SentenceEncoder` over the encoder export of `model` (an export, or an encoder folder or registry
    alias exported into its cache on first use); `options` are SentenceEncoder's."""
    from ..assets import model_path
    from ..tokenization import Tokenizer
    from .sentence_encoder import SentenceEncoder

    if options.get("bf16"):
        raise ConfigError("--bf16 applies to the torch backend; an ONNX graph runs in float32 (or int8 once quantized)")
    device = options.get("device", "cpu")
    if torch.device(device).type != "cpu":
        raise ConfigError(f"the onnx backend runs on the CPU, not on {device}; use --device cpu or --backend torch")
    source = Path(model) if Path(model).exists() else Path(model_path(str(model)))
    graph = OnnxModel(resolve_export(source, "encoder"), threads)
    if graph.tokenizer_dir is None or not graph.tokenizer_dir.is_dir():
        raise ConfigError(f"{graph.path.with_suffix('.json')}: names no tokenizer folder that exists "
                          f"({graph.info.tokenizer!r}); re-export the model")
    return SentenceEncoder(OnnxEncoder(graph), Tokenizer.from_pretrained(graph.tokenizer_dir), **options)
