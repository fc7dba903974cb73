"""How good sentence embeddings are: graded similarity (Spearman's rho of cosines against gold scores) and
retrieval (accuracy@k and mean reciprocal rank of each query's gold candidate among all candidates).

Plain numpy, so the same functions score a pretrained encoder, a SimCSE run and a fine-tuned task model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..finetuning.metrics import spearman

__all__ = ["cosine_matrix", "embed_texts", "paired_cosines", "retrieval_scores", "similarity_spearman"]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def paired_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(a_i, b_i) for each row i (a zero vector has cosine 0 with anything)."""
    return (_unit(a) * _unit(b)).sum(-1)


def cosine_matrix(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """cos(query i, candidate j), shape (queries, candidates)."""
    return _unit(queries) @ _unit(candidates).T


def similarity_spearman(a: np.ndarray, b: np.ndarray, scores: Sequence[float]) -> float:
    """Spearman's rho between cos(a_i, b_i) and the gold scores (ties take their average rank), as STS is
    scored: only the order of the similarities matters, not their scale."""
    if len(scores) != len(a) or len(a) != len(b):
        raise ValueError(f"{len(a)} and {len(b)} embeddings for {len(scores)} scores")
    return spearman(paired_cosines(a, b).tolist(), list(scores))


def retrieval_scores(queries: np.ndarray, candidates: np.ndarray, gold: Sequence[int],
                     ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Rank every candidate by cosine for each query; `gold[i]` is the index of query i's right candidate.

    The rank of the gold candidate is 1 + the number of candidates scored strictly higher (a tie does not
    count against it). Returns accuracy@k (share of queries whose gold candidate ranks <= k) and MRR (mean
    of 1 / rank)."""
    gold = np.asarray(gold, dtype=np.int64)
    if len(gold) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(gold)} gold indices")
    if len(gold) and (gold.min() < 0 or gold.max() >= len(candidates)):
        raise ValueError(f"gold indices must lie in [0, {len(candidates)})")
    if not len(gold):
        return {**{f"acc@{k}": 0.0 for k in ks}, "mrr": 0.0}
    sims = cosine_matrix(queries, candidates)
    right = sims[np.arange(len(gold)), gold]
    ranks = 1 + (sims > right[:, None]).sum(1)
    out = {f"acc@{k}": float((ranks <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / ranks).mean())
    return out


@torch.no_grad()
def embed_texts(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], pooling: str = "mean",
                batch_size: int = 64, max_length: int = 64,
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
    """Embeddings of `texts` from a bare encoder (its last layer, [CLS] or mean-pooled), in eval mode, so
    that any encoder folder can be scored as it is."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start:start + batch_size]), max_length=max_length, truncation=True, padding=True,
                        return_tensors="pt")
        mask = enc["attention_mask"].to(device)
        out = model(enc["input_ids"].to(device), attention_mask=mask,
                    token_type_ids=enc.get("token_type_ids", torch.zeros_like(enc["input_ids"])).to(device))
        hidden = out.last_hidden_state.float()
        if pooling == "cls":
            vector = hidden[:, 0]
        else:
            weights = mask.float()[..., None]
            vector = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        if transform is not None:
            vector = transform(vector)
        rows.append(vector.cpu().numpy())
    model.train(was_training)
    return np.concatenate(rows) if rows else np.zeros((0, 0))
