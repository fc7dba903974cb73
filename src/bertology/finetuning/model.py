"""One encoder, one head per task: the model every fine-tuning method trains.

A head reads the encoder's hidden states through a layer strategy (`LayerSelector`: embeddings, top, a
chosen layer, a learned scalar mix, the last four concatenated) and, for sentence-level tasks, a pooling
([CLS], mean or max from `models.pooling`, or the pretrained pooler). Sentence-level heads pool every layer
first and then select or mix the pooled vectors; for [CLS] and mean pooling this equals mixing first (both
are linear), and it lets a frozen encoder's features be cached as one small (layers, width) matrix per
example. What the head predicts -- its width, its loss, how grouped inputs (multiple choice) become
encoder rows -- is its task kind's (``finetuning.tasks``).

The forward returns a `StepOutput` (named loss per task, accuracy, logits), so the one `Trainer` loop
trains it, whether the encoder is tuned, frozen, or carries adapters. Every batch tensor that is neither a
target nor `cached` goes to the encoder, so a family with inputs of its own (pinyin ids, a second
granularity) needs nothing here: its tokenizer puts them in the features, the collator pads them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..models.outputs import EncoderOutput
from ..models.pooling import pool_each
from ..training.protocol import StepOutput
from ..utils.io import atomic_path, atomic_write
from ..utils.typed import check_choice, check_fields
from .layers import STRATEGIES, LayerSelector
from .tasks import TaskKind, task_kind

POOLINGS = ("auto", "cls", "mean", "max", "pooler")

__all__ = ["POOLINGS", "HeadConfig", "HeadOptions", "TaskHead", "TaskModel", "task_loss"]


@dataclass
class HeadOptions:
    """A task's `head:` section: which encoder outputs the head reads (its labels come from the data)."""

    #: multi-label classification: independent sigmoid per label
    multi_label: bool = False
    layers: str = "top"
    #: the layer of `layers: layer` (0 = embeddings, negative from the top)
    layer: int | None = None
    #: "auto" is the pretrained pooler when it exists and the head reads the top layer, else [CLS]
    pooling: str = "auto"
    dropout: float = 0.1

    def validate(self, where: str = "") -> None:
        check_fields(self, where)
        check_choice(where, "layers", self.layers, STRATEGIES)
        check_choice(where, "pooling", self.pooling, POOLINGS)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{where}field 'dropout' must lie in [0, 1), got {self.dropout}")
        if (self.layers == "layer") != (self.layer is not None):
            raise ConfigError(f"{where}field 'layer' goes with layers: layer (and only with it); got layers "
                              f"{self.layers!r} and layer {self.layer!r}")
        if self.pooling == "pooler" and self.layers == "concat_last_four":
            raise ConfigError(f"{where}pooling 'pooler' needs a layer strategy of width H, not 'concat_last_four'")


@dataclass
class HeadConfig(HeadOptions):
    """What a task predicts (its kind and label names) and which encoder outputs it reads."""

    kind: str = "classification"
    #: label names (classification, tagging); empty for regression, qa and multiple choice
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "") -> None:
        super().validate(where)
        kind = task_kind(self.kind, where=where)
        kind.check_head(self, where)
        kind.check_labels(self)

    @property
    def outputs(self) -> int:
        return task_kind(self.kind).outputs(self)


class TaskHead(nn.Module):
    """Layer strategy, pooling (sentence tasks), dropout and a linear layer."""

    def __init__(self, config: HeadConfig, num_layers: int, hidden_size: int, pooler: nn.Module | None,
                 views: int = 1) -> None:
        super().__init__()
        self.config = config
        self.kind: TaskKind = task_kind(config.kind)
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
        self.linear = nn.Linear(self.selector.output_size(hidden_size), self.kind.outputs(config))
        #: an encoder with a second granularity (AMBERT's words) gives a sentence-level head three classifiers:
        #: on the fine vector, on the coarse vector and on both concatenated (what it predicts with)
        self.two_views = views == 2 and self.sentence_level
        #: weight of the agreement between the fine and coarse predictions (the `agreement` regularizer sets it)
        self.agreement_weight = 0.0
        if self.two_views:
            width = self.selector.output_size(hidden_size)
            self.coarse_selector = LayerSelector(config.layers, num_layers, config.layer)
            self.coarse_linear = nn.Linear(width, self.kind.outputs(config))
            self.combined_linear = nn.Linear(2 * width, self.kind.outputs(config))

    @property
    def sentence_level(self) -> bool:
        return self.kind.sentence_level

    def pool_layers(self, hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor) -> list[torch.Tensor]:
        """One (batch, width) vector per layer: the cacheable features of a sentence-level task."""
        if self.pooling == "pooler":
            # the pooler reads [CLS] of the selected layer; only that layer is needed
            return [self._pooler[0](self.selector(hidden_states, mask))]
        return pool_each(hidden_states, mask, self.pooling)

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

    def sentence_vector(self, hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor,
                        selector: LayerSelector) -> torch.Tensor:
        """The pooled (and selected or mixed) vector of one view."""
        if self.pooling == "pooler":
            return self._pooler[0](selector(hidden_states, mask))
        return selector(tuple(pool_each(hidden_states, mask, self.pooling)), None)

    def forward_views(self, fine: tuple[torch.Tensor, ...], fine_mask: torch.Tensor,
                      coarse: tuple[torch.Tensor, ...], coarse_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of the fine, coarse and combined classifiers (AMBERT fine-tuning, Zhang and Li 2021)."""
        f = self.dropout(self.sentence_vector(fine, fine_mask, self.selector))
        c = self.dropout(self.sentence_vector(coarse, coarse_mask, self.coarse_selector))
        return {"fine": self.linear(f), "coarse": self.coarse_linear(c),
                "combined": self.combined_linear(torch.cat([f, c], dim=-1))}

    def from_cache(self, cached: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Logits from (rows, layers, width) pooled features or (rows, layers, seq, width) token features."""
        layers = list(cached.float().unbind(1))
        if self.sentence_level:
            features = layers[0] if self.pooling == "pooler" else self.selector(tuple(layers), None)
        else:
            features = self.selector(tuple(layers), mask)
        return self.linear(self.dropout(features))


def task_loss(config: HeadConfig, logits: torch.Tensor, batch: dict[str, torch.Tensor]
              ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """The standard loss of the head's task kind, and accuracy where it means something."""
    return task_kind(config.kind).loss(config, logits, batch)


def tokenizer_folder(folder: str | os.PathLike, base_path: str | os.PathLike | None = None) -> Path:
    """Where a model folder's tokenizer is: a fine-tuned folder's `tokenizer/` (saved beside the model),
    else the encoder folder it was trained from (`base_path`), else the folder itself."""
    folder = Path(folder)
    return folder / "tokenizer" if (folder / "tokenizer").is_dir() else Path(base_path or folder)


class TaskModel(nn.Module):
    """An encoder (any bertology family) with named task heads; a batch names its task with `task`.

    With `cached` features (a frozen encoder's per-layer outputs, see `predict.cache_features`) the encoder
    is skipped, so epochs after the first cost only the head.
    """

    def __init__(self, encoder: nn.Module, heads: dict[str, HeadConfig]) -> None:
        super().__init__()
        if not heads:
            raise ConfigError("a TaskModel needs at least one task head")
        self.encoder = encoder
        config = encoder.config
        pooler = getattr(encoder, "pooler", None)
        self.heads = nn.ModuleDict({
            name: TaskHead(head, config.num_hidden_layers, config.hidden_size, pooler,
                           views=getattr(encoder, "granularities", 1)) for name, head in heads.items()
        })
        self.head_configs = dict(heads)
        self.base_path: str | None = None  # where the encoder came from, for adapter-only saves
        self.save_encoder = True
        #: per task, how its data was read and encoded (columns, max_length, kind options), for predict/evaluate
        self.task_options: dict[str, dict[str, Any]] = {}

    @property
    def default_task(self) -> str:
        return next(iter(self.heads))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               token_type_ids: torch.Tensor | None = None, **token_inputs: Any) -> tuple[torch.Tensor, ...]:
        """All hidden states, embeddings first (kept for the backward pass anyway, so asking costs little)."""
        return self.encode_output(input_ids, attention_mask, token_type_ids, **token_inputs).hidden_states

    def encode_output(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      token_type_ids: torch.Tensor | None = None, **token_inputs: Any) -> EncoderOutput:
        """The encoder's output with every hidden state (and a second granularity's, when it has one)."""
        return self.encoder(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            output_hidden_states=True, **token_inputs)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, task: str | None = None,
                cached: torch.Tensor | None = None, **batch: Any) -> StepOutput:
        task = task or self.default_task
        if task not in self.heads:
            raise KeyError(f"unknown task {task!r}; this model has heads {list(self.heads)}")
        head = self.heads[task]
        targets = {k: batch.pop(k) for k in head.kind.target_keys if k in batch}
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids, **batch}
        inputs, cached, groups = head.kind.group(inputs, cached)
        views = None
        if cached is not None:
            logits = head.from_cache(cached, inputs["attention_mask"])
        else:
            if inputs["attention_mask"] is None:
                inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
            out = self.encode_output(**inputs)
            if head.two_views and out.coarse is not None:
                views = head.forward_views(out.hidden_states, inputs["attention_mask"], out.coarse.hidden_states,
                                           inputs["coarse_attention_mask"])
                views = {name: head.kind.ungroup(v, groups) for name, v in views.items()}
                logits = views["combined"]
            else:
                logits = head.kind.ungroup(head(out.hidden_states, inputs["attention_mask"]), groups)
        if cached is not None:
            logits = head.kind.ungroup(logits, groups)
        loss, metrics = head.kind.loss(head.config, logits, targets)
        if views is not None and loss is not None:
            loss, metrics = self._two_view_loss(head, views, targets, loss, metrics)
        losses = {} if loss is None else {task if len(self.heads) > 1 else "loss": loss}
        return StepOutput(losses, metrics, {"logits": logits})

    @staticmethod
    def _two_view_loss(head: TaskHead, views: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                       loss: torch.Tensor, metrics: dict[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """AMBERT's fine-tuning loss: the combined classifier's, plus the fine and coarse classifiers' own,
        plus `agreement_weight` times how far the two granularities' predictions are apart."""
        from .regularization.agreement import agreement_gap

        for name in ("fine", "coarse"):
            loss = loss + head.kind.loss(head.config, views[name], targets)[0]
        gap = agreement_gap(head.config, views["fine"], views["coarse"])
        metrics = {**metrics, "agreement_gap": gap.detach()}
        if head.agreement_weight:
            loss = loss + head.agreement_weight * gap
        return loss, metrics

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
        try:
            description = json.loads(description_path.read_text(encoding="utf-8"))
            heads = {name: HeadConfig(**h) for name, h in description["tasks"].items()}
            source = description["encoder"]
            if not isinstance(source, str):
                raise TypeError(f"'encoder' must be a string, got {type(source).__name__}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise CheckpointError(f"{description_path}: not a valid task description ({what}); "
                                  "the file is damaged or was not written by bertology") from None
        except OSError as exc:
            raise CheckpointError(f"{description_path}: cannot be read ({exc.strerror or exc})") from None
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
        heads_path = folder / "heads.safetensors"
        if not heads_path.is_file():
            raise CheckpointError(f"{heads_path}: missing; the fine-tuned model folder is incomplete")
        try:
            state = load_file(str(heads_path))
        except Exception as exc:  # safetensors reports a cut file as its own error type
            raise CheckpointError(f"{heads_path}: cannot be read as safetensors ({exc}); the file is truncated "
                                  "or damaged") from None
        for task, head in model.heads.items():
            prefix = f"{task}."
            own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            missing, unexpected = head.load_state_dict(own, strict=False)
            if missing or unexpected:
                raise CheckpointError(f"{folder / 'heads.safetensors'}: head {task!r} is missing {missing}, "
                                      f"has unexpected {unexpected}")
        return model
