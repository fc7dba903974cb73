"""Numbers: piece splits counted by hand, ridge and R² against hand computation, a magnitude probe that
reads magnitude-encoding representations perfectly and random ones not at all, and the model path."""

from __future__ import annotations

import random

import pytest
import torch

from bertology import BertConfig, BertModel, Tokenizer
from bertology.analysis.numbers import fit_magnitude, magnitude_probe, piece_splits, r_squared, ridge
from bertology.assets import minilm_dir


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_pretrained(minilm_dir())


def test_piece_splits_count_each_number(tok):
    numbers = [7, 42, 1998, 123456789]
    table = piece_splits(tok, numbers)
    assert set(table) == {1, 2, 4, 9}
    for n in numbers:
        pieces = len(tok.backend.encode(str(n), add_special_tokens=False).ids)
        assert table[len(str(n))][pieces] >= 1
    assert sum(sum(c.values()) for c in table.values()) == len(numbers)


def test_ridge_and_r_squared_by_hand():
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    y = torch.tensor([1.0, 3.0, 5.0, 7.0], dtype=torch.float64)  # y = 2x + 1
    w, b = ridge(x, y, alpha=0.0)
    assert float(w[0]) == pytest.approx(2.0) and float(b) == pytest.approx(1.0)
    # with alpha: w = sum(xc*yc) / (sum(xc^2) + alpha) = 10 / (5 + 5) = 1
    w, b = ridge(x, y, alpha=5.0)
    assert float(w[0]) == pytest.approx(1.0) and float(b) == pytest.approx(4.0 - 1.5)
    assert r_squared(y, y) == 1.0 and r_squared(torch.full_like(y, 4.0), y) == 0.0


def test_magnitude_is_read_from_representations_that_hold_it_and_not_from_random_ones():
    rng = random.Random(0)
    numbers = [rng.randrange(1, 100000) for _ in range(500)]
    order = list(range(500))
    magnitude = torch.log10(torch.tensor(numbers, dtype=torch.float64) + 1)
    g = torch.Generator().manual_seed(0)
    holding = torch.cat([magnitude[:, None] * torch.randn(1, 16, generator=g, dtype=torch.float64),
                         0.001 * torch.randn(500, 16, generator=g, dtype=torch.float64)], dim=1)
    r2, within = fit_magnitude(holding, numbers, order[:400], order[400:], alpha=1e-6)
    assert r2 > 0.99 and within > 0.9
    noise = torch.randn(500, 32, generator=g, dtype=torch.float64)
    r2, within = fit_magnitude(noise, numbers, order[:400], order[400:])
    assert r2 < 0.1


def test_magnitude_probe_runs_on_a_model(tok):
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64)).eval()
    results = magnitude_probe(model, tok, list(range(1, 200, 3)))
    assert [r.layer for r in results] == [0, 1, 2]
    assert all(r.r2 <= 1.0 and 0.0 <= r.within_10 <= 1.0 for r in results)
