"""int8 ONNX graphs through onnxruntime.quantization: dynamic (no data) or static (calibrated on real batches).

The defaults are the fastest settings measured on an AVX-512 VNNI CPU (6-layer, 384-wide BERT, batch 32 x
128, 2 threads; the numbers are in the export report of our issue "Quantization, pruning and export"):
- dynamic: int8 weights, per-tensor, no reduce_range, only MatMul/Gemm quantized (QOperator
  `DynamicQuantizeMatMul`/`MatMulInteger` with u8 activations x s8 weights, which VNNI runs natively;
  `reduce_range` only matters on CPUs without VNNI, where u8 x s8 products can saturate);
- static: the QOperator format (QLinearMatMul) with u8 activations and s8 weights, MatMul/Gemm only:
  it ran 5-15% faster than QDQ here, and QDQ lost more (cosine 0.999 against 0.9999); quantizing
  Softmax, LayerNorm and the residual Adds as well costs accuracy and gains little.
- measured (tokens/s, noisy shared machine): torch fp32 ~2,350; ORT fp32 ~2,000-2,900; dynamic ~5,100
  (per-channel ~4,700, reduce_range ~4,700); static QOperator ~5,250, QDQ ~4,550-4,870.
The graph is first put through `quant_pre_process` (shape inference and ORT's graph optimizations) when
that succeeds, since quantizing an unoptimized graph leaves more float ops between the int8 ones.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..utils.io import atomic_path
from .export import read_sidecar, require, sidecar_path, write_sidecar

logger = logging.getLogger("bertology")

MODES = ("dynamic", "static")
FORMATS = ("qdq", "qoperator")
#: the ops quantized by default, per mode: the matmuls hold nearly all of an encoder's work; dynamic mode also
#: stores the embedding tables (Gather) as int8, which shrinks the file about 2.5x at no measured cost, while
#: static QOperator ran about 10% slower with them
DEFAULT_OPS = {"dynamic": ("MatMul", "Gemm", "Gather"), "static": ("MatMul", "Gemm")}
#: calibration batches read at most (min-max ranges settle within a few batches)
MAX_CALIBRATION_BATCHES = 32

__all__ = ["FORMATS", "MODES", "FeedReader", "quantize_onnx"]


class FeedReader:
    """onnxruntime's CalibrationDataReader over feed dicts (name -> int64 array or tensor), keeping only
    the graph's inputs, so batches straight from our collators can be given."""

    def __init__(self, feeds: Iterable[Mapping[str, Any]], inputs: list[str], limit: int = MAX_CALIBRATION_BATCHES
                 ) -> None:
        self.inputs = inputs
        self.limit = limit
        self._feeds = iter(feeds)
        self._seen = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._seen >= self.limit:
            return None
        feed = next(self._feeds, None)
        if feed is None:
            return None
        missing = [k for k in self.inputs if k not in feed]
        if missing:
            raise ConfigError(f"calibration batch {self._seen} lacks the graph inputs {missing} "
                              f"(it has {sorted(feed)})")
        self._seen += 1
        return {k: np.asarray(_numpy(feed[k]), dtype=np.int64) for k in self.inputs}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:  # pragma: no cover - convenience
        while (item := self.get_next()) is not None:
            yield item

    @property
    def batches(self) -> int:
        return self._seen


def _numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value


def _reader_class() -> type:
    """FeedReader as a subclass of onnxruntime's CalibrationDataReader (imported only when quantizing)."""
    quantization = require("onnxruntime.quantization")
    return type("CalibrationFeeds", (FeedReader, quantization.CalibrationDataReader), {})


def _preprocess(onnx_in: Path, folder: Path) -> Path:
    """Shape inference and graph optimization before quantizing; the input unchanged when it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = folder / "preprocessed.onnx"
    try:
        quant_pre_process(str(onnx_in), str(out), skip_symbolic_shape=False, auto_merge=True)
        return out
    except Exception as exc:  # noqa: BLE001 - an optional step: ORT raises many kinds here
        logger.warning("quantization pre-processing of %s failed (%s); quantizing the graph as exported", onnx_in, exc)
        return onnx_in


def quantize_onnx(
    onnx_in: str | os.PathLike,
    onnx_out: str | os.PathLike,
    mode: str = "dynamic",
    calibration: Iterable[Mapping[str, Any]] | None = None,
    per_channel: bool = False,
    *,
    quant_format: str = "qoperator",
    reduce_range: bool = False,
    op_types: Iterable[str] | None = None,
    preprocess: bool = True,
    max_calibration_batches: int = MAX_CALIBRATION_BATCHES,
) -> dict[str, Any]:
    """Write an int8 copy of the graph `onnx_in` to `onnx_out` (atomically), with its sidecar updated when
    the input has one. `calibration` (static mode): feed dicts of real task batches, e.g. collated
    features; at most `max_calibration_batches` are read. `quant_format` applies to static mode (dynamic
    is always QOperator); `op_types` None: the mode's DEFAULT_OPS. Returns the settings used (also stored in the sidecar's `quantization`)."""
    require("onnx")
    quantization = require("onnxruntime.quantization")
    onnx_in, onnx_out = Path(onnx_in), Path(onnx_out)
    if mode not in MODES:
        raise ConfigError(f"quantization mode must be one of {list(MODES)}, got {mode!r}")
    if quant_format not in FORMATS:
        raise ConfigError(f"quantization format must be one of {list(FORMATS)}, got {quant_format!r}")
    if not onnx_in.is_file():
        raise ConfigError(f"{onnx_in}: no such ONNX file to quantize")
    if onnx_out.suffix != ".onnx":
        raise ConfigError(f"{onnx_out}: the quantized graph's file name must end in .onnx")
    if mode == "static" and calibration is None:
        raise ConfigError("static quantization needs calibration batches (give a task file with --calibration)")
    info = read_sidecar(onnx_in) if sidecar_path(onnx_in).is_file() else None
    if info is not None and info.quantization:
        raise ConfigError(f"{onnx_in}: already quantized ({info.quantization.get('mode')}); quantize the float graph")
    op_types = DEFAULT_OPS[mode] if op_types is None else tuple(op_types)
    settings: dict[str, Any] = {"mode": mode, "format": "qoperator" if mode == "dynamic" else quant_format,
                                "per_channel": per_channel, "reduce_range": reduce_range,
                                "op_types": list(op_types), "weights": "int8",
                                "activations": "uint8"}
    with tempfile.TemporaryDirectory(prefix="bertology-quant-") as scratch:
        source = _preprocess(onnx_in, Path(scratch)) if preprocess else onnx_in
        settings["preprocessed"] = source != onnx_in
        ops = list(op_types)
        with atomic_path(onnx_out) as tmp:
            target = Path(scratch) / "quantized.onnx"
            if mode == "dynamic":
                quantization.quantize_dynamic(source, target, op_types_to_quantize=ops, per_channel=per_channel,
                                              reduce_range=reduce_range, weight_type=quantization.QuantType.QInt8)
            else:
                inputs = info.inputs if info is not None else _inputs_of(source)
                reader = _reader_class()(calibration, inputs, max_calibration_batches)
                fmt = quantization.QuantFormat.QDQ if quant_format == "qdq" else quantization.QuantFormat.QOperator
                quantization.quantize_static(
                    source, target, reader, quant_format=fmt, op_types_to_quantize=ops, per_channel=per_channel,
                    reduce_range=reduce_range, activation_type=quantization.QuantType.QUInt8,
                    weight_type=quantization.QuantType.QInt8,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
                if reader.batches == 0:
                    raise ConfigError("static quantization: the calibration data gave no batch")
                settings["calibration_batches"] = reader.batches
            shutil.copyfile(target, tmp)
    if info is not None:
        info.onnx_file = onnx_out.name
        info.quantization = settings
        if sidecar_path(onnx_out) != sidecar_path(onnx_in) or onnx_out == onnx_in:
            write_sidecar(info, onnx_out)
    return settings


def _inputs_of(path: Path) -> list[str]:
    onnx = require("onnx")
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers]
