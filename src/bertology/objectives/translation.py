"""Translation language modelling (XLM, Lample and Conneau 2019): masked-LM over a sentence and its translation.

Each input is one pair of a parallel corpus, [CLS] source [SEP] target [SEP] (the `parallel` input format),
masked on both sides by the run's masker, so a word hidden on one side can be read off the other. XLM's two
changes to the input are kept:

- language embeddings: the token type is the language id (0 for [CLS] and the source, 1 for the [SEP] that
  opens the target, the target and the last [SEP]), which reuses the segment-embedding table, so the model
  needs `type_vocab_size` >= 2;
- positions restart in each language's part (option `reset_positions`): [CLS] 0, source 1..n, then the
  middle [SEP] 0, target 1..m, last [SEP] m+1. As in XLM, where each sentence is `</s> w1 .. wn` with its
  leading delimiter at 0, both languages' first words sit at position 1, where BERT's single-sentence inputs
  put theirs too.

The loss is the masked-LM loss itself, computed exactly as `mlm` computes it (the same head, tied to the word
embeddings, at the masker's labels on both sides). So `tlm` replaces `mlm` rather than joining it: with both,
the same labels would be predicted twice by two heads. (XLM alternates MLM batches of monolingual text with
TLM batches; one run here reads one corpus.)

Export: `PretrainingModel.save_pretrained` writes a masked-LM folder only for a head named `mlm`, so a TLM
run's model folder holds the encoder (with the language embeddings); the TLM head stays in the checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..data.parallel import parallel_languages
from ..data.transforms import Instance, InstanceTransform, TransformContext
from ..errors import ConfigError
from ..models.bert import BertModel
from ..models.config import BertConfig
from ..models.heads import IGNORE_INDEX, MaskedLMHead
from ..utils.typed import Where, as_where, check_fields
from .base import Objective, RunFacts, accuracy, register

__all__ = ["RestartPositions", "TlmOptions", "TranslationLM", "restarted_positions"]

NAME = "tlm"


@dataclass
class TlmOptions:
    """`objective_options.tlm`."""

    #: positions count from 0 again where the target's part begins (XLM); false: 0..length-1 throughout
    reset_positions: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        check_fields(self, as_where(where))


def restarted_positions(token_type_ids: np.ndarray) -> np.ndarray:
    """Position of each token within its run of equal token types (language ids): 0 where a run begins."""
    types = np.asarray(token_type_ids)
    n = len(types)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], types[1:] != types[:-1]]))
    lengths = np.diff(np.append(starts, n))
    return (np.arange(n) - np.repeat(starts, lengths)).astype(np.int64)


class RestartPositions(InstanceTransform):
    """Sets `position_ids` to restart at 0 at each language's part (no randomness: `rng` is unused)."""

    name: ClassVar[str] = "tlm_positions"

    def __call__(self, instance: Instance, rng: np.random.Generator) -> Instance:
        return {**instance, "position_ids": restarted_positions(instance["token_type_ids"])}


@register(NAME, options=TlmOptions)
class TranslationLM(Objective):
    needs_masking = True
    conflicts = ("mlm", "rtd")
    conflict_reason = ("'tlm' is the masked-LM loss over both sides of each pair: with 'mlm' the same labels "
                       "would be predicted twice by two heads, and 'rtd' replaces the masked tokens it predicts")

    def __init__(self, config: BertConfig, encoder: BertModel, options: TlmOptions | None = None) -> None:
        super().__init__()
        self.reset_positions = (options or TlmOptions()).reset_positions
        self.head = MaskedLMHead(config, encoder.embeddings.word)

    @classmethod
    def instance_transform(cls, options: Any, context: TransformContext) -> InstanceTransform | None:
        """Restarted positions, unless `reset_positions` is off."""
        return RestartPositions() if (options or TlmOptions()).reset_positions else None

    @classmethod
    def check_run(cls, name: str, options: Any, run: RunFacts) -> None:
        """A parallel corpus, read in the `parallel` format, and one language embedding per language."""
        languages = parallel_languages(getattr(run.corpus, "meta", {}) or {})
        if languages is None:
            raise ConfigError(f"objective '{name}' needs parallel text: prepare the corpus with "
                              "--input-format parallel")
        if run.format != "parallel":
            raise ConfigError(f"objective '{name}' needs data.format 'parallel' (one sentence pair an instance, "
                              f"the language as token type), not '{run.format}'")
        segment = getattr(getattr(run.encoder, "embeddings", None), "segment", None)
        have = 0 if segment is None else segment.num_embeddings
        needed = max(2, len(languages))
        if have < needed:
            raise ConfigError(f"objective '{name}' needs a language embedding for each of the corpus's {needed} "
                              f"languages ({', '.join(languages)}): the segment table is reused for them, set "
                              f"model.type_vocab_size to at least {needed} (this model has {have})")

    def prepare(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        """Shift the restarted positions to where the encoder's own count starts (0 for BERT, after the
        padding index for RoBERTa), so a family's position convention is kept."""
        if not self.reset_positions or "position_ids" not in batch:
            return batch
        ids = batch["input_ids"]
        first = model.bert.position_ids_for(ids[:, :1])[:, :1]
        if bool((first == 0).all()):
            return batch
        real = batch["attention_mask"].bool()
        default = model.bert.position_ids_for(ids)
        return {**batch, "position_ids": torch.where(real, batch["position_ids"] + first, default)}

    def forward(self, encoded, batch):
        labels = batch["labels"]
        logits, loss = self.head.logits_and_loss(encoded.last_hidden_state, labels)
        return {NAME: loss}, {f"{NAME}_acc": accuracy(logits, labels[labels != IGNORE_INDEX])}
