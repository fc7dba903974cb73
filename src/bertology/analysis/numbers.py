"""Numbers: how word pieces split them, and whether a layer's representation holds a number's magnitude.

The primer notes that numbers split into word pieces are handled poorly. `piece_splits` counts, per number
of digits, how many pieces the tokenizer makes of a number. `magnitude_probe` reads each layer's
representation of a number (the mean of its pieces, in a short carrier sentence), fits a ridge regression
to log10(n + 1) on a training share of the numbers and reports, per layer on the held-out numbers, R² and
how often the number decoded back from the prediction (10^y - 1) lies within 10% of the true one.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..utils.table import format_table
from .representations import word_representations


def piece_splits(tokenizer, numbers: Sequence[int]) -> dict[int, Counter]:
    """{digits: Counter(pieces per number)} for the tokenizer's pieces of each number written in digits."""
    table: dict[int, Counter] = defaultdict(Counter)
    for n in numbers:
        pieces = tokenizer.backend.encode(str(n), add_special_tokens=False).ids
        table[len(str(n))][len(pieces)] += 1
    return dict(sorted(table.items()))


def sample_numbers(count: int, maximum: int = 10**6, seed: int = 0) -> list[int]:
    """`count` distinct integers in [0, maximum], log-uniform (every digit count about equally often), seeded.
    Distinct, so that no number sits in both the probe's training and test shares."""
    if count < 10 or maximum < count:
        raise ConfigError(f"numbers: need at least 10 distinct numbers and maximum >= count (got {count}, {maximum})")
    rng = random.Random(seed)
    seen: dict[int, None] = {}
    top = math.log10(maximum + 1)
    while len(seen) < count:
        seen.setdefault(min(maximum, int(10 ** rng.uniform(0, top)) - 1), None)
    return list(seen)


def splits_table(table: dict[int, Counter], markdown: bool = False) -> str:
    """`piece_splits` as rows: digits, numbers, mean pieces, share kept whole, most pieces."""
    rows = []
    for digits, counts in table.items():
        total = sum(counts.values())
        mean = sum(k * v for k, v in counts.items()) / total
        rows.append([str(digits), str(total), f"{mean:.2f}", f"{counts.get(1, 0) / total:.3f}", str(max(counts))])
    return format_table(["digits", "numbers", "mean pieces", "one piece", "most pieces"], rows, markdown=markdown)


def ridge(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form ridge regression with an unpenalised intercept: (weights, bias)."""
    mean_x, mean_y = x.mean(0), y.mean()
    xc, yc = x - mean_x, y - mean_y
    gram = xc.T @ xc + alpha * torch.eye(x.shape[1], dtype=x.dtype)
    w = torch.linalg.solve(gram, xc.T @ yc)
    return w, mean_y - mean_x @ w


def r_squared(pred: torch.Tensor, y: torch.Tensor) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / total if total > 0 else 0.0


@dataclass
class MagnitudeResult:
    layer: int
    r2: float
    within_10: float  #: share of held-out numbers decoded back within 10% of the truth


def fit_magnitude(x: torch.Tensor, numbers: Sequence[int], train: Sequence[int], test: Sequence[int],
                  alpha: float = 1.0) -> tuple[float, float]:
    """R² of log10(n + 1) and the within-10% decoding rate on `test` rows, ridge fit on `train` rows."""
    y = torch.log10(torch.tensor(numbers, dtype=torch.float64) + 1)
    x = x.double()
    tr, te = torch.tensor(list(train)), torch.tensor(list(test))
    w, b = ridge(x[tr], y[tr], alpha)
    pred = x[te] @ w + b
    truth = torch.tensor([numbers[i] for i in te.tolist()], dtype=torch.float64)
    decoded = 10 ** pred - 1
    within = float(((decoded - truth).abs() <= 0.1 * truth.clamp_min(1)).double().mean())
    return r_squared(pred, y[te]), within


def magnitude_probe(encoder: nn.Module, tokenizer, numbers: Sequence[int], template: str = "there are {} of them",
                    seed: int = 0, alpha: float = 1.0) -> list[MagnitudeResult]:
    """Per layer: the ridge probe of log magnitude on 80% of `numbers`, scored on the other 20%."""
    sentences = [template.format(n).split() for n in numbers]
    slot = template.split().index("{}")
    reps = word_representations(encoder, tokenizer, sentences, pooling="mean")
    order = list(range(len(numbers)))
    random.Random(seed).shuffle(order)
    cut = int(0.8 * len(order))
    results = []
    for layer in range(reps.num_layers):
        x = torch.stack([reps.sentence(layer, i)[slot] for i in range(len(numbers))])
        r2, within = fit_magnitude(x, numbers, order[:cut], order[cut:], alpha)
        results.append(MagnitudeResult(layer, r2, within))
    return results


def results_table(results: Sequence[MagnitudeResult], markdown: bool = False) -> str:
    rows = [[str(r.layer), f"{r.r2:.3f}", f"{r.within_10:.3f}"] for r in results]
    return format_table(["layer", "R² of log10(n+1)", "decoded within 10%"], rows, markdown=markdown)


__all__ = ["MagnitudeResult", "fit_magnitude", "magnitude_probe", "piece_splits", "r_squared", "results_table", "ridge",
           "sample_numbers", "splits_table"]
