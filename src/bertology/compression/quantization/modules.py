"""Int8 versions of a model's layers, through torch's own quantized modules (the x86/fbgemm kernels, which
use AVX-512 VNNI where the CPU has it).

- dynamic: `nn.Linear` -> torch's dynamic quantized Linear: int8 weights (per output channel), activations
  quantized per batch at run time. No calibration; the usual first step (Q8BERT-size loss).
- static: `nn.Linear` -> quantize, int8 Linear, dequantize, with the input and output ranges fixed by a
  calibration pass over real task batches (torch's observers: a histogram for activations, per-channel
  min/max for weights). Faster than dynamic (no range search per batch), a little less exact.
- embeddings: `nn.Embedding` -> torch's quantized Embedding with one byte per weight and a scale and offset
  per row: the token table of a small English encoder is half its parameters.

Every layer is addressed by its name in the model (`encoder.layers.0.attention.qkv`), so the same names are
written to the saved folder and rebuilt on load (storage.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError

#: the quantized engine for the x86 kernels (VNNI); qnnpack is the fallback on ARM
ENGINE = "x86" if "x86" in torch.backends.quantized.supported_engines else "qnnpack"


@contextmanager
def quiet() -> Iterator[None]:
    """torch 2.13 marks torch.ao.quantization deprecated (moving to torchao) but it is what ships with torch;
    silence that warning, not others."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
        warnings.filterwarnings("ignore", message=".*Please use quant_min and quant_max.*")
        previous = torch.backends.quantized.engine
        torch.backends.quantized.engine = ENGINE
        try:
            yield
        finally:
            torch.backends.quantized.engine = previous


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (model.get_submodule(path) if path else model), leaf


def replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, leaf = _parent(model, name)
    setattr(parent, leaf, module)


def linear_names(model: nn.Module, skip: Iterable[str] = ()) -> list[str]:
    """Every plain `nn.Linear` in `model` (by name), except under the `skip` prefixes."""
    skip = tuple(skip)
    return [n for n, m in model.named_modules() if type(m) is nn.Linear and not n.startswith(skip)]


def _check_linear(model: nn.Module, name: str) -> nn.Linear:
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise ConfigError(f"the model has no layer {name!r} to quantize") from None
    if type(module) is not nn.Linear:
        raise ConfigError(f"layer {name!r} is a {type(module).__name__}; int8 linear quantization takes nn.Linear "
                          "layers only")
    return module


# --------------------------------------------------------------------------------------------- dynamic
def dynamic_int8(model: nn.Module, names: Iterable[str]) -> list[str]:
    """Replace the named Linear layers by dynamic int8 ones (per-channel weights), in place."""
    import torch.ao.nn.quantized.dynamic as nnqd
    from torch.ao.quantization import per_channel_dynamic_qconfig

    names = list(names)
    with quiet():
        for name in names:
            linear = _check_linear(model, name)
            linear.qconfig = per_channel_dynamic_qconfig
            replace(model, name, nnqd.Linear.from_float(linear))
    return names


def empty_dynamic(in_features: int, out_features: int) -> nn.Module:
    """A dynamic int8 Linear of this shape, to load saved weights into."""
    import torch.ao.nn.quantized.dynamic as nnqd

    with quiet():
        return nnqd.Linear(in_features, out_features, dtype=torch.qint8)


# ---------------------------------------------------------------------------------------------- static
class StaticInt8Linear(nn.Module):
    """quantize (calibrated input range) -> int8 Linear (calibrated output range) -> dequantize: a drop-in
    for `nn.Linear` whose inputs and outputs stay float, so the rest of the model is unchanged."""

    def __init__(self, quant: nn.Module, linear: nn.Module) -> None:
        super().__init__()
        from torch.ao.nn.quantized import DeQuantize

        self.quant = quant
        self.linear = linear
        self.dequant = DeQuantize()

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.linear(self.quant(x.float())))

    @classmethod
    def empty(cls, in_features: int, out_features: int) -> StaticInt8Linear:
        """This shape with placeholder ranges, to load saved weights and ranges into."""
        import torch.ao.nn.quantized as nnq

        with quiet():
            return cls(nnq.Quantize(1.0, 0, torch.quint8), nnq.Linear(in_features, out_features, dtype=torch.qint8))


def has_vnni() -> bool:
    """Whether the CPU multiplies int8 with VNNI (vpdpbusd), which cannot saturate, unlike the older
    vpmaddubsw path that torch's default x86 settings guard against by using 7-bit activations."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def static_qconfig() -> Any:
    """torch's x86 static settings (histogram observer on activations, per-channel weights), with the full
    8-bit activation range where VNNI makes it safe: 7-bit activations (reduce_range) cost accuracy."""
    from torch.ao.quantization import HistogramObserver, QConfig, default_per_channel_weight_observer

    activation = HistogramObserver.with_args(reduce_range=ENGINE == "x86" and not has_vnni())
    return QConfig(activation=activation, weight=default_per_channel_weight_observer)


def static_int8(model: nn.Module, names: Iterable[str], calibrate: Callable[[nn.Module], Any]) -> list[str]:
    """Replace the named Linear layers by static int8 ones, in place. `calibrate(model)` runs the model on
    real batches while torch's observers record each layer's input and output ranges."""
    from torch.ao.quantization import QuantWrapper, convert, prepare

    names = list(names)
    with quiet():
        qconfig = static_qconfig()
        wrappers = {}
        for name in names:
            wrapper = QuantWrapper(_check_linear(model, name))
            wrapper.qconfig = qconfig
            replace(model, name, wrapper)
            wrappers[name] = wrapper
        for wrapper in wrappers.values():
            prepare(wrapper, inplace=True)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            calibrate(model)
        model.train(was_training)
        for name, wrapper in wrappers.items():
            convert(wrapper, inplace=True)
            replace(model, name, StaticInt8Linear(wrapper.quant, wrapper.module))
    return names


# ------------------------------------------------------------------------------------------ embeddings
def embedding_names(model: nn.Module) -> list[str]:
    """The token tables worth quantizing: each `embeddings.word` (the vocabulary-sized table)."""
    return [n for n, m in model.named_modules() if type(m) is nn.Embedding and n.endswith("embeddings.word")]


def int8_embeddings(model: nn.Module, names: Iterable[str]) -> list[str]:
    """Replace the named embedding tables by 8-bit ones (a scale and offset per row), in place. A table tied
    to an output layer (a masked-LM decoder) is refused: the decoder would lose its weights."""
    import torch.ao.nn.quantized as nnq
    from torch.ao.quantization import float_qparams_weight_only_qconfig

    names = list(names)
    tied = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    with quiet():
        for name in names:
            table = model.get_submodule(name)
            if type(table) is not nn.Embedding:
                raise ConfigError(f"layer {name!r} is a {type(table).__name__}, not an nn.Embedding")
            if id(table.weight) in tied:
                raise ConfigError(f"embedding {name!r} is tied to an output layer (a masked-LM decoder): "
                                  "quantize a task model or the bare encoder instead")
            table.qconfig = float_qparams_weight_only_qconfig
            replace(model, name, nnq.Embedding.from_float(table))
    return names


def empty_embedding(num: int, dim: int) -> nn.Module:
    import torch.ao.nn.quantized as nnq

    with quiet():
        return nnq.Embedding(num, dim, dtype=torch.quint8)


__all__ = ["ENGINE", "StaticInt8Linear", "dynamic_int8", "embedding_names", "empty_dynamic", "empty_embedding",
           "int8_embeddings", "linear_names", "quiet", "replace", "static_int8"]
