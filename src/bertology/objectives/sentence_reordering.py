"""Sentence reordering (ERNIE 2.0, Sun et al. 2020): cut the input into segments, shuffle them, and let the
[CLS] vector tell which permutation was applied.

The transform splits the body of each instance (the tokens between [CLS] and the final [SEP]) into k segments,
k uniform in 1..m, then puts them back in a uniformly random order. Cuts fall at sentence starts when the body
holds at least k-1 of them after its first token (k-1 of those, drawn uniformly without replacement); otherwise
at k-1 distinct token positions drawn uniformly from the body (so a segment may then begin inside a word or a
sentence). A body shorter than k tokens is cut into as many one-token segments as it has tokens. With
`full_sentences`, a document-boundary [SEP] inside the body moves with its segment.

Every per-token field moves with its token (ids, masked-LM labels, word and sentence starts, case labels,
pinyin, and any 1-D per-token array an earlier transform added); `position_ids` stay with the slots. A
transform that records positions (row fields) must therefore come after this one in the objectives' order.

Classes: the pair (k, permutation) becomes one index among sum_{j=1..m} j! (9 for m=3):
`class = sum_{j<k} j! + rank(perm)`, where `perm[i]` is the original segment placed i-th and `rank` is its
lexicographic rank among the permutations of range(k) (identity 0, reversed k!-1). For m=3: class 0 is k=1;
1, 2 are k=2 in order and swapped; 3..8 are k=3 with (0,1,2), (0,2,1), (1,0,2), (1,2,0), (2,0,1), (2,1,0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import nn

from ..data.transforms import TOKEN_FIELDS, Instance, InstanceTransform, TransformContext
from ..errors import ConfigError
from ..models.bert import BertModel
from ..models.config import BertConfig
from ..utils.typed import Where, as_where, check_fields
from .base import Objective, RunFacts, accuracy, register

#: per-token fields that travel with their token (position_ids does not: positions belong to the slots)
MOVING_FIELDS = (*TOKEN_FIELDS, "case_labels", "pinyin_ids")
LABEL_FIELD = "sentence_reordering_label"


def permutation_rank(perm: Sequence[int]) -> int:
    """Lexicographic rank of `perm` among the permutations of range(len(perm)) (identity: 0)."""
    rest = list(range(len(perm)))
    rank = 0
    for i, p in enumerate(perm):
        j = rest.index(int(p))
        rank += j * math.factorial(len(perm) - 1 - i)
        rest.pop(j)
    return rank


def permutation_from_rank(rank: int, k: int) -> tuple[int, ...]:
    """The permutation of range(k) with lexicographic rank `rank` (inverse of `permutation_rank`)."""
    if not 0 <= rank < math.factorial(k):
        raise ValueError(f"rank {rank} out of range for {k} items")
    rest, out = list(range(k)), []
    for i in range(k):
        j, rank = divmod(rank, math.factorial(k - 1 - i))
        out.append(rest.pop(j))
    return tuple(out)


def num_classes(max_segments: int) -> int:
    """sum_{k=1..m} k!: every (segment count, permutation) pair."""
    return sum(math.factorial(k) for k in range(1, max_segments + 1))


def class_index(perm: Sequence[int]) -> int:
    """The class of a permutation of len(perm) segments: the classes of fewer segments first, then its rank."""
    return num_classes(len(perm) - 1) + permutation_rank(perm)


def class_permutation(index: int) -> tuple[int, ...]:
    """The permutation a class index stands for (inverse of `class_index`)."""
    k = 1
    while index >= math.factorial(k):
        index -= math.factorial(k)
        k += 1
    return permutation_from_rank(index, k)


@dataclass
class SentenceReorderingOptions:
    """`objective_options.sentence_reordering`: the largest number of segments m (classes: sum of k!, k<=m)."""

    max_segments: int = 3

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        if not 1 <= self.max_segments <= 5:
            raise ConfigError(f"{where}field 'max_segments' must lie in 1..5 (sum of k! classes), "
                              f"got {self.max_segments}")


class SegmentShuffle(InstanceTransform):
    """Cuts the body into k segments and permutes them; records the class in `sentence_reordering_label`."""

    name = "sentence_reordering"
    scalar_fields = (LABEL_FIELD,)

    def __init__(self, max_segments: int, sep_token_id: int) -> None:
        self.max_segments = max_segments
        self.sep = sep_token_id

    def body(self, item: Instance) -> tuple[int, int]:
        """[start, end) of the body: after [CLS], before the final [SEP] (the last token)."""
        n = len(item["input_ids"])
        end = n - 1 if n > 1 and int(item["input_ids"][-1]) == self.sep else n
        return 1, max(1, end)

    def cuts(self, item: Instance, k: int, rng: np.random.Generator) -> np.ndarray:
        """k-1 sorted cut positions (absolute): sentence starts when enough, else random token positions."""
        start, end = self.body(item)
        marks = np.asarray(item.get("sentence_starts", np.zeros(end, bool)), bool)
        starts = np.flatnonzero(marks[start + 1:end]) + start + 1
        if len(starts) >= k - 1:
            return np.sort(rng.choice(starts, size=k - 1, replace=False))
        return np.sort(rng.choice(np.arange(start + 1, end), size=k - 1, replace=False))

    def __call__(self, item: Instance, rng: np.random.Generator) -> Instance:
        start, end = self.body(item)
        k = int(rng.integers(1, self.max_segments + 1))
        k = max(1, min(k, end - start))
        bounds = [start, *self.cuts(item, k, rng).tolist(), end] if k > 1 else [start, end]
        perm = tuple(int(p) for p in rng.permutation(k))
        order = np.concatenate([np.arange(start)] + [np.arange(bounds[p], bounds[p + 1]) for p in perm]
                               + [np.arange(end, len(item["input_ids"]))])
        for field, value in list(item.items()):
            if not isinstance(value, np.ndarray) or value.ndim == 0 or len(value) != len(order):
                continue
            # the known per-token fields, and 1-D token fields of transforms that ran before this one
            if field in MOVING_FIELDS or (value.ndim == 1 and field != "position_ids"):
                item[field] = value[order]
        item[LABEL_FIELD] = class_index(perm)
        return item


@register("sentence_reordering", options=SentenceReorderingOptions)
class SentenceReordering(Objective):
    """Classifies the segment permutation of each instance from the pooled [CLS] vector.

    The label lives on [CLS], as a sentence-pair task's does, so it cannot be trained with one (and the
    pair formats it would need for them are refused before training)."""

    needs_pooler = True
    conflicts = ("nsp", "sop", "order", "distance")
    conflict_reason = "both would read their label from the one [CLS] vector, and reordering needs single segments"

    def __init__(self, config: BertConfig, encoder: BertModel,
                 options: SentenceReorderingOptions | None = None) -> None:
        super().__init__()
        options = options or SentenceReorderingOptions()
        self.classes = num_classes(options.max_segments)
        self.head = nn.Linear(config.hidden_size, self.classes)

    @classmethod
    def instance_transform(cls, options: Any, context: TransformContext) -> SegmentShuffle:
        options = options or SentenceReorderingOptions()
        return SegmentShuffle(options.max_segments, context.sep_token_id)

    @classmethod
    def check_run(cls, name: str, options: Any, run: RunFacts) -> None:
        if run.format not in ("doc_sentences", "full_sentences"):
            raise ConfigError(f"objective '{name}' needs single-segment inputs (data.format doc_sentences or "
                              f"full_sentences) to cut into segments and permute, not '{run.format}'")

    def forward(self, encoded, batch):
        logits = self.head(encoded.pooler_output)
        target = batch[LABEL_FIELD]
        return ({"sentence_reordering": F.cross_entropy(logits.float(), target)},
                {"sentence_reordering_acc": accuracy(logits, target)})
