"""Pseudo-masked language modelling (UniLMv2, Bao et al. 2020): autoencoding and partially autoregressive
prediction of the same masked spans, in one pass of the encoder.

The masker's labels choose what is predicted: each maximal run of labelled positions is one span. The
instance transform (`PseudoMaskTransform`, run by the collator) then

- keeps the ordinary part, with every labelled token shown as [MASK] (the masker's random/kept 10% would
  let a pseudo-mask read the token it must predict), so the ordinary `mlm` objective predicts there as usual;
- draws a factorisation order of the spans (uniform over permutations) and appends, span by span in that
  order, a copy of each span's original tokens, then one pseudo-mask [P] per span token; a copy and a [P]
  take the position id of the token they stand for;
- builds the per-query attention mask (1 = may attend): ordinary tokens see the ordinary part only; the
  copies of span s see the ordinary part, the copies of spans before s and of s itself; the [P]s of span s
  see the ordinary part (its [MASK]s included), the copies of spans before s, and the [P]s of s; nothing
  sees a later span, nor a span's [P]s its own copies.

[P] has no vocabulary entry: it is the [MASK] id with token-type id `pseudo_token_type` (default 2), so the
learned "pseudo" vector is that row of the segment embedding (the model needs `type_vocab_size` above it).
Appended positions have `labels` -100, so `mlm` reads only the ordinary part and both objectives train
side by side (`objectives: {mlm: 1.0, pmlm: 1.0}`); `pmlm` returns the cross-entropy at the [P]s. The
sequence grows by twice the number of predicted tokens: `max_predictions` caps them per instance (whole
spans, in factorisation order; a span that does not fit is left out of the pseudo-masked part and stays a
[MASK] that `mlm` alone predicts), and the run is refused unless `data.max_length + 2 * max_predictions`
fits the encoder's positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.transforms import Instance, InstanceTransform, TransformContext
from ..errors import ConfigError
from ..models.bert import BertModel
from ..models.config import BertConfig
from ..models.heads import IGNORE_INDEX, MaskedLMHead
from ..utils.typed import Where, as_where, check_fields
from .base import Objective, RunFacts, accuracy, register

#: the square field the transform adds: (n, n), 1 where query i may attend key j
MASK_FIELD = "pmlm_attention_mask"
#: the token field of the targets at [P] positions (-100 elsewhere)
LABEL_FIELD = "pmlm_labels"


@dataclass
class PmlmOptions:
    """`objective_options.pmlm`: the cap on pseudo-masked tokens and the token type that marks [P]."""

    #: most tokens predicted by [P]s per instance (each appends 2 tokens: a copy and a [P])
    max_predictions: int = 20
    #: token-type id of [P] (its segment-embedding row is the learned pseudo-mask vector)
    pseudo_token_type: int = 2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        if self.max_predictions < 1:
            raise ConfigError(f"{where}field 'max_predictions' must be >= 1, got {self.max_predictions}")
        if self.pseudo_token_type < 0:
            raise ConfigError(f"{where}field 'pseudo_token_type' must be >= 0, got {self.pseudo_token_type}")


def masked_spans(labels: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of labelled positions (label != -100), as [start, end) in sequence order."""
    labelled = np.concatenate([[False], np.asarray(labels) != IGNORE_INDEX, [False]])
    edges = np.flatnonzero(labelled[1:] != labelled[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def choose_spans(spans: list[tuple[int, int]], max_predictions: int, rng: Any) -> list[tuple[int, int]]:
    """The spans in a uniformly random factorisation order, keeping each that still fits the cap (whole spans:
    one longer than the room left is skipped, a later shorter one may still fit)."""
    chosen, total = [], 0
    for i in rng.permutation(len(spans)):
        start, end = spans[int(i)]
        if total + end - start <= max_predictions:
            chosen.append((start, end))
            total += end - start
    return chosen


def pseudo_mask_layout(n: int, chosen: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For spans in factorisation order: the source position of each appended token (copies, then [P]s), the
    span rank of each appended token, and the (n + 2k, n + 2k) attention mask described in the module doc."""
    source = np.array([p for start, end in chosen for p in range(start, end)], dtype=np.int64)
    rank = np.array([r for r, (start, end) in enumerate(chosen) for _ in range(start, end)], dtype=np.int64)
    k = len(source)
    mask = np.zeros((n + 2 * k, n + 2 * k), dtype=np.int64)
    mask[:, :n] = 1  # everyone sees the ordinary part; the ordinary part sees nothing appended
    copies, pseudo = slice(n, n + k), slice(n + k, n + 2 * k)
    mask[copies, copies] = rank[None, :] <= rank[:, None]  # a copy: spans before it, and its own
    mask[pseudo, copies] = rank[None, :] < rank[:, None]  # a [P]: copies of earlier spans only
    mask[pseudo, pseudo] = rank[None, :] == rank[:, None]  # ... and its own span's [P]s
    return source, rank, mask


class PseudoMaskTransform(InstanceTransform):
    """Appends the copies and [P]s of the chosen spans and builds the per-query attention mask."""

    name = "pmlm"
    token_fields = {LABEL_FIELD: IGNORE_INDEX}
    square_fields = {MASK_FIELD: 0}

    def __init__(self, mask_token_id: int, max_predictions: int = 20, pseudo_token_type: int = 2) -> None:
        self.mask_token_id = int(mask_token_id)
        self.max_predictions = int(max_predictions)
        self.pseudo_token_type = int(pseudo_token_type)

    def __call__(self, instance: Instance, rng: np.random.Generator) -> Instance:
        labels = np.asarray(instance["labels"], dtype=np.int64)
        n = len(labels)
        chosen = choose_spans(masked_spans(labels), self.max_predictions, rng)
        source, _, mask = pseudo_mask_layout(n, chosen)
        k = len(source)
        original = np.asarray(instance["original_ids"], dtype=np.int64)
        ids = np.where(labels != IGNORE_INDEX, self.mask_token_id, np.asarray(instance["input_ids"], np.int64))
        positions = np.asarray(instance.get("position_ids", np.arange(n)), dtype=np.int64)
        types = np.asarray(instance["token_type_ids"], dtype=np.int64)
        word_starts = np.asarray(instance["word_starts"], dtype=bool)
        nothing = np.zeros(2 * k, dtype=bool)
        out = dict(instance)
        out["input_ids"] = np.concatenate([ids, original[source], np.full(k, self.mask_token_id, np.int64)])
        out["original_ids"] = np.concatenate([original, original[source], original[source]])
        out["labels"] = np.concatenate([labels, np.full(2 * k, IGNORE_INDEX, np.int64)])
        out[LABEL_FIELD] = np.concatenate([np.full(n + k, IGNORE_INDEX, np.int64), original[source]])
        out["token_type_ids"] = np.concatenate([types, types[source], np.full(k, self.pseudo_token_type, np.int64)])
        out["position_ids"] = np.concatenate([positions, positions[source], positions[source]])
        out["maskable"] = np.concatenate([np.asarray(instance["maskable"], dtype=bool), nothing])
        out["word_starts"] = np.concatenate([word_starts, word_starts[source], word_starts[source]])
        if "sentence_starts" in instance:
            out["sentence_starts"] = np.concatenate([np.asarray(instance["sentence_starts"], dtype=bool), nothing])
        if "case_labels" in instance:
            out["case_labels"] = np.concatenate([np.asarray(instance["case_labels"], dtype=np.int64),
                                                 np.full(2 * k, IGNORE_INDEX, np.int64)])
        if "pinyin_ids" in instance:  # a corpus recorded with pinyin, read by a family that ignores it
            pinyin = np.asarray(instance["pinyin_ids"], dtype=np.int64)
            out["pinyin_ids"] = np.concatenate([pinyin, np.zeros((2 * k, *pinyin.shape[1:]), np.int64)])
        out[MASK_FIELD] = mask
        return out


@register("pmlm", options=PmlmOptions)
class PseudoMaskedLM(Objective):
    """Cross-entropy of the original tokens at the [P] positions, under the transform's attention mask."""

    needs_masking = True
    conflicts = ("rtd",)
    conflict_reason = ("'rtd' runs its generator on the padding mask, which would let its [MASK]s read the "
                       "appended copies of the masked tokens")

    def __init__(self, config: BertConfig, encoder: BertModel, options: PmlmOptions | None = None) -> None:
        super().__init__()
        # Its own transform and bias; the decoder is tied to the word embeddings like mlm's.
        self.head = MaskedLMHead(config, encoder.embeddings.word)

    @classmethod
    def instance_transform(cls, options: PmlmOptions | None, context: TransformContext) -> InstanceTransform:
        options = options or PmlmOptions()
        return PseudoMaskTransform(context.mask_token_id, options.max_predictions, options.pseudo_token_type)

    @classmethod
    def check_run(cls, name: str, options: PmlmOptions | None, run: RunFacts) -> None:
        options = options or PmlmOptions()
        encoder = run.encoder
        if type(encoder).position_ids_for is not BertModel.position_ids_for or encoder.token_inputs:
            raise ConfigError(f"objective '{name}' gives its pseudo-masks the position ids of the tokens they stand "
                              f"for and appends plain token ids: it needs an encoder with BERT's positions and no "
                              f"extra token inputs, not {type(encoder).__name__}")
        segment = getattr(encoder.embeddings, "segment", None)
        rows = segment.num_embeddings if segment is not None else 0
        if options.pseudo_token_type >= rows:
            raise ConfigError(f"objective '{name}' marks pseudo-masks with token type {options.pseudo_token_type}: "
                              f"it needs model.type_vocab_size >= {options.pseudo_token_type + 1} "
                              f"(the model has {rows})")
        longest = run.max_length + 2 * options.max_predictions
        if longest > encoder.max_sequence_length:
            raise ConfigError(f"objective '{name}' appends up to 2 * max_predictions = {2 * options.max_predictions} "
                              f"tokens to instances of data.max_length = {run.max_length}: {longest} exceeds the "
                              f"encoder's {encoder.max_sequence_length} positions; lower data.max_length or "
                              f"objective_options.{name}.max_predictions")

    def prepare(self, model, batch):
        if MASK_FIELD not in batch:
            raise ValueError(f"the pmlm objective needs the batch field '{MASK_FIELD}' (its instance transform "
                             "builds it; was the collator given the model's instance_transforms?)")
        # the encoder runs once, under the per-query mask; the padding mask stays readable
        return {**batch, "padding_mask": batch["attention_mask"], "attention_mask": batch[MASK_FIELD]}

    def forward(self, encoded, batch):
        labels = batch[LABEL_FIELD]
        logits, loss = self.head.logits_and_loss(encoded.last_hidden_state, labels)
        return {"pmlm": loss}, {"pmlm_acc": accuracy(logits, labels[labels != IGNORE_INDEX])}


__all__ = ["PmlmOptions", "PseudoMaskTransform", "PseudoMaskedLM", "choose_spans", "masked_spans",
           "pseudo_mask_layout"]
