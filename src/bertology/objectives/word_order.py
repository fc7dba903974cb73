"""StructBERT's word structural objective (Wang et al., 2020): shuffle a few short windows of tokens and
predict, at each shuffled position, the token that was there.

The transform draws windows of `k` consecutive eligible tokens: ordinary tokens (not [CLS]/[SEP]/padding,
so no window crosses a separator) that the masker left alone (MLM label -100, so a position is never both a
masked-LM target and a shuffled one). With N eligible tokens it shuffles w windows, w the stochastic rounding
of rate * N / k, i.e. a share `rate` of the non-overlapping k-token windows the eligible tokens make, so about
a share `rate` of them is shuffled. Windows are taken greedily in a uniformly random order of all valid start
positions, skipping any that overlaps one already taken (fewer are taken when no room is left). Each taken
window gets a permutation drawn uniformly from the k!-1 that are not the identity.

Targets (`word_order_labels`): the original id at every position of a shuffled window, including a
position the permutation happens to leave in place (the model must also tell that it is right), -100
elsewhere. `original_ids` keeps the unshuffled text. The head is a masked-LM head of its own whose decoder is
tied to the word embeddings, as StructBERT predicts the original tokens through the vocabulary softmax.
"""

from __future__ import annotations

import math
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
from .sentence_reordering import permutation_from_rank

LABEL_FIELD = "word_order_labels"


@dataclass
class WordOrderOptions:
    """`objective_options.word_order`: the window length k and the share of k-token windows shuffled."""

    #: tokens per shuffled window (StructBERT: trigrams)
    k: int = 3
    #: share of the non-overlapping k-token windows of eligible (ordinary, unmasked) tokens that are shuffled
    rate: float = 0.05

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        if not 2 <= self.k <= 8:
            raise ConfigError(f"{where}field 'k' must lie in 2..8 (a window of one cannot be shuffled), got {self.k}")
        if not 0 < self.rate <= 1:
            raise ConfigError(f"{where}field 'rate' must lie in (0, 1], got {self.rate}")


class WindowShuffle(InstanceTransform):
    """Shuffles windows of k eligible tokens in `input_ids`; their original ids go to `word_order_labels`."""

    name = "word_order"
    token_fields = {LABEL_FIELD: IGNORE_INDEX}

    def __init__(self, k: int, rate: float) -> None:
        self.k = k
        self.rate = rate

    def eligible(self, item: Instance) -> np.ndarray:
        """Ordinary tokens the masker did not pick."""
        return np.asarray(item["maskable"], bool) & (np.asarray(item["labels"]) == IGNORE_INDEX)

    def windows(self, eligible: np.ndarray, rng: np.random.Generator) -> list[int]:
        """Start positions of the windows to shuffle (non-overlapping, each k eligible tokens)."""
        k = self.k
        want = self.rate * int(eligible.sum()) / k
        count = int(want) + int(rng.random() < want - int(want))
        if count == 0 or len(eligible) < k:
            return []
        run = np.convolve(eligible.astype(np.int64), np.ones(k, np.int64), mode="valid")
        starts = np.flatnonzero(run == k)
        taken = np.zeros(len(eligible), bool)
        chosen: list[int] = []
        for s in rng.permutation(starts):
            if len(chosen) == count:
                break
            if not taken[s:s + k].any():
                taken[s:s + k] = True
                chosen.append(int(s))
        return sorted(chosen)

    def __call__(self, item: Instance, rng: np.random.Generator) -> Instance:
        ids = np.array(item["input_ids"], dtype=np.int64)
        labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
        for s in self.windows(self.eligible(item), rng):
            perm = np.asarray(permutation_from_rank(int(rng.integers(1, math.factorial(self.k))), self.k))
            labels[s:s + self.k] = item["original_ids"][s:s + self.k]
            ids[s:s + self.k] = ids[s + perm]
        item["input_ids"] = ids
        item[LABEL_FIELD] = labels
        return item


@register("word_order", options=WordOrderOptions)
class WordOrder(Objective):
    """Cross-entropy of the original token at every shuffled position (and nowhere else)."""

    def __init__(self, config: BertConfig, encoder: BertModel, options: WordOrderOptions | None = None) -> None:
        super().__init__()
        self.head = MaskedLMHead(config, encoder.embeddings.word)

    @classmethod
    def instance_transform(cls, options: Any, context: TransformContext) -> WindowShuffle:
        options = options or WordOrderOptions()
        return WindowShuffle(options.k, options.rate)

    @classmethod
    def check_run(cls, name: str, options: Any, run: RunFacts) -> None:
        k = (options or WordOrderOptions()).k
        if run.max_length - 3 < k:
            raise ConfigError(f"objective '{name}' needs inputs longer than its {k}-token windows: "
                              f"data.max_length {run.max_length} leaves no room for one")

    def forward(self, encoded, batch):
        labels = batch[LABEL_FIELD]
        logits, loss = self.head.logits_and_loss(encoded.last_hidden_state, labels)
        return {"word_order": loss}, {"word_order_acc": accuracy(logits, labels[labels != IGNORE_INDEX])}
