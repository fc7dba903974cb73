"""A quantized model's folder: config.json, quantization.json and model.int8.safetensors.

Hugging Face's layout has no place for int8 weights, and torch's quantized state dicts hold quantized
tensors and packed tuples that safetensors cannot store and pickle must not load. So the folder stores each
quantized tensor as its integers plus scales and zero points, and quantization.json records which layers
are int8 (and how) and what every stored entry was; loading builds the fp32 model from config.json, swaps in
empty int8 layers of the right shapes and loads the state dict into them. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ...errors import CheckpointError
from ...utils.io import atomic_path, atomic_write
from .modules import StaticInt8Linear, empty_dynamic, empty_embedding, quiet, replace

QUANTIZATION_FILE = "quantization.json"
WEIGHTS_FILE = "model.int8.safetensors"
FORMAT_VERSION = 1
#: layer kinds a quantization.json lists, and how to build an empty one from the fp32 layer it replaces
KINDS = ("dynamic", "static", "embeddings")


def _encode(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    entries: dict[str, Any] = {}

    def add(name: str, value: Any) -> dict[str, Any]:
        if isinstance(value, (tuple, list)):
            return {"kind": "tuple", "items": [add(f"{name}.{i}", v) for i, v in enumerate(value)]}
        if isinstance(value, torch.dtype):
            return {"kind": "dtype", "value": str(value).removeprefix("torch.")}
        if value is None:
            return {"kind": "none"}
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"cannot store state entry {name!r} of type {type(value).__name__}")
        if not value.is_quantized:
            tensors[name] = value.detach().cpu().contiguous().clone()
            return {"kind": "tensor", "key": name}
        tensors[name] = value.int_repr().contiguous().clone()
        info: dict[str, Any] = {"kind": "quantized", "key": name, "dtype": str(value.dtype).removeprefix("torch.")}
        if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            info.update(scheme="tensor", scale=value.q_scale(), zero_point=value.q_zero_point())
        else:
            tensors[name + ".scale"] = value.q_per_channel_scales().contiguous().clone()
            tensors[name + ".zero_point"] = value.q_per_channel_zero_points().contiguous().clone()
            info.update(scheme="channel", axis=value.q_per_channel_axis())
        return info

    for name, value in state.items():
        entries[name] = add(name, value)
    return tensors, entries


def _decode(info: dict[str, Any], tensors: dict[str, torch.Tensor], source: str) -> Any:
    kind = info.get("kind")
    try:
        if kind == "tuple":
            return tuple(_decode(item, tensors, source) for item in info["items"])
        if kind == "dtype":
            return getattr(torch, info["value"])
        if kind == "none":
            return None
        if kind == "tensor":
            return tensors[info["key"]]
        if kind == "quantized":
            ints, dtype = tensors[info["key"]], getattr(torch, info["dtype"])
            if info["scheme"] == "tensor":
                return torch._make_per_tensor_quantized_tensor(ints, info["scale"], info["zero_point"])
            scales, zeros = tensors[info["key"] + ".scale"], tensors[info["key"] + ".zero_point"]
            tensor = torch._make_per_channel_quantized_tensor(ints, scales, zeros, info["axis"])
            if tensor.dtype != dtype:
                raise CheckpointError(f"{source}: tensor {info['key']!r} is {tensor.dtype}, expected {dtype}")
            return tensor
    except KeyError as exc:
        raise CheckpointError(f"{source}: tensor {exc} is missing; the file is damaged") from None
    raise CheckpointError(f"{source}: unknown stored entry kind {kind!r}")


def save_quantized(model: nn.Module, folder: str | os.PathLike, layers: dict[str, list[str]], method: str,
                   options: dict[str, Any] | None = None) -> Path:
    """Write a quantized encoder (a PreTrainedModel whose `layers` were made int8) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with quiet():
        tensors, entries = _encode(model.state_dict())
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "bertology-int8"})
    model.config.replace(architectures=[type(model).__name__]).save_pretrained(folder)
    meta = {"format_version": FORMAT_VERSION, "method": method, "options": options or {},
            "layers": {k: list(layers.get(k, [])) for k in KINDS}, "entries": entries}
    with atomic_write(folder / QUANTIZATION_FILE) as handle:
        json.dump(meta, handle, indent=1)
    return folder


def read_meta(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / QUANTIZATION_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        version = meta["format_version"]
        meta["layers"], meta["entries"]  # noqa: B018 - both must be there
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable quantization description ({exc})") from None
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version}; this bertology reads {FORMAT_VERSION}")
    return meta


def load_quantized(folder: str | os.PathLike, **_: Any) -> nn.Module:
    """The quantized encoder saved by `save_quantized`: fp32 skeleton from config.json, int8 layers swapped
    in, weights and ranges loaded; in evaluation mode (quantized layers do not train)."""
    from ...models.pretrained import _model_class, drop_untrained_pooler

    folder = Path(folder)
    meta = read_meta(folder)
    cls = _model_class(folder)
    model = cls(cls.config_class.from_pretrained(folder))
    drop_untrained_pooler(model, meta["entries"])  # an encoder saved without a pooler, as `load` builds it
    with quiet():
        for kind in KINDS:
            for name in meta["layers"].get(kind, []):
                try:
                    layer = model.get_submodule(name)
                except AttributeError:
                    raise CheckpointError(f"{folder / QUANTIZATION_FILE}: layer {name!r} is not in the model "
                                          "config.json describes") from None
                if kind == "embeddings":
                    replace(model, name, empty_embedding(layer.num_embeddings, layer.embedding_dim))
                elif kind == "static":
                    replace(model, name, StaticInt8Linear.empty(layer.in_features, layer.out_features))
                else:
                    replace(model, name, empty_dynamic(layer.in_features, layer.out_features))
        source = str(folder / WEIGHTS_FILE)
        try:
            tensors = load_file(source)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{source}: cannot be read ({exc})") from None
        state = OrderedDict((name, _decode(info, tensors, source)) for name, info in meta["entries"].items())
        # torch's quantized layers read their format version from the state dict's metadata
        state._metadata = getattr(model.state_dict(), "_metadata", None)  # type: ignore[attr-defined]
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{source}: does not fit the model ({str(exc).splitlines()[0]})") from None
    model.quantization = {"method": meta["method"], "layers": meta["layers"], "options": meta.get("options", {})}
    return model.eval()


def is_quantized_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / QUANTIZATION_FILE).is_file()


__all__ = ["QUANTIZATION_FILE", "WEIGHTS_FILE", "is_quantized_folder", "load_quantized", "read_meta",
           "save_quantized"]
