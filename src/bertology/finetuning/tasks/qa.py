"""Extractive question answering (SQuAD v1.1): a span of the context per question, scored by EM and F1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ..divergence import symmetric_kl
from ..encoding import Features
from ..examples import BadRow, Example, require_text, short
from ..qa import answer_across_windows, squad_em_f1
from .base import TASK_KINDS, TaskKind
from .qa_windows import encode_qa

if TYPE_CHECKING:
    from ..data import Reader
    from ..labels import LabelSet
    from ..model import HeadConfig, HeadOptions
    from ..taskdata import TaskData

__all__ = ["QAOptions", "QuestionAnswering", "qa_example", "read_answers"]


@dataclass
class QAOptions:
    """How long contexts become windows."""

    #: tokens shared by consecutive windows of a long context
    doc_stride: int = 64
    #: questions are cut to this many tokens
    max_query_length: int = 64

    def validate(self, where: str = "") -> None:
        if self.doc_stride < 0:
            raise ConfigError(f"{where}field 'doc_stride' (the tokens consecutive windows share) must be >= 0, "
                              f"got {self.doc_stride}")
        if self.max_query_length < 1:
            raise ConfigError(f"{where}field 'max_query_length' must be at least 1, got {self.max_query_length}")


def read_answers(value: Any, context: str) -> list[dict[str, Any]]:
    """Normalise answers to ``[{text, start}]``, each checked against the context."""
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        starts = value.get("answer_start", value.get("start"))
        if not isinstance(starts, list) or len(starts) != len(value["text"]):
            raise BadRow("bad answer", "answers given as lists need 'text' and 'answer_start' of equal length")
        value = [{"text": t, "answer_start": s} for t, s in zip(value["text"], starts, strict=True)]
    if not isinstance(value, list):
        raise BadRow("bad answer", f"answers must be a list of {{text, answer_start}}, got {short(value)}")
    out = []
    for i, answer in enumerate(value):
        if not isinstance(answer, dict):
            raise BadRow("bad answer", f"answer {i} must be an object with text and answer_start")
        text = answer.get("text")
        start = answer.get("answer_start", answer.get("start"))
        if not isinstance(text, str) or not text.strip():
            raise BadRow("bad answer", f"answer {i} has no text")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise BadRow("bad answer", f"answer {i} ({text!r}) needs a non-negative integer answer_start, "
                                       f"got {short(start)}")
        found = context[start : start + len(text)]
        if found != text:
            raise BadRow("answer does not match the context",
                         f"answer {text!r} does not match the context at answer_start={start} "
                         f"(the context has {found!r} there)")
        out.append({"text": text, "start": start})
    return out


def qa_example(context: Any, question: Any, answers: Any, ident: str | None, source: str,
               require_answers: bool) -> Example:
    """A checked QA example: a context, a question and answers that match the context where they say."""
    context = require_text(context, "context")
    question = require_text(question, "question")
    gold = None
    if answers is not None:
        gold = read_answers(answers, context)
        if not gold:
            if require_answers:
                raise BadRow("no answers", "the question has no answers (unanswerable SQuAD 2.0 questions "
                                           "are not supported)")
            gold = None
    return Example(text=context, text_pair=question, answers=gold, id=ident, source=source)


def _context(example: Example) -> str:
    return example.text if isinstance(example.text, str) else " ".join(example.text)


@TASK_KINDS.register("qa", options=QAOptions)
class QuestionAnswering(TaskKind):
    """SQuAD JSON or JSONL rows in; a start and an end logit per token; answers found across windows."""

    suffixes = (".json", ".jsonl")
    sentence_level = False
    target_keys = ("start_positions", "end_positions")

    def row(self, reader: Reader, row: Mapping[str, Any], source: str) -> Example:
        c = reader.columns
        ident = reader.ident(row)
        context = reader.need(row, c.context, "context", source)
        question = reader.need(row, c.question, "question", source)
        answers = reader.need(row, c.answers, "answers", source) if reader.require_labels else row.get(c.answers)
        return qa_example(context, question, answers, ident, source, reader.require_labels)

    def encode(self, examples: Sequence[Example], tokenizer: Any, labels: LabelSet | None,
               max_length: int) -> Features:
        return encode_qa(examples, tokenizer, max_length, self.options.doc_stride, self.options.max_query_length)

    def outputs(self, head: HeadConfig) -> int:
        return 2

    def loss(self, head: HeadConfig, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        if "start_positions" not in batch:
            return None, {}
        start, end = logits.float().unbind(-1)
        loss = (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
        return loss, {}

    def divergence(self, head: HeadOptions | None, clean: torch.Tensor, perturbed: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
        """The start and the end distributions over each window's real positions, each a symmetric KL."""
        def positions(logits: torch.Tensor) -> torch.Tensor:  # (batch, seq, 2) -> (batch * 2, seq)
            logits = logits.float().transpose(1, 2)
            if mask is not None:
                logits = logits.masked_fill(~mask.bool().unsqueeze(1), -1e4)
            return logits.reshape(-1, logits.shape[-1])

        return symmetric_kl(positions(perturbed), positions(clean))

    def decode(self, task: TaskData, split: str, logits: list[np.ndarray]) -> list[str]:
        examples, features = task.examples[split], task.features[split]
        windows: dict[int, list[dict]] = {}
        for feature, row in zip(features, logits, strict=True):
            offsets = feature["offsets"]
            windows.setdefault(feature["example_index"], []).append({
                "start_logits": row[:, 0], "end_logits": row[:, 1], "offsets": offsets,
                "context_mask": [o is not None for o in offsets]})
        return [answer_across_windows(windows.get(i, []), _context(e)) for i, e in enumerate(examples)]

    def metrics(self, task: TaskData, split: str, predictions: list[Any]) -> dict[str, float]:
        examples = task.examples[split]
        em = f1 = 0.0
        for example, answer in zip(examples, predictions, strict=True):
            golds = [a["text"] for a in (example.answers or [])] or [""]
            e, f = squad_em_f1(answer, golds)
            em, f1 = em + e, f1 + f
        n = max(len(examples), 1)
        return {"exact_match": em / n, "f1": f1 / n}
