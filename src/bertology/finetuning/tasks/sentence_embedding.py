"""Sentence embeddings trained on pairs (supervised SimCSE, Gao et al. 2021): `kind: sentence_embedding`.

Rows are JSONL ``{"text": anchor, "positive": ..., "negative": optional hard negative, "score": optional}``.
Each text of a row is one encoder row (grouped like multiple-choice choices); the head pools it (``head:
pooling: mean`` or ``cls``) and projects it to `EMBEDDING_DIM` (256) numbers: that is the embedding. Training minimises
InfoNCE: cos(anchor i, positive j) / `temperature` over the batch's positives (in-batch negatives) and its
hard negatives (extra columns), the target being positive i. A dev or test file is scored by Spearman's
rho of cos(text, positive) against "score" when its rows have scores, else by retrieval: every text
ranks all distinct positives of the file (accuracy@1, accuracy@k, MRR).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ...analysis.embeddings_eval import retrieval_scores, similarity_spearman
from ...errors import ConfigError, DataError
from ...objectives.contrastive import info_nce
from ..encoding import BOOKKEEPING, Features
from ..examples import BadRow, Example, require_text
from .base import TASK_KINDS, TaskKind
from .multiple_choice import flatten_groups, pad_choices
from .regression import number

if TYPE_CHECKING:
    from ..data import Reader
    from ..labels import LabelSet
    from ..model import HeadConfig, HeadOptions
    from ..taskdata import TaskData

__all__ = ["EMBEDDING_DIM", "SentenceEmbedding", "SentenceEmbeddingOptions"]

#: width of the embedding: the head's linear projection of the pooled vector
EMBEDDING_DIM = 256


@dataclass
class SentenceEmbeddingOptions:
    """The kind's options, written beside the task's other fields."""

    #: cosine similarities are divided by this in the InfoNCE loss (SimCSE: 0.05)
    temperature: float = 0.05
    #: retrieval is also scored as accuracy@k (besides accuracy@1 and MRR)
    k: int = 5
    #: column names of the positive, the optional hard negative and the optional similarity score
    positive: str = "positive"
    negative: str = "negative"
    score: str = "score"

    def validate(self, where: str = "") -> None:
        if not self.temperature > 0:
            raise ConfigError(f"{where}field 'temperature' must be positive, got {self.temperature}")
        if self.k < 1:
            raise ConfigError(f"{where}field 'k' must be >= 1, got {self.k}")


def _optional_text(row: Mapping[str, Any], column: str, what: str) -> str | None:
    value = row.get(column)
    return None if value is None or value == "" else require_text(value, what)


@TASK_KINDS.register("sentence_embedding", options=SentenceEmbeddingOptions)
class SentenceEmbedding(TaskKind):
    """A text, its positive and an optional hard negative, one encoder row each; InfoNCE over the batch."""

    suffixes = (".jsonl",)
    target_keys = ()

    @property
    def opts(self) -> SentenceEmbeddingOptions:
        return self.options or SentenceEmbeddingOptions()

    # ------------------------------------------------------------------------------------------ reading
    def row(self, reader: Reader, row: Mapping[str, Any], source: str) -> Example:
        o = self.opts
        text = require_text(reader.need(row, reader.columns.text, "text", source), "text")
        positive = _optional_text(row, o.positive, "positive")
        if positive is None and reader.require_labels:
            raise reader.missing(source, o.positive, "positive", list(row),
                                 "a sentence_embedding training or evaluation row needs a positive text")
        negative = _optional_text(row, o.negative, "negative")
        if negative is not None and positive is None:
            raise BadRow("negative without positive", "a hard negative needs a positive beside it")
        score = number(row.get(o.score), False)
        views = 1 + (positive is not None) + (negative is not None)
        first = reader.state.setdefault("views", (views, score is not None, source))
        if (views, score is not None) != first[:2]:
            raise BadRow("columns differ", f"{views} texts{' and a score' if score is not None else ''}, but "
                                           f"the first row ({first[2]}) has {first[0]} texts"
                                           f"{' and a score' if first[1] else ''}; every row needs the same columns")
        return Example(text=text, text_pair=positive, choices=[negative] if negative else None, label=score,
                       id=reader.ident(row), source=source)

    # ------------------------------------------------------------------------------- features, batches
    def encode(self, examples: Sequence[Example], tokenizer: Any, labels: LabelSet | None,
               max_length: int) -> Features:
        texts: list[str] = []
        counts = []
        for e in examples:
            views = [e.text, *([e.text_pair] if e.text_pair is not None else []), *(e.choices or [])]
            if not all(isinstance(v, str) for v in views):
                raise DataError(f"{e.source}: a sentence_embedding example needs texts")
            texts.extend(views)  # type: ignore[arg-type]
            counts.append(len(views))
        if len(set(counts)) > 1:
            raise DataError("sentence_embedding examples of one file must all have the same texts (text, positive, "
                            f"negative); got {sorted(set(counts))} texts per example")
        encoded = tokenizer(texts, max_length=max_length, truncation=True, padding=False, return_tensors=None)
        features, row, truncated = [], 0, 0
        for index, count in enumerate(counts):
            rows = range(row, row + count)
            row += count
            feature: dict[str, Any] = {key: [values[r] for r in rows] for key, values in encoded.items()
                                       if key not in BOOKKEEPING}
            truncated += sum(len(ids) >= max_length for ids in feature["input_ids"])
            feature["example_index"] = index
            features.append(feature)
        return Features(features, {"examples": len(examples), "features": len(features), "at_max_length": truncated})

    def pad_inputs(self, values: list[Any], pad: int, key: str) -> torch.Tensor:
        return pad_choices(values, pad, key)

    def group(self, inputs: dict[str, Any], cached: torch.Tensor | None
              ) -> tuple[dict[str, Any], torch.Tensor | None, int | None]:
        return flatten_groups(inputs, cached)

    def ungroup(self, logits: torch.Tensor, groups: int | None) -> torch.Tensor:
        return logits.view(-1, groups or 1, logits.shape[-1])

    # -------------------------------------------------------------------------------------------- head
    def outputs(self, head: HeadConfig) -> int:
        # the head builds its kind without the task's options, so the width is the kind's, not an option
        return EMBEDDING_DIM

    def check_head(self, head: HeadOptions, where: str = "") -> None:
        super().check_head(head, where)
        if head.pooling == "max":
            raise ConfigError(f"{where}field 'pooling': kind 'sentence_embedding' pools with cls or mean "
                              "(or auto/pooler), not max")

    def loss(self, head: HeadConfig, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """InfoNCE of each text against the batch's positives, then its hard negatives; None for texts alone."""
        if logits.dim() != 3 or logits.shape[1] < 2:
            return None, {}
        keys = torch.cat([logits[:, 1], logits[:, 2:].reshape(-1, logits.shape[-1])])
        loss, sims = info_nce(logits[:, 0], keys, self.opts.temperature)
        target = torch.arange(sims.shape[0], device=sims.device)
        return loss, {"accuracy": (sims.argmax(-1) == target).float().mean().detach()}

    def divergence(self, head: HeadOptions | None, clean: torch.Tensor, perturbed: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
        return (1 - F.cosine_similarity(perturbed.float(), clean.float(), dim=-1)).mean()

    # ------------------------------------------------------------------------------------- predictions
    def decode(self, task: TaskData, split: str, logits: list[np.ndarray]) -> list[dict[str, Any]]:
        """Per example: the embedding of its text (and of its positive and negative), and cos(text, positive)."""
        out = []
        for row in logits:
            row = np.asarray(row, dtype=np.float64)
            item: dict[str, Any] = {"embedding": row[0].round(6).tolist()}
            if len(row) > 1:
                item["positive"] = row[1].round(6).tolist()
                norms = np.linalg.norm(row[0]) * np.linalg.norm(row[1])
                item["cosine"] = float(row[0] @ row[1] / norms) if norms > 0 else 0.0
            if len(row) > 2:
                item["negative"] = row[2].round(6).tolist()
            out.append(item)
        return out

    def metrics(self, task: TaskData, split: str, predictions: list[Any]) -> dict[str, float]:
        examples = task.examples[split]
        if not predictions or "positive" not in predictions[0]:
            return {}
        a = np.array([p["embedding"] for p in predictions])
        b = np.array([p["positive"] for p in predictions])
        if all(e.label is not None for e in examples):
            return {"spearman": similarity_spearman(a, b, [float(e.label) for e in examples])}
        index: dict[str, int] = {}
        gold = [index.setdefault(str(e.text_pair), len(index)) for e in examples]
        first = {g: i for i, g in reversed(list(enumerate(gold)))}
        candidates = b[[first[g] for g in range(len(index))]]
        scores = retrieval_scores(a, candidates, gold, ks=sorted({1, self.opts.k}))
        return {**scores, "candidates": float(len(index))}
