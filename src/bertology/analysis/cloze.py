"""Cloze probes: what a masked-LM predicts in a blank, and LAMA-style factual templates scored by precision@k.

`fill_mask` gives the top-k fillers of every [MASK] in a text. `score_facts` fills LAMA-style templates
("[X] was born in [Y].") with each fact's subject, puts as many [MASK]s as the answer has word pieces in
place of [Y], and ranks answers of that length by the sum of the pieces' log-probabilities (the masks are
predicted together, each from the same input): the answer counts for precision@k when it is among the k
best piece sequences. A beam over the masks' marginals finds them; for one piece it is plain top-k.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DataError


@dataclass
class Fact:
    template: str
    subject: str
    answer: str
    source: str = ""


@dataclass
class FactResult:
    fact: Fact
    pieces: int
    rank: int | None  # 1-based rank of the answer among the beam's sequences, None when not found
    log_prob: float  # the answer's summed log-probability
    top: list[tuple[str, float]] = field(default_factory=list)


def read_facts(path: str | Path) -> list[Fact]:
    """JSONL facts: {"template": "[X] was born in [Y].", "subject": "...", "answer": "..."}; a template
    without exactly one [X] and one [Y], or a missing key, is an error naming the file and line."""
    facts = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
                fact = Fact(str(row["template"]), str(row["subject"]), str(row["answer"]), where)
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{where}: expected {{\"template\", \"subject\", \"answer\"}} ({exc})") from None
            for slot in ("[X]", "[Y]"):
                if fact.template.count(slot) != 1:
                    raise DataError(f"{where}: the template {fact.template!r} must hold {slot} exactly once")
            facts.append(fact)
    if not facts:
        raise DataError(f"{path}: no facts")
    return facts


def _masked_lm(model: nn.Module) -> nn.Module:
    if not hasattr(model, "mlm_head"):
        raise DataError(f"{type(model).__name__} has no masked-LM head: cloze probes need a masked-LM checkpoint")
    return model.eval()


@torch.no_grad()
def mask_log_probs(model: nn.Module, tokenizer: Any, text: str) -> tuple[list[int], torch.Tensor]:
    """Token ids of `text` (its [MASK]s kept) and the log-probabilities (masks, vocab) at the masks."""
    model = _masked_lm(model)
    batch = tokenizer(text)
    ids = batch["input_ids"]
    positions = (ids[0] == tokenizer.mask_token_id).nonzero().flatten()
    if len(positions) == 0:
        raise DataError(f"no {tokenizer.mask_token} in {text!r}")
    labels = torch.full_like(ids, -100)
    labels[0, positions] = ids[0, positions]
    out = model(ids, batch["attention_mask"], labels=labels)  # logits at the labelled positions only
    # a masked-LM model's `logits`, a pretraining model's (MLM + NSP/SOP head) `prediction_logits`
    logits = out.logits if hasattr(out, "logits") else out.prediction_logits
    return ids[0].tolist(), torch.log_softmax(logits.float().reshape(len(positions), -1), dim=-1)


def fill_mask(model: nn.Module, tokenizer: Any, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For every [MASK] of `text`, its `top_k` fillers and their probabilities."""
    _, log_probs = mask_log_probs(model, tokenizer, text)
    values, indices = log_probs.topk(top_k, dim=-1)
    return [[(tokenizer.convert_ids_to_tokens(int(i)), math.exp(float(v))) for v, i in zip(row_v, row_i, strict=True)]
            for row_v, row_i in zip(values, indices, strict=True)]


def beam(log_probs: torch.Tensor, width: int) -> list[tuple[tuple[int, ...], float]]:
    """The `width` best piece sequences over the masks' marginals (rows), by summed log-probability."""
    beams: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    for row in log_probs:
        values, indices = row.topk(min(width, row.numel()))
        beams = sorted(((seq + (int(i),), score + float(v)) for seq, score in beams
                        for v, i in zip(values, indices, strict=True)), key=lambda b: -b[1])[:width]
    return beams


def score_fact(model: nn.Module, tokenizer: Any, fact: Fact, k: int = 10) -> FactResult:
    answer = tokenizer.backend.encode(fact.answer, add_special_tokens=False).ids
    if not answer:
        raise DataError(f"{fact.source}: the answer {fact.answer!r} has no word pieces")
    masks = " ".join([tokenizer.mask_token] * len(answer))
    text = fact.template.replace("[X]", fact.subject).replace("[Y]", masks)
    _, log_probs = mask_log_probs(model, tokenizer, text)
    log_prob = float(sum(log_probs[i, piece] for i, piece in enumerate(answer)))
    found = beam(log_probs, k)
    rank = next((n + 1 for n, (seq, _) in enumerate(found) if list(seq) == answer), None)
    top = [(tokenizer.backend.decode(list(seq)), score) for seq, score in found]
    return FactResult(fact, len(answer), rank, log_prob, top)


def precision_at(results: Sequence[FactResult], k: int) -> float:
    """Share of facts whose answer ranks within the top `k`."""
    return sum(1 for r in results if r.rank is not None and r.rank <= k) / len(results) if results else 0.0


__all__ = ["Fact", "FactResult", "beam", "fill_mask", "mask_log_probs", "precision_at", "read_facts", "score_fact"]
