"""InfoWord (Kong et al., 2020, "A Mutual Information Maximization Perspective of Language Representation
Learning"): Deep InfoMax between a sentence with an n-gram masked out and that n-gram encoded alone.

Data side (the transform): each instance gets one contiguous n-gram, n uniform in 1..`max_ngram`, at a start
drawn uniformly among the positions where n consecutive tokens are ordinary (not [CLS]/[SEP]) and left alone by
the masker (MLM label -100): so the n-gram and the masked-LM targets never overlap, and MLM labels stay as the
masker set them (the n-gram's positions are not MLM targets). When no such run of n tokens exists, n shrinks
by one until one does; an instance with no eligible token at all gets no n-gram and drops out of the loss.
The n-gram's positions become [MASK] in `input_ids`; `infoword_local` holds [CLS] n-gram [SEP] (original ids,
padded with -1 to the longest in the batch).

Model side: the global vector is the masked input's final [CLS] state, h_i; the local vector l_j is the
n-gram's [CLS] n-gram [SEP] row through the same encoder (a second, short pass), read at its [CLS]
(`local: cls`) or as the mean over the n-gram's tokens (`local: mean`). Scores s_ij = (W_g h_i + b_g) .
(W_l l_j + b_l); the loss is InfoNCE over the batch: for each instance i with an n-gram, cross-entropy of
row i of s over the instances j with an n-gram, target j = i (the other instances' n-grams are the
negatives), averaged over those instances.
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
from ..models.bert import BertModel
from ..models.config import BertConfig
from ..models.heads import IGNORE_INDEX
from ..utils.typed import Where, as_where, check_choice, check_fields
from .base import Objective, RunFacts, accuracy, register

LOCAL_FIELD = "infoword_local"
LENGTH_FIELD = "infoword_length"
START_FIELD = "infoword_start"


@dataclass
class InfoWordOptions:
    """`objective_options.infoword`: the longest n-gram and how its local vector is read."""

    #: n-gram lengths are uniform in 1..max_ngram
    max_ngram: int = 4
    #: local vector: the n-gram pass's [CLS] state ("cls") or the mean of its n-gram tokens ("mean")
    local: str = "cls"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        if self.max_ngram < 1:
            raise ConfigError(f"{where}field 'max_ngram' must be >= 1, got {self.max_ngram}")
        check_choice(where, "local", self.local, ("cls", "mean"))


class NgramMask(InstanceTransform):
    """Masks one n-gram per instance and keeps it, framed by [CLS] and [SEP], for the local pass."""

    name = "infoword"
    row_fields = {LOCAL_FIELD: -1}
    scalar_fields = (LENGTH_FIELD, START_FIELD)

    def __init__(self, max_ngram: int, cls_token_id: int, sep_token_id: int, mask_token_id: int) -> None:
        self.max_ngram = max_ngram
        self.cls, self.sep, self.mask = cls_token_id, sep_token_id, mask_token_id

    def pick(self, item: Instance, rng: np.random.Generator) -> tuple[int, int]:
        """(start, n) of the n-gram; n = 0 when the instance has no eligible token."""
        eligible = (np.asarray(item["maskable"], bool) & (np.asarray(item["labels"]) == IGNORE_INDEX))
        n = int(rng.integers(1, self.max_ngram + 1))
        while n > 0:
            if len(eligible) >= n:
                run = np.convolve(eligible.astype(np.int64), np.ones(n, np.int64), mode="valid")
                starts = np.flatnonzero(run == n)
                if len(starts):
                    return int(starts[rng.integers(len(starts))]), n
            n -= 1
        return 0, 0

    def __call__(self, item: Instance, rng: np.random.Generator) -> Instance:
        start, n = self.pick(item, rng)
        ids = np.array(item["input_ids"], dtype=np.int64)
        ngram = np.asarray(item["original_ids"][start:start + n], dtype=np.int64)
        ids[start:start + n] = self.mask
        item["input_ids"] = ids
        item[LOCAL_FIELD] = np.concatenate([[self.cls], ngram, [self.sep]]) if n else np.zeros(0, np.int64)
        item[LENGTH_FIELD] = n
        item[START_FIELD] = start
        return item


@register("infoword", options=InfoWordOptions)
class InfoWord(Objective):
    """InfoNCE between the masked sentence's [CLS] and its own n-gram, the batch's other n-grams as negatives."""

    def __init__(self, config: BertConfig, encoder: BertModel, options: InfoWordOptions | None = None) -> None:
        super().__init__()
        self.local = (options or InfoWordOptions()).local
        self.global_map = nn.Linear(config.hidden_size, config.hidden_size)
        self.local_map = nn.Linear(config.hidden_size, config.hidden_size)

    @classmethod
    def instance_transform(cls, options: Any, context: TransformContext) -> NgramMask:
        options = options or InfoWordOptions()
        return NgramMask(options.max_ngram, context.cls_token_id, context.sep_token_id, context.mask_token_id)

    @classmethod
    def check_run(cls, name: str, options: Any, run: RunFacts) -> None:
        options = options or InfoWordOptions()
        extra = tuple(getattr(run.encoder, "token_inputs", ()))
        if extra:
            raise ConfigError(f"objective '{name}' encodes each n-gram alone and cannot build the extra inputs "
                              f"{list(extra)} of {type(run.encoder).__name__} for it: use an encoder that reads "
                              "token ids only")
        if options.max_ngram + 2 > run.max_length:
            raise ConfigError(f"objective '{name}' needs data.max_length >= max_ngram + 2 "
                              f"({options.max_ngram + 2}) to mask an n-gram, got {run.max_length}")

    def prepare(self, model, batch):
        """The local pass: each [CLS] n-gram [SEP] row through the encoder being trained."""
        local = batch[LOCAL_FIELD]
        if local.shape[1] == 0:  # no instance of the batch has an n-gram
            return {**batch, "_infoword_local": None}
        mask = (local >= 0).long()
        ids = local.clamp(min=0)
        # a row without an n-gram is all padding; give it one visible token so the encoder sees no empty row
        mask[:, 0] = 1
        out = model.bert(ids, mask, torch.zeros_like(ids))
        hidden = out.last_hidden_state
        if self.local == "cls":
            vectors = hidden[:, 0]
        else:
            inner = mask.clone()
            inner[:, 0] = 0
            inner.scatter_(1, batch[LENGTH_FIELD][:, None] + 1, 0)  # the [SEP] after the n-gram
            weights = inner.to(hidden.dtype)
            vectors = (hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
        return {**batch, "_infoword_local": vectors}

    def scores(self, global_vectors: torch.Tensor, local_vectors: torch.Tensor) -> torch.Tensor:
        """s_ij = (W_g h_i + b_g) . (W_l l_j + b_l)."""
        return self.global_map(global_vectors).float() @ self.local_map(local_vectors).float().T

    def forward(self, encoded, batch):
        has = batch[LENGTH_FIELD] > 0
        local = batch["_infoword_local"]
        if local is None or not bool(has.any()):
            # a zero that keeps the graph through every parameter of the head (DDP expects each to get a gradient)
            zero = (encoded.last_hidden_state[:, 0].sum() + sum(p.sum() for p in self.parameters())) * 0.0
            return {"infoword": zero}, {"infoword_acc": zero.detach()}
        logits = self.scores(encoded.last_hidden_state[:, 0][has], local[has])
        target = torch.arange(logits.shape[0], device=logits.device)
        return {"infoword": F.cross_entropy(logits, target)}, {"infoword_acc": accuracy(logits, target)}
