"""Adapter and LoRA settings: what to wrap, with what rank or bottleneck, and what else trains."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from ...errors import ConfigError
from ...models.activations import ACTIVATIONS

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
FORMAT = "bertology-adapter"
KINDS = ("lora", "adapter")
#: fused projections and the equal blocks of their output, which LoRA targets may name one by one
FUSED_PARTS: dict[str, tuple[str, ...]] = {"qkv": ("q", "k", "v")}
#: LoRA: Wq and Wv (the paper's GLUE setting); adapters: after attention and after the feed-forward block
DEFAULT_TARGETS = {"lora": ("attention.q", "attention.v"), "adapter": ("attention.out", "ffn.down")}
DEFAULT_NORMS: dict[str, tuple[str, ...]] = {"lora": (), "adapter": ("attention_norm", "ffn_norm")}
#: parameters left trainable by `freeze_except_adapters`: task heads of the head models and of TaskModel
DEFAULT_ALSO_TRAINABLE = ("classifier", "qa_outputs", "heads")
FULL = "full"  # the part name of a LoRA update covering every output row


@dataclass
class PeftConfig:
    """One adapter's shape. `targets` / `norms` are regular expressions matched against whole trailing name
    components ("attention.out" matches "bert.encoder.layers.3.attention.out"); None means the kind's default."""

    kind: str = "lora"
    #: LoRA rank r and scaling numerator alpha (the update is scaled by alpha / r)
    rank: int = 8
    alpha: float = 16.0
    #: dropout on the input of the LoRA path
    dropout: float = 0.0
    #: bottleneck adapters: inner width and nonlinearity
    bottleneck: int = 64
    activation: str = "gelu"
    targets: tuple[str, ...] | None = None
    #: LayerNorms that get a per-adapter trainable copy (default: the encoder's two per layer for adapters)
    norms: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"peft field 'kind' must be one of {list(KINDS)}, got {self.kind!r}")
        for name in ("rank", "bottleneck"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"peft field '{name}' must be a positive integer, got {value!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ConfigError(f"peft field 'alpha' must be a positive number, got {self.alpha!r}")
        self.alpha = float(self.alpha)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"peft field 'dropout' must lie in [0, 1), got {self.dropout!r}")
        self.dropout = float(self.dropout)
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"peft field 'activation' must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.targets is None:
            self.targets = DEFAULT_TARGETS[self.kind]
        if self.norms is None:
            self.norms = DEFAULT_NORMS[self.kind]
        self.targets = self._patterns("targets", self.targets)
        self.norms = self._patterns("norms", self.norms)
        if not self.targets:
            raise ConfigError("peft field 'targets' needs at least one module name pattern")

    @staticmethod
    def _patterns(field_name: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"peft field '{field_name}' must be a list of non-empty name patterns, got {value!r}")
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"peft field '{field_name}': {pattern!r} is not a regular expression "
                                  f"({exc})") from None
        return tuple(value)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"], data["norms"] = list(self.targets), list(self.norms)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> PeftConfig:
        """From JSON/YAML; an unknown field is an error (a typo must not silently fall back to a default)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}peft options must be a mapping of fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}unknown peft field(s) {unknown}; known fields: {sorted(known)}")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
