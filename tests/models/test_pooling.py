"""Mean, [CLS] and max pooling on small hand-made tensors with padding."""

from __future__ import annotations

import pytest
import torch

from bertology import cls_pool, max_pool, mean_pool, pool

from ._util import assert_close

# Two sequences of three tokens with two features; the second has one padded position holding large
# values, which no pooling may see.
HIDDEN = torch.tensor(
    [
        [[1.0, -2.0], [3.0, 4.0], [5.0, -6.0]],
        [[-1.0, 2.0], [-3.0, -8.0], [100.0, 50.0]],
    ]
)
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_mean_divides_by_the_real_count():
    expected = torch.tensor([[(1 + 3 + 5) / 3, (-2 + 4 - 6) / 3], [(-1 - 3) / 2, (2 - 8) / 2]])
    assert_close(mean_pool(HIDDEN, MASK), expected, "mean")
    assert_close(pool(HIDDEN, MASK, "mean"), expected, "pool(mean)")
    assert_close(pool(HIDDEN, MASK), expected, "pool default is mean")


def test_mean_without_mask_uses_every_position():
    assert_close(mean_pool(HIDDEN), HIDDEN.mean(1), "mean without mask")


def test_mean_accepts_bool_and_float_masks():
    expected = mean_pool(HIDDEN, MASK)
    assert_close(mean_pool(HIDDEN, MASK.bool()), expected, "bool mask")
    assert_close(mean_pool(HIDDEN, MASK.float()), expected, "float mask")


def test_cls_is_the_first_token():
    assert_close(cls_pool(HIDDEN, MASK), torch.tensor([[1.0, -2.0], [-1.0, 2.0]]), "cls")
    assert_close(pool(HIDDEN, MASK, "cls"), HIDDEN[:, 0], "pool(cls)")


def test_max_ignores_padding_even_with_large_values():
    expected = torch.tensor([[5.0, 4.0], [-1.0, 2.0]])
    assert_close(max_pool(HIDDEN, MASK), expected, "max")
    assert_close(pool(HIDDEN, MASK, "max"), expected, "pool(max)")
    assert_close(max_pool(HIDDEN), HIDDEN.amax(1), "max without mask")


def test_max_when_every_real_value_is_negative():
    hidden = torch.tensor([[[-5.0], [-3.0], [0.0], [0.0]]])
    mask = torch.tensor([[1, 1, 0, 0]])
    assert_close(max_pool(hidden, mask), torch.tensor([[-3.0]]), "max of negatives")


def test_normalize_gives_unit_vectors_in_the_same_direction():
    for how in ("mean", "cls", "max"):
        raw = pool(HIDDEN, MASK, how)
        unit = pool(HIDDEN, MASK, how, normalize=True)
        assert_close(unit.norm(dim=-1), torch.ones(2), f"{how} norm")
        assert_close(unit * raw.norm(dim=-1, keepdim=True), raw, f"{how} direction")


def test_unknown_pooling_raises():
    with pytest.raises(ValueError, match="nope") as info:
        pool(HIDDEN, MASK, how="nope")
    for known in ("mean", "cls", "max"):
        assert known in str(info.value)


def test_mask_of_the_wrong_shape_raises():
    with pytest.raises(ValueError, match="attention_mask"):
        mean_pool(HIDDEN, torch.ones(2, 4))
    with pytest.raises(ValueError, match="attention_mask"):
        max_pool(HIDDEN, torch.ones(3, 3))


def test_pool_each_pools_every_layer_the_same_way():
    from bertology.models.pooling import pool_each

    layers = (HIDDEN, HIDDEN * 2, -HIDDEN)
    for how in ("mean", "cls", "max"):
        pooled = pool_each(layers, MASK, how)
        assert len(pooled) == 3
        for got, hidden in zip(pooled, layers, strict=True):
            assert torch.equal(got, pool(hidden, MASK, how))
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_each(layers, MASK, "median")
