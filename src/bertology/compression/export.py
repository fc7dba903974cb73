"""ONNX export of our models, checked against torch before anyone relies on the file.

`export_onnx(model, out_path)` writes one `.onnx` graph and a JSON sidecar beside it (`<stem>.json`) that
says how to feed it: the family, what was exported (the bare encoder, one task head of a `TaskModel`, or a
masked-LM model), the graph's input and output names, the opset, the tokenizer folder it needs and, for a
task, the head and data options `evaluate`/`predict` read files with. `inference.onnx_runtime` loads it.

What is exported:
- every family's bare encoder (BERT, ALBERT, RoBERTa, ChineseBERT, AMBERT): `last_hidden_state`, and
  `pooler_output` when the encoder has a pooler (AMBERT also `coarse_last_hidden_state`);
- a `TaskModel` with any head kind (classification, multi-label, regression, tagging, extractive QA,
  multiple choice; AMBERT's two-view heads), one task per graph: `logits`, as `task_logits` reads them
  (models with adapters or LoRA go through the same path but are not covered by the tests yet);
- a masked-LM model (`Family.masked_lm_class`): `logits` over the vocabulary at every position.

Inputs are named as our collators name them (`input_ids`, `attention_mask`, `token_type_ids`, then the
family's `token_inputs`: ChineseBERT's `pinyin_ids`, AMBERT's coarse sequence), all int64, with dynamic
batch and sequence axes (and choices, for multiple choice). The graph runs the padded path: packing real
tokens needs host reads of the mask, which a recorded graph would freeze (`models.attention.exporting`).
Outputs at real positions equal torch's; at padded positions they hold values nobody should read.

Why the TorchScript exporter (`dynamo=False`): the dynamo exporter fails on the data-dependent code of the
eager path (the packing decision), while tracing takes the export-aware padded path.

What cannot be exported, refused with an error naming the module:
- torch-quantized modules (`torch.ao` dynamic or static int8 layers): export the float model and quantize
  the ONNX graph (`compression.onnx_quantization`);
- weights that are not float32 (bf16/fp16): the check against torch is fp32;
- a model that is not on the CPU;
- attention maps, hidden states of every layer and frozen-encoder `cached` features are not outputs.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import BertologyError, ConfigError
from ..utils.io import atomic_path, atomic_write, translate_os_errors

logger = logging.getLogger("bertology")

#: bumped when the sidecar changes shape, so a reader can refuse what it does not know
SIDECAR_FORMAT = 1
DEFAULT_OPSET = 17
#: fp32 agreement asked of the exported graph, absolute, on the outputs the paths read
DEFAULT_TOLERANCE = 1e-4
EXTRA_HINT = "pip install 'bertology[export]'"

__all__ = ["DEFAULT_OPSET", "DEFAULT_TOLERANCE", "ExportInfo", "ExportMismatchError", "MissingExtra", "check_onnx",
           "encoder_of", "export_onnx", "random_inputs", "read_sidecar", "require", "sidecar_path", "write_sidecar"]


class MissingExtra(BertologyError, ImportError):
    """An optional package of the `export` extra is not installed (the CLI prints it as one line)."""


class ExportMismatchError(ConfigError):
    """The exported graph's outputs differ from torch's beyond the tolerance."""


def require(module: str) -> Any:
    """Import an optional dependency of the export extra, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"ONNX export and inference need the optional package {module.split('.')[0]!r}: "
                          f"{EXTRA_HINT}") from None


# ------------------------------------------------------------------------------------------- sidecar
@dataclass
class ExportInfo:
    """The sidecar: what the graph is and how to feed it."""

    kind: str  #: "encoder", "task" or "masked_lm"
    family: str  #: the config's model_type
    inputs: list[str]
    outputs: list[str]
    opset: int
    onnx_file: str  #: the graph's file name, beside the sidecar
    #: the tokenizer folder, relative to the sidecar's folder when inside it, else absolute; None: unknown
    tokenizer: str | None = None
    task: str | None = None
    #: the head's saved config (kind, labels, layers, pooling, ...) and the task's data options
    head: dict[str, Any] | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    token_inputs: list[str] = field(default_factory=list)
    vocab_size: int | None = None
    max_positions: int | None = None
    hidden_size: int | None = None
    #: the largest difference to torch seen by the check, per output
    check: dict[str, float] = field(default_factory=dict)
    #: set by `quantize_onnx`: mode, format, per_channel, reduce_range
    quantization: dict[str, Any] | None = None
    #: where the weights came from, and a fingerprint of its files (a cache compares it)
    source: str | None = None
    fingerprint: str | None = None
    torch_version: str = torch.__version__
    format: int = SIDECAR_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "sidecar") -> ExportInfo:
        if not isinstance(data, Mapping) or data.get("format") != SIDECAR_FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ConfigError(f"{where}: expected an ONNX export sidecar of format {SIDECAR_FORMAT}, found {found!r}")
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("kind", "family", "inputs", "outputs", "opset", "onnx_file") if k not in data]
        if missing:
            raise ConfigError(f"{where}: the export sidecar lacks {missing}; re-export with `bertology export`")
        return cls(**{k: v for k, v in data.items() if k in known})


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """`model.onnx` -> `model.json`."""
    return Path(onnx_path).with_suffix(".json")


def write_sidecar(info: ExportInfo, onnx_path: str | os.PathLike) -> Path:
    path = sidecar_path(onnx_path)
    with atomic_write(path) as handle:
        json.dump(info.to_dict(), handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return path


def read_sidecar(onnx_path: str | os.PathLike) -> ExportInfo:
    path = sidecar_path(onnx_path)
    if not path.is_file():
        raise ConfigError(f"{path}: missing; an exported graph needs its sidecar (written by `bertology export`)")
    with translate_os_errors(path, "read"):
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return ExportInfo.from_dict(data, str(path))


# ------------------------------------------------------------------------------------------ wrappers
def encoder_of(model: nn.Module) -> nn.Module:
    """The bare encoder inside a TaskModel (`encoder`), a head model (`bert`) or the model itself."""
    from ..finetuning.model import TaskModel

    if isinstance(model, TaskModel):
        return model.encoder
    inner = getattr(model, "bert", None)
    return inner if isinstance(inner, nn.Module) else model


def _kind_of(model: nn.Module) -> str:
    from ..finetuning.model import TaskModel

    if isinstance(model, TaskModel):
        return "task"
    if hasattr(model, "mlm_head") and isinstance(getattr(model, "bert", None), nn.Module):
        if hasattr(model, "sentence_head"):
            raise ConfigError(f"{type(model).__name__}: a pretraining model (MLM and sentence-pair heads) cannot be "
                              "exported; export its encoder or a masked-LM model")
        return "masked_lm"
    if hasattr(model, "token_inputs") and hasattr(model, "config"):
        return "encoder"
    raise ConfigError(f"{type(model).__name__}: not a model bertology can export (expected a family's encoder, a "
                      "TaskModel or a masked-LM model)")


class _Export(nn.Module):
    """Positional inputs in `names` order -> a tuple of outputs, so the tracer sees plain tensors."""

    def __init__(self, model: nn.Module, kind: str, names: Sequence[str], task: str | None) -> None:
        super().__init__()
        self.model = model
        self.kind = kind
        self.names = list(names)
        self.task = task

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = dict(zip(self.names, tensors, strict=True))
        if self.kind == "task":
            return (self.model(**inputs, task=self.task).outputs["logits"],)
        if self.kind == "masked_lm":
            return (self.model(**inputs).logits,)
        out = self.model(**inputs)
        result = [out.last_hidden_state]
        if out.pooler_output is not None:
            result.append(out.pooler_output)
        coarse = getattr(out, "coarse", None)
        if coarse is not None:
            result.append(coarse.last_hidden_state)
        return tuple(result)


def _output_names(kind: str, encoder: nn.Module) -> list[str]:
    if kind != "encoder":
        return ["logits"]
    names = ["last_hidden_state"]
    if getattr(encoder, "pooler", None) is not None:
        names.append("pooler_output")
    if getattr(encoder, "granularities", 1) == 2:
        names.append("coarse_last_hidden_state")
    return names


def _refuse_unexportable(model: nn.Module) -> None:
    """Name the first layer or setting the export cannot take, before the tracer fails obscurely."""
    for name, module in model.named_modules():
        package = type(module).__module__
        if package.startswith(("torch.ao.nn.quantized", "torch.nn.quantized", "torch.ao.nn.intrinsic.quantized")):
            raise ConfigError(f"layer {name or '<model>'} ({type(module).__name__}) is a torch-quantized module, which "
                              "the ONNX export does not take; export the float model and quantize the ONNX graph "
                              "(bertology export --int8 dynamic|static)")
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.device.type != "cpu":
            raise ConfigError(f"{name} is on {tensor.device}; move the model to the CPU (model.cpu()) before export")
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise ConfigError(f"{name} is {tensor.dtype}; the export takes float32 weights (model.float()), and "
                              "quantizes afterwards if asked")


# ----------------------------------------------------------------------------------------- examples
def _vocab_sizes(encoder: nn.Module) -> dict[str, int]:
    """Id ranges of every input the encoder embeds (ids, segments, pinyin letters, coarse words)."""
    fine = getattr(encoder, "fine", encoder)
    config = fine.config
    sizes = {"input_ids": config.vocab_size, "token_type_ids": max(int(getattr(config, "type_vocab_size", 1)), 1)}
    segment = getattr(fine.embeddings, "segment", None)
    if segment is None:
        sizes["token_type_ids"] = 1
    pinyin = getattr(fine.embeddings, "pinyin", None)
    if pinyin is not None:
        sizes["pinyin_ids"] = pinyin.embedding.num_embeddings
    coarse = getattr(encoder, "coarse", None)
    if coarse is not None:
        sizes["coarse_ids"] = coarse.config.vocab_size
        sizes["coarse_token_type_ids"] = sizes["token_type_ids"]
    return sizes


def _max_positions(encoder: nn.Module) -> int:
    fine = getattr(encoder, "fine", encoder)
    return int(getattr(fine, "max_sequence_length", fine.config.max_position_embeddings))


def random_inputs(model: nn.Module, batch: int, seq: int, *, choices: int | None = None, seed: int = 0,
                  padded: bool = True, pinyin_length: int = 8) -> dict[str, torch.Tensor]:
    """A random batch of every input `model` reads, with rows of different lengths when `padded` (the first
    row full): for the export's example and its check. `choices` makes (batch, choices, seq) inputs."""
    encoder = encoder_of(model)
    sizes = _vocab_sizes(encoder)
    pad = int(getattr(getattr(encoder, "fine", encoder).config, "pad_token_id", 0))
    gen = torch.Generator().manual_seed(seed)
    rows = batch * (choices or 1)
    lengths = torch.full((rows,), seq)
    if padded and rows > 1:
        lengths[1:] = torch.randint(1, seq + 1, (rows - 1,), generator=gen)

    def sequence(vocab: int, lengths: torch.Tensor, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        low = min(pad + 1, vocab - 1) if vocab > 2 else 0
        ids = torch.randint(low, max(vocab, low + 1), (rows, seq), generator=gen)
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad if pad < vocab else 0))
        return ids, mask

    ids, mask = sequence(sizes["input_ids"], lengths, seq)
    types = torch.randint(0, sizes["token_type_ids"], (rows, seq), generator=gen) * mask
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    token_inputs = tuple(getattr(encoder, "token_inputs", ()))
    if "pinyin_ids" in token_inputs:
        out["pinyin_ids"] = torch.randint(0, sizes["pinyin_ids"], (rows, seq, pinyin_length), generator=gen) \
            * mask[..., None]
    if "coarse_ids" in token_inputs:
        coarse_seq = max(2, seq - 1)  # a sequence of its own length: its axis must stay dynamic too
        coarse_lengths = torch.clamp(lengths - 1, min=1, max=coarse_seq)
        coarse_ids, coarse_mask = sequence(sizes["coarse_ids"], coarse_lengths, coarse_seq)
        out["coarse_ids"], out["coarse_attention_mask"] = coarse_ids, coarse_mask
        out["coarse_token_type_ids"] = torch.zeros_like(coarse_ids)
    if choices:
        out = {k: v.unflatten(0, (batch, choices)) for k, v in out.items()}
    return out


def _dynamic_axes(example: Mapping[str, torch.Tensor], outputs: Sequence[str], grouped: bool,
                  token_level: bool) -> dict[str, dict[int, str]]:
    lead = ["batch", "choices"] if grouped else ["batch"]
    axes: dict[str, dict[int, str]] = {}
    for name in example:
        seq_name = "coarse_sequence" if name.startswith("coarse_") else "sequence"
        names = [*lead, seq_name]
        axes[name] = dict(enumerate(names))
    for name in outputs:
        if name == "pooler_output":
            axes[name] = {0: "batch"}
        elif name == "coarse_last_hidden_state":
            axes[name] = {0: "batch", 1: "coarse_sequence"}
        elif name == "last_hidden_state" or token_level:
            axes[name] = {0: "batch", 1: "sequence"}
        else:
            axes[name] = dict(enumerate(lead))
    return axes


# ------------------------------------------------------------------------------------------- export
class _ExportState:
    """Puts the model in the state the export needs (eval; no forced packing) and gives its own back: the
    exporter restores only its wrapper's training flag, which would leave a fresh wrapper's model training."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> _ExportState:
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.unpad = [m for m in self.model.modules() if getattr(m, "unpad_inputs", None) is True]
        for m in self.unpad:
            m.unpad_inputs = None  # under export, None runs padded; True would refuse
        self.model.eval()
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.unpad:
            m.unpad_inputs = True
        for m, mode in self.modes:
            m.training = mode


def export_onnx(
    model: nn.Module,
    out_path: str | os.PathLike,
    *,
    task: str | None = None,
    opset: int = DEFAULT_OPSET,
    tokenizer: str | os.PathLike | None = None,
    check: bool = True,
    check_inputs: Iterable[Mapping[str, torch.Tensor]] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    source: str | None = None,
    fingerprint: str | None = None,
) -> ExportInfo:
    """Export `model` (a family's encoder, a `TaskModel` for `task`, default its first, or a masked-LM
    model) to `out_path` (.onnx) and its sidecar, atomically; then check the graph against torch.

    The check runs onnxruntime on random padded batches of other shapes than the export's example (and on
    `check_inputs`, real batches, when given) and raises `ExportMismatchError` naming the output and the
    difference when any output read by our paths differs by more than `tolerance`; the files are then
    removed. The model's training flags are given back as they were.
    """
    require("onnx")
    out_path = Path(out_path)
    if out_path.suffix != ".onnx":
        raise ConfigError(f"{out_path}: the exported graph's file name must end in .onnx")
    kind = _kind_of(model)
    _refuse_unexportable(model)
    encoder = encoder_of(model)
    head_config = None
    grouped = token_level = False
    if kind == "task":
        task = task or model.default_task
        if task not in model.heads:
            raise ConfigError(f"no task {task!r} to export; the model has {list(model.heads)}")
        head = model.heads[task]
        head_config = asdict(model.head_configs[task])
        grouped = head.kind.name == "multiple_choice"
        token_level = not head.sentence_level
    elif task is not None:
        raise ConfigError(f"task={task!r} applies to a TaskModel; this is a {kind.replace('_', '-')} model")
    token_inputs = list(getattr(encoder, "token_inputs", ()))
    names = ["input_ids", "attention_mask", "token_type_ids", *token_inputs]
    outputs = _output_names(kind, encoder)
    example = random_inputs(model, 2, 8, choices=2 if grouped else None, seed=0)
    example = {k: example[k] for k in names}
    with _ExportState(model), torch.no_grad(), warnings.catch_warnings(), atomic_path(out_path) as tmp:
        # the tracer warns of every shape comparison in our input checks: they hold for any shape
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # the TorchScript exporter is deprecated in favour of dynamo's, which cannot take our models (see above)
        warnings.simplefilter("ignore", DeprecationWarning)
        wrapper = _Export(model, kind, names, task).eval()  # after _ExportState has noted the model's modes
        torch.onnx.export(wrapper, tuple(example.values()), str(tmp), input_names=names, output_names=outputs,
                          dynamic_axes=_dynamic_axes(example, outputs, grouped, token_level), opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    graph_inputs = _graph_inputs(out_path)
    fine = getattr(encoder, "fine", encoder)
    info = ExportInfo(
        kind=kind, family=str(getattr(fine.config, "model_type", "bert")), inputs=graph_inputs, outputs=outputs,
        opset=opset, onnx_file=out_path.name, tokenizer=_relative(tokenizer, out_path.parent), task=task,
        head=head_config, task_options=dict(getattr(model, "task_options", {}).get(task, {})) if task else {},
        token_inputs=token_inputs, vocab_size=int(fine.config.vocab_size), max_positions=_max_positions(encoder),
        hidden_size=int(fine.config.hidden_size), source=source, fingerprint=fingerprint,
    )
    if check:
        try:
            info.check = check_onnx(model, out_path, info, task=task, extra=check_inputs, tolerance=tolerance)
        except BaseException:
            for path in (out_path, sidecar_path(out_path)):
                path.unlink(missing_ok=True)
            raise
    write_sidecar(info, out_path)
    return info


def _relative(folder: str | os.PathLike | None, base: Path) -> str | None:
    if folder is None:
        return None
    path = Path(folder).absolute()
    try:
        return str(path.relative_to(base.absolute()))
    except ValueError:
        return str(path)


def _graph_inputs(path: Path) -> list[str]:
    """The inputs the graph kept: the exporter drops one the model never reads (ChineseBERT's segments)."""
    onnx = require("onnx")
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers]


# -------------------------------------------------------------------------------------------- check
def _torch_outputs(model: nn.Module, kind: str, task: str | None, inputs: Mapping[str, torch.Tensor]
                   ) -> dict[str, torch.Tensor]:
    wrapper = _Export(model, kind, list(inputs), task)
    with _ExportState(model), torch.no_grad():
        values = wrapper(*inputs.values())
    return dict(zip(_output_names(kind, encoder_of(model)), values, strict=False))


def _real_positions(name: str, inputs: Mapping[str, torch.Tensor], value: np.ndarray) -> np.ndarray | None:
    """Which entries of an output our paths read: per-token outputs only at real tokens."""
    mask_key = "coarse_attention_mask" if name.startswith("coarse_") else "attention_mask"
    mask = inputs[mask_key].numpy().astype(bool)
    if value.ndim >= mask.ndim and value.shape[:mask.ndim] == mask.shape and name != "pooler_output":
        return mask
    return None


def check_onnx(model: nn.Module, onnx_path: str | os.PathLike, info: ExportInfo, *, task: str | None = None,
               extra: Iterable[Mapping[str, torch.Tensor]] | None = None, tolerance: float = DEFAULT_TOLERANCE,
               ) -> dict[str, float]:
    """Largest |onnx - torch| per output over two random padded batches of shapes the export did not see,
    and `extra` batches; raises ExportMismatchError above `tolerance` (fp32)."""
    ort = require("onnxruntime")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    grouped = bool(info.head and info.head.get("kind") == "multiple_choice")
    limit = min(info.max_positions or 64, 64)
    batches = [random_inputs(model, 3, min(13, limit), choices=3 if grouped else None, seed=1),
               random_inputs(model, 5, min(29, limit), choices=2 if grouped else None, seed=2)]
    batches += [dict(b) for b in (extra or ())]
    worst: dict[str, float] = dict.fromkeys(info.outputs, 0.0)
    for n, batch in enumerate(batches):
        feed = {k: batch[k].to(torch.int64).numpy() for k in info.inputs}
        ours = dict(zip(info.outputs, session.run(info.outputs, feed), strict=True))
        theirs = _torch_outputs(model, info.kind, task, {k: batch[k] for k in
                                                         ["input_ids", "attention_mask", "token_type_ids",
                                                          *info.token_inputs] if k in batch})
        for name in info.outputs:
            expected = theirs[name].float().numpy()
            got = ours[name]
            if got.shape != expected.shape:
                raise ExportMismatchError(f"{Path(onnx_path).name}: output {name!r} of check batch {n} has shape "
                                          f"{got.shape}, torch gives {expected.shape}")
            keep = _real_positions(name, batch, expected)
            diff = np.abs(got - expected)
            if keep is not None:
                diff = diff[keep]
            largest = float(diff.max()) if diff.size else 0.0
            if not np.isfinite(largest):
                largest = float("inf")
            worst[name] = max(worst[name], largest)
            if largest > tolerance:
                raise ExportMismatchError(
                    f"{Path(onnx_path).name}: output {name!r} differs from torch by {largest:.3g} (> {tolerance:g}) "
                    f"on check batch {n} of shape {tuple(batch['input_ids'].shape)}; the graph is not written")
    return worst
