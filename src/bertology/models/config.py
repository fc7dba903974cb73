"""`BertConfig`: the architecture of an encoder, in the field names of Hugging Face's config.json.

Keeping BERT's own field names means a config.json moves between us and transformers unchanged; keys
we do not model (transformers_version, gradient_checkpointing, ...) are kept in `extra` and written back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError
from ..utils.io import atomic_write
from ..utils.typed import check_fields, from_mapping
from .activations import ACTIVATIONS

CONFIG_NAME = "config.json"


@dataclass
class BertConfig:
    """Architecture of a BERT encoder. Defaults are BERT-base; see `BertConfig.preset` for other sizes."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"
    classifier_dropout: float | None = None
    #: task heads: label names by id (their count is num_labels) and how the loss reads labels
    id2label: dict | None = None
    problem_type: str | None = None
    model_type: str = "bert"
    architectures: list | None = None
    #: heads removed by pruning, {layer: [head indices]} in the original numbering, cumulative (transformers'
    #: own field: its 4.x versions prune these heads when building the model, so the folder loads there too)
    pruned_heads: dict = field(default_factory=dict)
    #: feed-forward width of each layer after neuron pruning (None: every layer has `intermediate_size`);
    #: ours only, transformers cannot build such a model
    intermediate_sizes: list | None = None
    # Keys of a config.json that we carry through unchanged.
    extra: dict = field(default_factory=dict, repr=False)

    #: Keys a config.json must state: without them no architecture is defined.
    REQUIRED: ClassVar[tuple[str, ...]] = (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    )

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------------------------------- checks
    def validate(self, where: str = "") -> None:
        """Check types and values; the error names the field and what it expected."""
        check_fields(self, where)
        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}field '{name}' must be positive, got {getattr(self, name)}")
        if self.type_vocab_size < 0:
            raise ConfigError(f"{where}field 'type_vocab_size' must be >= 0, got {self.type_vocab_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"{where}field 'hidden_size' ({self.hidden_size}) must be divisible by "
                f"'num_attention_heads' ({self.num_attention_heads})"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{where}field '{name}' must be in [0, 1), got {getattr(self, name)}")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"{where}field 'hidden_act' is {self.hidden_act!r}; known activations: {sorted(ACTIVATIONS)}"
            )
        if self.position_embedding_type != "absolute":
            raise ConfigError(
                f"{where}field 'position_embedding_type' is {self.position_embedding_type!r}; "
                "only 'absolute' position embeddings are supported"
            )
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"{where}field 'pad_token_id' ({self.pad_token_id}) must lie in [0, vocab_size)")
        if self.problem_type not in (None, "regression", "single_label_classification", "multi_label_classification"):
            raise ConfigError(f"{where}field 'problem_type' is {self.problem_type!r}; use regression, "
                              "single_label_classification or multi_label_classification")
        if self.layer_norm_eps <= 0:
            raise ConfigError(f"{where}field 'layer_norm_eps' must be positive, got {self.layer_norm_eps}")
        self._check_pruning(where)
        self._check_size(where)

    def estimated_parameters(self) -> int:
        """About how many parameters the encoder these sizes describe has (embeddings, attention and
        feed-forward matrices; biases and norms left out): enough to refuse an absurd config cheaply."""
        h, i = self.hidden_size, self.intermediate_size
        embeddings = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h
        return embeddings + self.num_hidden_layers * (4 * h * h + 2 * h * i)

    def _check_size(self, where: str) -> None:
        """Refuse, before any tensor is allocated, sizes no machine should allocate: a config.json from an
        untrusted folder must not be able to ask for a 100-GB model. The bound (10 billion parameters, 40 GB
        in fp32; BERT-large has 0.34 billion) moves with BERTOLOGY_MAX_PARAMETERS."""
        limit = int(float(os.environ.get("BERTOLOGY_MAX_PARAMETERS", 1e10)))
        estimate = self.estimated_parameters()
        if estimate > limit:
            raise ConfigError(f"{where}these sizes describe a model of about {estimate / 1e9:,.1f} billion parameters "
                              f"(vocab_size {self.vocab_size}, hidden_size {self.hidden_size}, num_hidden_layers "
                              f"{self.num_hidden_layers}, intermediate_size {self.intermediate_size}), over the limit "
                              f"of {limit / 1e9:,.1f} billion; refused before allocating anything (set "
                              "BERTOLOGY_MAX_PARAMETERS to allow more)")

    def _check_pruning(self, where: str) -> None:
        """Normalise `pruned_heads` (JSON gives string keys) to {int layer: sorted heads}, and check both
        per-layer fields against the depth and head count."""
        heads: dict[int, list[int]] = {}
        for key, value in self.pruned_heads.items():
            try:
                layer = int(key)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}field 'pruned_heads' has key {key!r}; expected a layer number") from None
            if not 0 <= layer < self.num_hidden_layers:
                raise ConfigError(f"{where}field 'pruned_heads' names layer {layer}; the model has layers "
                                  f"0..{self.num_hidden_layers - 1}")
            if not isinstance(value, (list, tuple)) or not all(isinstance(h, int) and not isinstance(h, bool)
                                                                for h in value):
                raise ConfigError(f"{where}field 'pruned_heads' layer {layer}: expected a list of head "
                                  f"indices, got {value!r}")
            bad = sorted(h for h in value if not 0 <= h < self.num_attention_heads)
            if bad or len(set(value)) != len(value):
                raise ConfigError(f"{where}field 'pruned_heads' layer {layer}: heads {list(value)} must be "
                                  f"distinct indices in 0..{self.num_attention_heads - 1}")
            if value:
                heads[layer] = sorted(value)
        self.pruned_heads = dict(sorted(heads.items()))
        sizes = self.intermediate_sizes
        if sizes is not None:
            if len(sizes) != self.num_hidden_layers or not all(
                    isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes):
                raise ConfigError(f"{where}field 'intermediate_sizes' must list one width >= 0 per layer "
                                  f"({self.num_hidden_layers}), got {sizes!r}")
            self.intermediate_sizes = list(sizes)

    @property
    def num_labels(self) -> int:
        return len(self.id2label) if self.id2label else 2

    def with_labels(self, labels: int | list[str]) -> BertConfig:
        """A copy for a task head with `labels` classes (a count, or their names in id order)."""
        names = [f"LABEL_{i}" for i in range(labels)] if isinstance(labels, int) else list(labels)
        return self.replace(id2label={str(i): name for i, name in enumerate(names)})

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def heads_of(self, layer: int) -> list[int]:
        """The original indices of the heads layer `layer` keeps (all of them unless pruned)."""
        pruned = set(self.pruned_heads.get(layer, ()))
        return [h for h in range(self.num_attention_heads) if h not in pruned]

    def intermediate_size_of(self, layer: int) -> int:
        """Feed-forward width of layer `layer` (neuron pruning makes it differ per layer)."""
        return self.intermediate_size if self.intermediate_sizes is None else self.intermediate_sizes[layer]

    @property
    def uniform_layers(self) -> bool:
        """True when every layer has the full head count and feed-forward width (nothing pruned)."""
        return not self.pruned_heads and self.intermediate_sizes is None

    def select_layers(self, layers: list[int]) -> BertConfig:
        """A copy for a model keeping only `layers` (0-based, in order): depth and per-layer fields follow."""
        heads = {new: self.pruned_heads[old] for new, old in enumerate(layers) if old in self.pruned_heads}
        sizes = None if self.intermediate_sizes is None else [self.intermediate_sizes[i] for i in layers]
        return self.replace(num_hidden_layers=len(layers), pruned_heads=heads, intermediate_sizes=sizes)

    # --------------------------------------------------------------------------------- dict and json
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> BertConfig:
        """Build from a config.json mapping: required keys must be there, unknown keys go to `extra`."""
        where = f"{source}: " if source else ""
        config = from_mapping(cls, data, where, required=cls.REQUIRED, unknown="keep", extra_field="extra")
        config.validate(where)
        return config

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        merged = dict(self.extra)
        merged.update(data)
        for optional in ("architectures", "id2label", "problem_type", "intermediate_sizes"):
            if merged.get(optional) is None:
                merged.pop(optional, None)
        if not merged.get("pruned_heads"):
            merged.pop("pruned_heads", None)
        else:
            merged["pruned_heads"] = {str(k): list(v) for k, v in merged["pruned_heads"].items()}
        if self.id2label is not None:
            merged["label2id"] = {label: int(i) for i, label in self.id2label.items()}
        return dict(sorted(merged.items()))

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> BertConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> BertConfig:
        folder = Path(folder)
        return cls.from_json_file(folder / CONFIG_NAME if folder.is_dir() else folder)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / CONFIG_NAME
        with atomic_write(path) as handle:
            json.dump(self.to_dict(), handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        return path

    def replace(self, **changes: Any) -> BertConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> BertConfig:
        """A standard size by name: `bert-L4-H256` style names, or tiny/mini/small/medium/base/large/tinybert."""
        key = PRESET_ALIASES.get(name.lower(), name)
        if key not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
        return cls(**{**PRESETS[key], **overrides})


def _google_small(layers: int, hidden: int) -> dict[str, int]:
    return {"num_hidden_layers": layers, "hidden_size": hidden, "num_attention_heads": hidden // 64,
            "intermediate_size": 4 * hidden}


#: Google's 24 small BERTs (L2..L12 x H128..H768, heads H/64, FFN 4H) plus the other standard sizes.
PRESETS: dict[str, dict[str, int]] = {
    f"bert-L{layers}-H{hidden}": _google_small(layers, hidden)
    for layers in (2, 4, 6, 8, 10, 12)
    for hidden in (128, 256, 512, 768)
}
PRESETS["bert-L24-H1024"] = {"num_hidden_layers": 24, "hidden_size": 1024, "num_attention_heads": 16,
                             "intermediate_size": 4096}
PRESETS["tinybert-L4-H312"] = {"num_hidden_layers": 4, "hidden_size": 312, "num_attention_heads": 12,
                               "intermediate_size": 1200}
PRESET_ALIASES = {
    "tiny": "bert-L2-H128", "mini": "bert-L4-H256", "small": "bert-L4-H512", "medium": "bert-L8-H512",
    "base": "bert-L12-H768", "large": "bert-L24-H1024", "tinybert": "tinybert-L4-H312",
}


def preset_names() -> list[str]:
    return sorted(PRESET_ALIASES) + sorted(PRESETS)
