"""Adapter and LoRA settings: what to wrap, with what rank or bottleneck, and what else trains."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ...errors import ConfigError
from ...models.activations import ACTIVATIONS
from ...utils.typed import as_where, check_choice, parse

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
    components ("attention.out" matches "bert.encoder.layers.3.attention.out"); None means the kind's default.

    Built in Python, the defaults are filled at once (`kind` None is LoRA). Parsed from a config
    (`parse`, which runs `validate` only), `kind` None stays open until `for_kind` names it, so a
    fine-tuning config's `peft:` section can leave it to `method`.
    """

    #: "lora" or "adapter" (None: LoRA, or in a fine-tuning config the method's)
    kind: str | None = None
    #: LoRA rank r and scaling numerator alpha (the update is scaled by alpha / r)
    rank: int = 8
    alpha: float = 16.0
    #: dropout on the input of the LoRA path
    dropout: float = 0.0
    #: bottleneck adapters: inner width and nonlinearity
    bottleneck: int = 64
    activation: str = "gelu"
    targets: Sequence[str] | None = None
    #: LayerNorms that get a per-adapter trainable copy (default: the encoder's two per layer for adapters)
    norms: Sequence[str] | None = None

    def __post_init__(self) -> None:
        self.validate()
        self.kind = self.kind or "lora"
        self.alpha, self.dropout = float(self.alpha), float(self.dropout)
        self.targets = self._patterns("targets", DEFAULT_TARGETS[self.kind] if self.targets is None else self.targets)
        self.norms = self._patterns("norms", DEFAULT_NORMS[self.kind] if self.norms is None else self.norms)

    def validate(self, where: str = "") -> None:
        """Every field checked (an error names it); defaults are not filled here."""
        if self.kind is not None:
            check_choice(where, "kind", self.kind, KINDS)
        for name in ("rank", "bottleneck"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{where}field '{name}' must be a positive integer, got {value!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ConfigError(f"{where}field 'alpha' must be a positive number, got {self.alpha!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"{where}field 'dropout' must lie in [0, 1), got {self.dropout!r}")
        check_choice(where, "activation", self.activation, sorted(ACTIVATIONS))
        for name in ("targets", "norms"):
            if getattr(self, name) is not None:
                self._patterns(name, getattr(self, name), where)
        if self.targets is not None and not self._patterns("targets", self.targets, where):
            raise ConfigError(f"{where}field 'targets' needs at least one module name pattern")

    def for_kind(self, kind: str) -> PeftConfig:
        """This config with its defaults filled, `kind` standing in when it names none."""
        return dataclasses.replace(self, kind=self.kind or kind)

    @staticmethod
    def _patterns(field_name: str, value: Any, where: str = "") -> tuple[str, ...]:
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where}field '{field_name}' must be a list of non-empty name patterns, got {value!r}")
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{where}field '{field_name}': {pattern!r} is not a regular expression "
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
        """From JSON/YAML; an unknown field is an error naming it and the nearest known one."""
        return parse(cls, data, as_where(where)).for_kind("lora")
