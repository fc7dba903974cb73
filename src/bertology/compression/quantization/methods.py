"""Quantization methods by name (`QUANTIZERS`): what `bertology quantize --method` and a config pick.

Each takes an encoder (a TaskModel's, or a bare one), makes some of its layers int8 in place and returns
them by kind; `quantize_encoder` records that on the encoder, so `save_pretrained` writes the int8 folder
(storage.py) and `bertology.load` reads it back. A new method is one function registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ...errors import ConfigError
from ...utils.registry import Registry
from ...utils.typed import Where, as_where
from .modules import dynamic_int8, embedding_names, int8_embeddings, linear_names, static_int8

Calibrate = Callable[[nn.Module], Any]


@dataclass
class QuantizeOptions:
    #: also store the token embeddings in 8 bits (a scale and offset per row)
    embeddings: bool = False
    #: layer-name prefixes kept in fp32 (e.g. ["pooler"])
    skip: list[str] = field(default_factory=list)
    #: static: calibration batches of real task data run through the model
    calibration_batches: int = 16


Method = Callable[[nn.Module, QuantizeOptions, "Calibrate | None"], dict[str, list[str]]]
QUANTIZERS: Registry[Method] = Registry("quantization method")


def _with_embeddings(encoder: nn.Module, options: QuantizeOptions, layers: dict[str, list[str]]
                     ) -> dict[str, list[str]]:
    if options.embeddings:
        layers["embeddings"] = int8_embeddings(encoder, embedding_names(encoder))
    return layers


@QUANTIZERS.register("dynamic", options=QuantizeOptions, needs="nothing")
def dynamic(encoder: nn.Module, options: QuantizeOptions, calibrate: Calibrate | None = None) -> dict[str, list[str]]:
    """int8 weights, inputs quantized per batch at run time."""
    layers = {"dynamic": dynamic_int8(encoder, linear_names(encoder, options.skip))}
    return _with_embeddings(encoder, options, layers)


@QUANTIZERS.register("static", options=QuantizeOptions, needs="calibration")
def static(encoder: nn.Module, options: QuantizeOptions, calibrate: Calibrate | None = None) -> dict[str, list[str]]:
    """int8 weights and input/output ranges fixed by a calibration pass over real batches."""
    if calibrate is None:
        raise ConfigError("static quantization needs calibration data (a sample of the task's texts)")
    layers = {"static": static_int8(encoder, linear_names(encoder, options.skip), calibrate)}
    return _with_embeddings(encoder, options, layers)


@QUANTIZERS.register("qat", options=QuantizeOptions, needs="training")
def qat(encoder: nn.Module, options: QuantizeOptions, calibrate: Calibrate | None = None) -> dict[str, list[str]]:
    """The int8 model after quantization-aware training (qat.py): its weights were trained under 8-bit
    rounding; served with dynamic int8 layers."""
    return dynamic(encoder, options, calibrate)


@QUANTIZERS.register("embeddings", options=QuantizeOptions, needs="nothing")
def embeddings_only(encoder: nn.Module, options: QuantizeOptions, calibrate: Calibrate | None = None
                    ) -> dict[str, list[str]]:
    """Only the token embeddings in 8 bits: the size halves for a small English encoder, speed unchanged."""
    return {"embeddings": int8_embeddings(encoder, embedding_names(encoder))}


def quantize_encoder(encoder: nn.Module, method: str, options: QuantizeOptions | None = None,
                     calibrate: Calibrate | None = None, where: str | Where = "") -> dict[str, list[str]]:
    """Apply a registered method to `encoder` in place; it then saves as an int8 folder."""
    entry = QUANTIZERS.entry(method, as_where(where))
    options = options or QuantizeOptions()
    if getattr(encoder, "quantization", None):
        raise ConfigError(f"{as_where(where)}the model is already quantized ({encoder.quantization['method']})")
    layers = entry.obj(encoder, options, calibrate)
    encoder.eval()
    encoder.quantization = {"method": method, "layers": layers,
                            "options": {"embeddings": options.embeddings, "skip": list(options.skip)}}
    return layers


__all__ = ["QUANTIZERS", "QuantizeOptions", "quantize_encoder"]
