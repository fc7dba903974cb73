"""`from_pretrained` / `save_pretrained` for every model family, and `load(folder)` by model_type.

A family supplies its config class, its Hugging Face name map and, for head models, the prefix under
which transformers nests the encoder ("bert."), so checkpoints of one class load into another. `load`
finds the family by model_type in the one family registry (models/family.py).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from .checkpoint import SAFE_WEIGHTS, NameMap, read_weights, write_safetensors
from .config import CONFIG_NAME, BertConfig
from .family import FAMILIES

logger = logging.getLogger("bertology")

M = TypeVar("M", bound="PreTrainedModel")

#: class name -> class, for the `architectures` a config.json names (for `load`)
ARCHITECTURES: dict[str, type[PreTrainedModel]] = {}


def register(model_type: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: make a model class of family `model_type` loadable by the name a config.json gives it.

    The family itself (and so its bare encoder, the fallback) is registered once, with `register_family`.
    """

    def wrap(cls: type[M]) -> type[M]:
        ARCHITECTURES[cls.__name__] = cls
        return cls

    return wrap


def _tied_duplicates(module: nn.Module) -> dict[str, str]:
    """Names in the state dict that alias an earlier tensor (tied decoder, shared layers) -> that name."""
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases


def init_bert_weights(module: nn.Module, std: float, keep: set[int] | None = None) -> None:
    """BERT's initialisation: N(0, std) for matrices, zero biases, unit LayerNorms, a zero padding row.

    Modules owning a parameter whose id is in `keep` (e.g. a decoder tied to trained embeddings) are left alone.
    """
    keep = keep or set()
    # a decoder tied to an embedding table is initialised as that table (padding row included): only its bias
    tables = {id(sub.weight) for sub in module.modules() if isinstance(sub, nn.Embedding)} | keep
    keep_tied = {id(sub) for sub in module.modules() if isinstance(sub, nn.Linear) and id(sub.weight) in tables}
    for sub in module.modules():
        if id(sub) in keep_tied:
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
            continue
        if any(id(p) in keep for p in sub.parameters(recurse=False)):
            continue
        if isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Embedding):
            nn.init.normal_(sub.weight, std=std)
            if sub.padding_idx is not None:
                with torch.no_grad():
                    sub.weight[sub.padding_idx].zero_()
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


class PreTrainedModel(nn.Module):
    config_class: ClassVar[type[BertConfig]] = BertConfig
    #: where transformers nests the encoder in head models ("bert."); checkpoints saved with or without it load
    base_prefix: ClassVar[str] = ""

    config: BertConfig

    # ---------------------------------------------------------------------------- hooks per family
    @classmethod
    def name_map(cls) -> NameMap:
        raise NotImplementedError

    def init_weights(self) -> None:
        init_bert_weights(self, self.config.initializer_range)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # -------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls: type[M], folder: str | os.PathLike, config: BertConfig | None = None, strict: bool = False
    ) -> M:
        """Load a Hugging Face-format folder. Missing or unused tensors are reported by name (a warning,
        or an error with `strict=True`); a tensor of the wrong shape is always an error."""
        folder = Path(folder)
        if config is None:
            config = cls.config_class.from_pretrained(folder)
        state, source = read_weights(folder)
        model = cls(config)
        drop_untrained_pooler(model, state)
        model.load_hf_state_dict(state, source=str(source), strict=strict)
        return model.eval()

    def load_hf_state_dict(self, state: dict[str, torch.Tensor], source: str = "state dict",
                           strict: bool = False) -> dict[str, list[str]]:
        name_map = self.name_map()
        ours, unplaced, origin = name_map.to_ours(state)
        if unplaced and self.base_prefix:
            # Saved by another class of the family: with the prefix (head model) or without (bare encoder).
            p = self.base_prefix
            retry = {(n[len(p):] if n.startswith(p) else p + n): n for n in unplaced}
            more, still, more_origin = name_map.to_ours({alt: state[n] for alt, n in retry.items()})
            for target, tensor in more.items():
                ours.setdefault(target, tensor)
                origin.setdefault(target, retry.get(more_origin[target], more_origin[target]))
            unplaced = [retry[n] for n in still]
        unplaced = [n for n in unplaced if not n.endswith("position_ids")]  # a buffer, not a weight

        expected = self.state_dict()
        aliases = _tied_duplicates(self)
        for name, tensor in ours.items():
            if name in expected and tuple(tensor.shape) != tuple(expected[name].shape):
                raise CheckpointError(
                    f"{source}: tensor '{origin[name]}' has shape {tuple(tensor.shape)} but the model "
                    f"(our '{name}') expects {tuple(expected[name].shape)}; does config.json match the weights?"
                )
        unexpected = sorted(origin[n] for n in ours if n not in expected) + sorted(unplaced)
        missing = sorted(
            n for n in expected if n not in ours and not (n in aliases and aliases[n] in ours)
        )
        if strict and (missing or unexpected):
            raise CheckpointError(f"{source}: missing tensors {missing}; unexpected tensors {unexpected}")
        if missing:
            logger.warning("%s: %d tensors not in the checkpoint, left freshly initialised: %s",
                           source, len(missing), ", ".join(missing))
        if unexpected:
            logger.warning("%s: %d tensors not used by %s: %s", source, len(unexpected),
                           type(self).__name__, ", ".join(unexpected))
        self.load_state_dict({n: t for n, t in ours.items() if n in expected}, strict=False)
        return {"missing": missing, "unexpected": unexpected}

    # --------------------------------------------------------------------------------------- saving
    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """Our tensors under transformers' names. A tied copy with no name of its own there (the MLM decoder)
        is left out, since transformers re-ties it; a shared tensor their format stores per layer is written
        for each layer."""
        name_map = self.name_map()
        aliases = _tied_duplicates(self)
        state = {n: t for n, t in self.state_dict().items() if n not in aliases or name_map.knows(n)}
        return name_map.to_theirs(state)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write config.json and model.safetensors that transformers loads with identical outputs (an int8
        model: our int8 folder, compression/quantization/storage.py)."""
        quantization = getattr(self, "quantization", None)
        if quantization:
            from ..compression.quantization.storage import save_quantized

            return save_quantized(self, folder, quantization["layers"], quantization["method"],
                                  quantization.get("options"))
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = self.config.replace(architectures=[type(self).__name__])
        write_safetensors(self.hf_state_dict(), folder / SAFE_WEIGHTS)
        config.save_pretrained(folder)
        return folder


def drop_untrained_pooler(model: nn.Module, state: Mapping[str, Any]) -> None:
    """A bare encoder whose checkpoint has no pooler (pretrained by masked LM alone) loses the one it was built
    with: random weights would be warned about on every load and picked by pooling 'auto'. Built, then dropped,
    so that loading draws the same random numbers either way (a seeded run goes on with the same generator)."""
    if dict(model.named_children()).get("pooler") is not None and not any(".pooler." in f".{n}" for n in state):
        model.pooler = None


def _model_class(folder: str | os.PathLike) -> type[PreTrainedModel]:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{folder}: no {CONFIG_NAME} here")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise ConfigError(f"{path}: field 'model_type' is {model_type!r}; known types: {sorted(FAMILIES)}")
    names = raw.get("architectures") or []
    return next((ARCHITECTURES[n] for n in names if n in ARCHITECTURES), FAMILIES[model_type].encoder_class)


def read_config(folder: str | os.PathLike) -> BertConfig:
    """The folder's config.json as its family's config class (BertConfig, AlbertConfig, ...)."""
    return _model_class(folder).config_class.from_pretrained(folder)


def load(folder: str | os.PathLike, **kwargs: Any) -> PreTrainedModel:
    """The model a folder holds, as the class its config.json names (or the family's bare encoder); an int8
    folder (quantization.json) as the int8 model it was saved as."""
    if (Path(folder) / "quantization.json").is_file():
        from ..compression.quantization.storage import load_quantized

        return load_quantized(folder)
    return _model_class(folder).from_pretrained(folder, **kwargs)
