"""One encoder, one head per task: the model every fine-tuning method trains.

A head reads the encoder's hidden states through a layer strategy (`LayerSelector`: embeddings, top, a
chosen layer, a learned scalar mix, the last four concatenated) and, for sentence-level tasks, a pooling
([CLS], mean, max, or the pretrained pooler). Sentence-level heads pool every layer first and then
select or mix the pooled vectors; for [CLS] and mean pooling this equals mixing first (both are linear),
and it lets a frozen encoder's features be cached as one small (layers, width) matrix per example.

The forward returns a `StepOutput` (named loss per task, accuracy, logits), so the one `Trainer` loop
trains it, whether the encoder is tuned, frozen, or carries adapters.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..training.protocol import StepOutput
from ..utils.io import atomic_path, atomic_write
from ..utils.typed import check_fields
from .layers import STRATEGIES, LayerSelector

KINDS = ("classification", "regression", "tagging", "qa", "multiple_choice")
POOLINGS = ("auto", "cls", "mean", "max", "pooler")
SENTENCE_KINDS = ("classification", "regression", "multiple_choice")


@dataclass
class HeadConfig:
    """What a task predicts and which encoder outputs it reads."""

    kind: str = "classification"
    #: label names (classification, tagging); empty for regression, qa and multiple choice
    labels: list[str] = field(default_factory=list)
    #: multi-label classification: independent sigmoid per label
    multi_label: bool = False
    layers: str = "top"
    layer: int | None = None
    #: "auto" is the pretrained pooler when it exists and the head reads the top layer, else [CLS]
    pooling: str = "auto"
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_fields(self)
        for name, value, allowed in (("kind", self.kind, KINDS), ("layers", self.layers, tuple(STRATEGIES)),
                                     ("pooling", self.pooling, POOLINGS)):
            if value not in allowed:
                raise ConfigError(f"head field '{name}' must be one of {list(allowed)}, got {value!r}")
        if self.kind in ("classification", "tagging") and len(self.labels) < 2 and not self.multi_label:
            raise ConfigError(f"a {self.kind} head needs at least two labels, got {self.labels}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"head field 'dropout' must lie in [0, 1), got {self.dropout}")

    @property
    def outputs(self) -> int:
        return {"regression": 1, "qa": 2, "multiple_choice": 1}.get(self.kind, len(self.labels))


class TaskHead(nn.Module):
    """Layer strategy, pooling (sentence tasks), dropout and a linear layer."""

    def __init__(self, config: HeadConfig, num_layers: int, hidden_size: int, pooler: nn.Module | None) -> None:
        super().__init__()
        self.config = config
        self.selector = LayerSelector(config.layers, num_layers, config.layer)
        pooling = config.pooling
        if pooling == "auto":
            pooling = "pooler" if pooler is not None and config.layers == "top" else "cls"
        if pooling == "pooler" and (pooler is None or config.layers == "concat_last_four"):
            raise ConfigError("pooling 'pooler' needs an encoder with a pooler and a layer strategy of width H "
                              f"(got layers={config.layers!r}, pooler={'yes' if pooler is not None else 'none'})")
        self.pooling = pooling
        # the encoder's pooler is shared, not copied: tuning it tunes the encoder's pooler
        self._pooler = [pooler] if pooling == "pooler" else []
        self.dropout = nn.Dropout(config.dropout)
        self.linear = nn.Linear(self.selector.output_size(hidden_size), config.outputs)

    @property
    def sentence_level(self) -> bool:
        return self.config.kind in SENTENCE_KINDS

    def pool_layers(self, hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor) -> list[torch.Tensor]:
        """One (batch, width) vector per layer: the cacheable features of a sentence-level task."""
        if self.pooling == "pooler":
            # the pooler reads [CLS] of the selected layer; only that layer is needed
            return [self._pooler[0](self.selector(hidden_states, mask))]
        if self.pooling == "cls":
            return [h[:, 0] for h in hidden_states]
        weights = mask.unsqueeze(-1).to(hidden_states[0].dtype)
        if self.pooling == "mean":
            count = weights.sum(1).clamp(min=1.0)
            return [(h * weights).sum(1) / count for h in hidden_states]
        very_negative = torch.finfo(hidden_states[0].dtype).min
        return [h.masked_fill(weights == 0, very_negative).amax(1) for h in hidden_states]

    def features(self, pooled: list[torch.Tensor] | torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The vector (or per-token vectors) the linear layer reads."""
        if self.pooling == "pooler" and self.sentence_level:
            return pooled[0]
        return self.selector(tuple(pooled), mask)

    def forward(self, hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor) -> torch.Tensor:
        if self.sentence_level:
            pooled = self.pool_layers(hidden_states, mask)
            return self.linear(self.dropout(self.features(pooled)))
        return self.linear(self.dropout(self.selector(hidden_states, mask)))


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    keep = labels != -100
    return (logits.argmax(-1)[keep] == labels[keep]).float().mean() if keep.any() else logits.new_zeros(())


def task_loss(config: HeadConfig, logits: torch.Tensor, batch: dict[str, torch.Tensor]
              ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """The standard loss of each task kind, and accuracy where it means something."""
    logits = logits.float()
    if config.kind == "qa":
        if "start_positions" not in batch:
            return None, {}
        start, end = logits.unbind(-1)
        loss = (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
        return loss, {}
    labels = batch.get("labels")
    if labels is None:
        return None, {}
    if config.kind == "regression":
        return F.mse_loss(logits.squeeze(-1), labels.float()), {}
    if config.multi_label:
        loss = F.binary_cross_entropy_with_logits(logits, labels.float())
        return loss, {"accuracy": ((logits > 0) == (labels > 0.5)).float().mean()}
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    return loss, {"accuracy": _accuracy(logits.detach(), labels)}


class TaskModel(nn.Module):
    """An encoder (any bertology family) with named task heads; a batch names its task with `task`.

    With `cached` features (a frozen encoder's per-layer outputs, see `features.py`) the encoder is
    skipped, so epochs after the first cost only the head.
    """

    def __init__(self, encoder: nn.Module, heads: dict[str, HeadConfig]) -> None:
        super().__init__()
        if not heads:
            raise ConfigError("a TaskModel needs at least one task head")
        self.encoder = encoder
        config = encoder.config
        pooler = getattr(encoder, "pooler", None)
        self.heads = nn.ModuleDict({
            name: TaskHead(head, config.num_hidden_layers, config.hidden_size, pooler) for name, head in heads.items()
        })
        self.head_configs = dict(heads)
        self.base_path: str | None = None  # where the encoder came from, for adapter-only saves
        self.save_encoder = True
        #: per task, how its data was read and encoded (columns, max_length, ...), kept for predict/evaluate
        self.task_options: dict[str, dict[str, Any]] = {}

    @property
    def default_task(self) -> str:
        return next(iter(self.heads))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               token_type_ids: torch.Tensor | None, **token_inputs: Any) -> tuple[torch.Tensor, ...]:
        """All hidden states, embeddings first (kept for the backward pass anyway, so asking costs little)."""
        out = self.encoder(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                           output_hidden_states=True, **token_inputs)
        return out.hidden_states

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, task: str | None = None,
                cached: torch.Tensor | None = None, **batch: Any) -> StepOutput:
        task = task or self.default_task
        if task not in self.heads:
            raise KeyError(f"unknown task {task!r}; this model has heads {list(self.heads)}")
        head = self.heads[task]
        targets = {k: batch.pop(k) for k in ("labels", "start_positions", "end_positions") if k in batch}
        choices = None
        if head.config.kind == "multiple_choice" and input_ids is not None and input_ids.dim() == 3:
            choices = input_ids.shape[1]
            flat = lambda t: None if t is None else t.reshape(-1, t.shape[-1])  # noqa: E731
            input_ids, attention_mask, token_type_ids = flat(input_ids), flat(attention_mask), flat(token_type_ids)
        if cached is not None:
            logits = self._head_on_cache(head, cached, attention_mask)
        else:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            hidden = self.encode(input_ids, attention_mask, token_type_ids, **batch)
            logits = head(hidden, attention_mask)
        if head.config.kind == "multiple_choice":
            logits = logits.view(-1, choices or cached.shape[1])
        loss, metrics = task_loss(head.config, logits, targets)
        losses = {} if loss is None else {task if len(self.heads) > 1 else "loss": loss}
        return StepOutput(losses, metrics, {"logits": logits})

    def _head_on_cache(self, head: TaskHead, cached: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """`cached`: (batch, layers, width) pooled features, or (batch, layers, seq, width) token features."""
        if head.config.kind == "multiple_choice":
            cached = cached.flatten(0, 1)
        layers = list(cached.float().unbind(1))
        if head.sentence_level:
            features = layers[0] if head.pooling == "pooler" else head.selector(tuple(layers), None)
        else:
            features = head.selector(tuple(layers), mask)
        return head.linear(head.dropout(features))

    # ------------------------------------------------------------------------------------ saving
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Heads and task description always; the encoder in Hugging Face layout unless only adapters train
        (then the adapter weights, and the base encoder's path to load them onto)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.save_encoder:
            self.encoder.save_pretrained(folder / "encoder")
        else:
            from .peft import adapter_names, save_adapter

            for name in adapter_names(self.encoder):
                save_adapter(self.encoder, name, folder / "adapters" / name)
        heads = {f"{task}.{k}": v.detach().cpu().contiguous() for task, head in self.heads.items()
                 for k, v in head.state_dict().items()}
        with atomic_path(folder / "heads.safetensors") as tmp:
            save_file(heads, str(tmp))
        description = {"tasks": {name: asdict(h) for name, h in self.head_configs.items()},
                       "encoder": "encoder" if self.save_encoder else self.base_path,
                       "options": self.task_options}
        with atomic_write(folder / "task.json") as handle:
            json.dump(description, handle, indent=2, ensure_ascii=False)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **encoder_options: Any) -> TaskModel:
        from ..models import load

        folder = Path(folder)
        description_path = folder / "task.json"
        if not description_path.is_file():
            raise CheckpointError(f"{folder}: no task.json; is this a fine-tuned model folder?")
        description = json.loads(description_path.read_text(encoding="utf-8"))
        heads = {name: HeadConfig(**h) for name, h in description["tasks"].items()}
        source = description["encoder"]
        encoder_folder = folder / source if source == "encoder" else Path(source)
        encoder = load(encoder_folder, **encoder_options)
        adapters = folder / "adapters"
        if adapters.is_dir():
            from .peft import load_adapter

            for sub in sorted(p for p in adapters.iterdir() if p.is_dir()):
                load_adapter(encoder, sub, sub.name)
        model = cls(encoder, heads)
        model.base_path = str(encoder_folder)
        model.task_options = description.get("options", {})
        state = load_file(str(folder / "heads.safetensors"))
        for task, head in model.heads.items():
            prefix = f"{task}."
            own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            missing, unexpected = head.load_state_dict(own, strict=False)
            if missing or unexpected:
                raise CheckpointError(f"{folder / 'heads.safetensors'}: head {task!r} is missing {missing}, "
                                      f"has unexpected {unexpected}")
        return model
