"""Layer maps: every strategy's g(m), the fixed ends g(0) = 0 and g(M+1) = N+1, and the errors of bad lists."""

from __future__ import annotations

import pytest

from bertology.compression.distillation import LayerMap, layer_map
from bertology.errors import ConfigError
from bertology.utils.typed import Where


@pytest.mark.parametrize(
    ("strategy", "m", "n", "expected"),
    [
        ("uniform", 4, 12, [3, 6, 9, 12]),  # TinyBERT's g(m) = 3m
        ("uniform", 2, 4, [2, 4]),
        ("uniform", 4, 6, [1, 3, 4, 6]),  # floor(m * 6 / 4)
        ("uniform", 3, 3, [1, 2, 3]),
        ("top", 2, 6, [5, 6]),
        ("top", 3, 3, [1, 2, 3]),
        ("bottom", 2, 6, [1, 2]),
        ([5, 2, 2], 3, 6, [5, 2, 2]),  # any order, repeats allowed
        ([1, 1, 1, 1, 1], 5, 1, [1, 1, 1, 1, 1]),  # a list may serve a student deeper than its teacher
    ],
)
def test_strategies(strategy, m: int, n: int, expected: list[int]) -> None:
    lm = layer_map(strategy, m, n)
    assert isinstance(lm, LayerMap)
    assert lm.student_layers == m and lm.teacher_layers == n
    assert lm.intermediate == list(zip(range(1, m + 1), expected, strict=True))
    assert lm.pairs == [(0, 0), *lm.intermediate, (m + 1, n + 1)]
    assert lm(0) == 0 and lm(m + 1) == n + 1  # embeddings to embeddings, prediction to prediction
    assert [lm(i) for i in range(1, m + 1)] == expected
    assert lm.strategy == (strategy if isinstance(strategy, str) else "list")


@pytest.mark.parametrize("strategy", ["uniform", "top", "bottom"])
@pytest.mark.parametrize(("m", "n"), [(1, 1), (1, 7), (3, 7), (5, 12), (6, 6)])
def test_named_maps_stay_in_range(strategy: str, m: int, n: int) -> None:
    lm = layer_map(strategy, m, n)
    teacher = [t for _, t in lm.intermediate]
    assert all(1 <= t <= n for t in teacher)
    assert teacher == sorted(set(teacher))  # strictly increasing
    assert lm.pairs[0] == (0, 0) and lm.pairs[-1] == (m + 1, n + 1)
    if strategy in ("uniform", "top"):
        assert teacher[-1] == n


def test_uniform_spreads_by_floor() -> None:
    for m, n in [(3, 7), (5, 12), (4, 10)]:
        assert [t for _, t in layer_map("uniform", m, n).intermediate] == [(i * n) // m for i in range(1, m + 1)]


def test_outside_layers_refused() -> None:
    lm = layer_map("bottom", 2, 4)
    with pytest.raises(IndexError, match="student layer 4"):
        lm(4)
    with pytest.raises(IndexError):
        lm(-1)


def test_list_entry_beyond_teacher() -> None:
    with pytest.raises(ConfigError, match="layer map entry 3 names teacher layer 7 but the teacher has 6 layers"):
        layer_map([2, 4, 7], 3, 6)


def test_list_entry_zero() -> None:
    with pytest.raises(ConfigError, match="layer map entry 1 names teacher layer 0 but the teacher has 6 layers"):
        layer_map([0, 4], 2, 6)


def test_list_entry_not_a_number() -> None:
    with pytest.raises(ConfigError, match=r"layer map entry 2 must be a teacher layer number, got '3'"):
        layer_map([1, "3"], 2, 6)
    with pytest.raises(ConfigError, match="entry 1"):
        layer_map([True, 3], 2, 6)


def test_list_wrong_length() -> None:
    with pytest.raises(ConfigError, match="lists 2 teacher layers but the student has 3 layers"):
        layer_map([2, 4], 3, 6)
    with pytest.raises(ConfigError, match="lists 1 teacher layer but"):
        layer_map([2], 3, 6)


@pytest.mark.parametrize("strategy", ["uniform", "top", "bottom"])
def test_deeper_student_refused(strategy: str) -> None:
    with pytest.raises(ConfigError, match="student has 8 layers and the teacher 6"):
        layer_map(strategy, 8, 6)


def test_unknown_strategy_suggests() -> None:
    with pytest.raises(ConfigError, match=r"unknown layer map strategy 'unifrom'; did you mean 'uniform'\?"):
        layer_map("unifrom", 2, 4)


def test_error_names_where() -> None:
    with pytest.raises(ConfigError, match=r"^run.yaml: distillation.layer_map: layer map entry 1"):
        layer_map([9], 1, 4, Where("run.yaml", ("distillation", "layer_map")))


@pytest.mark.parametrize(("m", "n"), [(0, 4), (2, 0), (-1, 4)])
def test_layer_counts_must_be_positive(m: int, n: int) -> None:
    with pytest.raises(ConfigError, match="must be a positive integer"):
        layer_map("uniform", m, n)
