"""Unsupervised SimCSE (Gao et al., 2021): a text encoded twice with dropout on is its own positive.

Each instance gives one text (`unit: sentence`, default: one whole corpus sentence of the instance, drawn
at random, wrapped as [CLS] sentence [SEP]; `unit: instance`: the whole unmasked instance). Both views go
through the encoder in training mode, so they differ only by dropout. Each view is pooled ([CLS], or the
mean of the real tokens) and, during training, passed through a small MLP (dense + tanh, as SimCSE); the
loss is the cross entropy of cosine similarities / `temperature` between view 1 of text i and view 2 of
every text j of the batch, the target being j = i (in-batch negatives).

With `mlm` (or any objective that rewrites the input) the encoder's main pass sees masked tokens: MLM
reads that pass and SimCSE runs the encoder twice more on the unmasked text. Without masking and with
`unit: instance`, the main pass is the first view and SimCSE adds one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import Instance, InstanceTransform, TransformContext
from ..errors import ConfigError
from ..models.config import BertConfig
from ..utils.typed import Where, as_where, check_choice, check_fields
from .base import Objective, RunFacts, register

__all__ = ["SimcseOptions", "SimcseText", "SimCSE", "info_nce"]

UNITS = ("sentence", "instance")
POOLINGS = ("cls", "mean")
PAIR_FORMATS = ("segment_pair", "sentence_pair")


@dataclass
class SimcseOptions:
    """`objective_options.simcse`: temperature, what one text is, its length, the pooling and the MLP."""

    #: cosine similarities are divided by this before the softmax (SimCSE: 0.05)
    temperature: float = 0.05
    #: sentence: one random whole corpus sentence of the instance; instance: the whole instance
    unit: str = "sentence"
    #: tokens of a `sentence` text, [CLS] and [SEP] included (SimCSE trains on 32)
    max_tokens: int = 32
    #: cls: the [CLS] vector; mean: the mean of the text's tokens
    pooling: str = "cls"
    #: pass the pooled vector through dense + tanh during training (SimCSE's MLP; not exported)
    mlp: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        check_choice(str(where), "unit", self.unit, UNITS)
        check_choice(str(where), "pooling", self.pooling, POOLINGS)
        if not self.temperature > 0:
            raise ConfigError(f"{where}field 'temperature' must be positive, got {self.temperature}")
        if self.max_tokens < 3:
            raise ConfigError(f"{where}field 'max_tokens' must be >= 3 ([CLS], a token, [SEP]), got {self.max_tokens}")


def sentence_spans(original_ids: np.ndarray, sentence_starts: np.ndarray, specials: frozenset[int]
                   ) -> list[np.ndarray]:
    """The token positions of each sentence of an instance: from one sentence start to the next, special
    tokens left out; the text before the first start (a sentence cut by the length budget) counts as one."""
    content = ~np.isin(original_ids, list(specials))
    starts = np.flatnonzero(np.asarray(sentence_starts, bool) & content)
    bounds = [0, *starts.tolist(), len(original_ids)]
    spans = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        positions = np.arange(lo, hi)[content[lo:hi]]
        if positions.size:
            spans.append(positions)
    return spans


class SimcseText(InstanceTransform):
    """Adds `simcse_ids` (the unmasked text SimCSE encodes, [CLS] ... [SEP]) and its length `simcse_length`.

    `unit: sentence` draws one of the instance's sentences uniformly (seeded per instance and epoch) and
    keeps its first `max_tokens - 2` tokens; `unit: instance` copies the instance's original ids.
    """

    name = "simcse-text"
    scalar_fields = ("simcse_length",)

    def __init__(self, options: SimcseOptions, context: TransformContext) -> None:
        self.unit = options.unit
        self.max_tokens = int(options.max_tokens)
        self.cls, self.sep = context.cls_token_id, context.sep_token_id
        self.specials = frozenset({context.cls_token_id, context.sep_token_id, context.pad_token_id})
        self.row_fields = {"simcse_ids": context.pad_token_id}

    def __call__(self, instance: Instance, rng: np.random.Generator) -> Instance:
        original = np.asarray(instance["original_ids"], dtype=np.int64)
        if self.unit == "instance":
            ids = original.copy()
        else:
            spans = sentence_spans(original, instance["sentence_starts"], self.specials)
            body = original[spans[int(rng.integers(len(spans)))]] if spans else original[:0]
            ids = np.concatenate([[self.cls], body[:self.max_tokens - 2], [self.sep]]).astype(np.int64)
        instance["simcse_ids"] = ids
        instance["simcse_length"] = len(ids)
        return instance


def info_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross entropy of cos(query i, key j) / temperature over the keys, target key i (the first len(queries)
    keys are the positives; further keys, e.g. hard negatives, are extra columns). Returns (loss, logits)."""
    logits = F.cosine_similarity(queries.float()[:, None, :], keys.float()[None, :, :], dim=-1) / temperature
    target = torch.arange(queries.shape[0], device=queries.device)
    return F.cross_entropy(logits, target), logits


@register("simcse", options=SimcseOptions)
class SimCSE(Objective):
    conflicts = ()

    def __init__(self, config: BertConfig, encoder: nn.Module, options: SimcseOptions | None = None) -> None:
        super().__init__()
        self.options = options or SimcseOptions()
        self.temperature = float(self.options.temperature)
        # kept out of the module tree: the encoder's weights belong to the PretrainingModel, not to this head
        self._encoder = [encoder]
        self.dense = nn.Linear(config.hidden_size, config.hidden_size) if self.options.mlp else None

    @classmethod
    def instance_transform(cls, options: Any, context: TransformContext) -> InstanceTransform | None:
        return SimcseText(options or SimcseOptions(), context)

    @classmethod
    def check_run(cls, name: str, options: Any, run: RunFacts) -> None:
        if run.format in PAIR_FORMATS:
            raise ConfigError(f"objective '{name}' contrasts single texts, so it needs data.format full_sentences "
                              f"or doc_sentences, not the sentence-pair format {run.format!r}")
        extra = tuple(getattr(run.encoder, "token_inputs", ()))
        if extra:
            raise ConfigError(f"objective '{name}' re-encodes texts from their ids alone, so it needs an encoder "
                              f"without extra token inputs; {type(run.encoder).__name__} also takes {list(extra)}")
        sentences = getattr(run.corpus, "num_sentences", None)
        if sentences is not None and sentences < 2:
            raise ConfigError(f"objective '{name}' needs at least two sentences for in-batch negatives; the corpus "
                              f"has {sentences}")

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The text's vector: [CLS] or the masked mean, then the MLP while training."""
        if self.options.pooling == "cls":
            vector = hidden[:, 0]
        else:
            weights = mask.to(hidden.dtype)[..., None]
            vector = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        if self.dense is not None and self.training:
            vector = torch.tanh(self.dense(vector))
        return vector

    def _view(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self._encoder[0](ids, mask, torch.zeros_like(ids))
        return self.pool(out.last_hidden_state, mask)

    def forward(self, encoded, batch):
        ids = batch["simcse_ids"]
        lengths = batch["simcse_length"].to(ids.device)
        mask = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]).long()
        main = batch["input_ids"]
        reuse = (self.options.unit == "instance" and main.shape == ids.shape and torch.equal(main, ids)
                 and batch.get("position_ids") is None)
        if reuse:  # the main pass already encoded this text with dropout on: it is the first view
            first = self.pool(encoded.last_hidden_state, batch["attention_mask"])
        else:
            first = self._view(ids, mask)
        second = self._view(ids, mask)
        loss, logits = info_nce(first, second, self.temperature)
        target = torch.arange(logits.shape[0], device=logits.device)
        acc = (logits.argmax(-1) == target).float().mean().detach()
        return {"simcse": loss}, {"simcse_acc": acc, "simcse_reused_main_pass": torch.tensor(float(reuse))}
