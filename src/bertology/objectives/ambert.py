"""AMBERT pretraining: masked-LM on the fine-grained and on the coarse-grained sequence, one shared encoder.

The shared PretrainingModel cannot train two granularities, so the AMBERT family's registration is completed
here (models may not import training code) with its own pretraining: the coarse vocabulary built from the
training documents, this two-headed model, and the collator that adds the aligned coarse batch.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..data.coarse import AmbertCollator, CoarseVocabulary
from ..data.collate import PretrainingCollator
from ..errors import ConfigError
from ..models.ambert import AmbertConfig, AmbertModel
from ..models.family import FAMILIES
from ..models.heads import IGNORE_INDEX, MaskedLMHead
from ..models.pretrained import init_bert_weights
from ..tokenization.coarse import COARSE_VOCAB_FILE
from ..training.protocol import StepOutput
from .base import accuracy


class AmbertPretrainingModel(nn.Module):
    pair_task = None
    needs_case = False
    needs_masking = True

    def __init__(self, config: AmbertConfig) -> None:
        super().__init__()
        self.config = config
        self.ambert = AmbertModel(config, add_pooling_layer=False, unpad_inputs=True)
        self.fine_head = MaskedLMHead(config, self.ambert.fine.embeddings.word)
        self.coarse_head = MaskedLMHead(config.coarse(), self.ambert.coarse.embeddings.word)
        shared = {id(p) for p in self.ambert.parameters()}
        for head in (self.fine_head, self.coarse_head):
            init_bert_weights(head, config.initializer_range, keep=shared)

    def forward(self, **batch: Any) -> StepOutput:
        fine = self.ambert(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                   coarse_ids=batch["coarse_ids"], coarse_attention_mask=batch["coarse_attention_mask"],
                                   coarse_token_type_ids=batch["coarse_token_type_ids"])
        coarse = fine.coarse
        fine_logits, fine_loss = self.fine_head.logits_and_loss(fine.last_hidden_state, batch["labels"])
        coarse_logits, coarse_loss = self.coarse_head.logits_and_loss(coarse.last_hidden_state,
                                                                      batch["coarse_labels"])
        labels, coarse_labels = batch["labels"], batch["coarse_labels"]
        return StepOutput(
            {"mlm": fine_loss, "mlm_coarse": coarse_loss},
            {"mlm_acc": accuracy(fine_logits, labels[labels != IGNORE_INDEX]),
             "mlm_coarse_acc": accuracy(coarse_logits, coarse_labels[coarse_labels != IGNORE_INDEX])},
        )

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """The encoder and both embedding tables (our own layout; the MLM heads stay in the checkpoints)."""
        return self.ambert.save_pretrained(folder)


class AmbertPretraining:
    """AMBERT's side of a pretraining run (the FamilyPretraining hook of models/family.py)."""

    def __init__(self) -> None:
        self.vocab: CoarseVocabulary | None = None

    @classmethod
    def check(cls, objectives: list[str], where: str = "") -> None:
        if list(objectives) != ["mlm"]:
            raise ConfigError(f"{where}AMBERT pretrains with objectives {{mlm: 1.0}} (on both granularities)")

    def build_model(self, config: AmbertConfig, objectives: list[str], corpus: Any,
                    documents: np.ndarray) -> AmbertPretrainingModel:
        """The coarse vocabulary of the training documents (its size capped by the config, then set to what
        was found), and the model over both vocabularies."""
        self.check(objectives)
        self.vocab = CoarseVocabulary.build(corpus, documents, config.coarse_vocab_size)
        config.coarse_vocab_size = len(self.vocab)
        return AmbertPretrainingModel(config)

    def collator(self, collator: PretrainingCollator, tokenizer: Any, run_dir: str) -> AmbertCollator:
        """Adds the coarse batch to each fine one. The vocabulary is saved in the run folder, where the export
        finds it for the AMBERT tokenizer it saves beside the model (tokenization.save_for_model)."""
        if self.vocab is None:
            raise RuntimeError("build_model comes first: it builds the coarse vocabulary")
        self.vocab.save(Path(run_dir) / COARSE_VOCAB_FILE)
        return AmbertCollator(collator, self.vocab, tokenizer.mask_token_id)


FAMILIES.add("ambert", dataclasses.replace(FAMILIES["ambert"], pretraining=AmbertPretraining))
