"""Which teacher layer each student layer learns from (TinyBERT's mapping function n = g(m)).

Layer 0 is the embedding output and layer M+1 (N+1 for the teacher) the prediction layer; those two always
map to each other, so a strategy only decides the M intermediate layers. Student layer m reads the
teacher's `hidden_states[g(m)]` and `attention_scores[g(m) - 1]`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from ...utils.typed import Where, as_where, suggest

__all__ = ["STRATEGIES", "LayerMap", "layer_map"]

#: the named strategies; an explicit list of teacher layers is the other way to give a map
STRATEGIES = ("uniform", "top", "bottom")


@dataclass(frozen=True)
class LayerMap:
    """g: student layer m (0..M+1) -> teacher layer n (0..N+1), with g(0) = 0 and g(M+1) = N+1."""

    student_layers: int
    teacher_layers: int
    #: g(1), ..., g(M): the teacher layer of each student layer (1-based)
    teacher_of: tuple[int, ...]
    #: the strategy's name, or "list" for an explicit list
    strategy: str = "list"

    def __call__(self, m: int) -> int:
        """g(m) for m in 0..M+1."""
        if m == 0:
            return 0
        if m == self.student_layers + 1:
            return self.teacher_layers + 1
        if not 1 <= m <= self.student_layers:
            raise IndexError(f"student layer {m} is outside 0..{self.student_layers + 1}")
        return self.teacher_of[m - 1]

    @property
    def intermediate(self) -> list[tuple[int, int]]:
        """(m, g(m)) for the student's transformer layers m = 1..M."""
        return [(m, n) for m, n in enumerate(self.teacher_of, start=1)]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """(m, g(m)) for m = 0..M+1: embeddings, every transformer layer, then the prediction layer."""
        return [(0, 0), *self.intermediate, (self.student_layers + 1, self.teacher_layers + 1)]


def _count(name: str, value: int, where: Where) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}{name} must be a positive integer, got {value!r}")


def layer_map(strategy: str | list[int] | tuple[int, ...], student_layers: int, teacher_layers: int,
              where: str | Where = "") -> LayerMap:
    """The layer map of a strategy for an M-layer student and an N-layer teacher.

    - "uniform": g(m) = floor(m * N / M), TinyBERT's every-(N/M)-th layer (g(m) = 3m for 4 of 12). When M
      does not divide N the floor keeps the layers evenly spread and always ends on the teacher's last
      layer (g(M) = N); it needs M <= N.
    - "top": g(m) = N - M + m, the teacher's last M layers.
    - "bottom": g(m) = m, the teacher's first M layers.
    - a list of M teacher layers (1-based) g(1), ..., g(M); each must be in 1..N, in any order and repeats
      allowed (a layer may teach several student layers).
    """
    where = as_where(where)
    _count("the student's layer count", student_layers, where)
    _count("the teacher's layer count", teacher_layers, where)
    m_, n_ = student_layers, teacher_layers
    if isinstance(strategy, (list, tuple)):
        if len(strategy) != m_:
            raise ConfigError(f"{where}the layer map lists {len(strategy)} teacher layer"
                              f"{'s' if len(strategy) != 1 else ''} but the student has {m_} layers "
                              f"(one teacher layer per student layer)")
        for m, n in enumerate(strategy, start=1):
            if isinstance(n, bool) or not isinstance(n, int):
                raise ConfigError(f"{where}layer map entry {m} must be a teacher layer number, got {n!r}")
            if not 1 <= n <= n_:
                raise ConfigError(f"{where}layer map entry {m} names teacher layer {n} but the teacher has "
                                  f"{n_} layers (entries count from 1; 0 and {n_ + 1}, the embeddings and "
                                  f"the prediction layer, are always mapped)")
        return LayerMap(m_, n_, tuple(strategy), "list")
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ConfigError(f"{where}unknown layer map strategy {strategy!r}{suggest(str(strategy), STRATEGIES)} "
                          f"(known: {', '.join(STRATEGIES)}, or a list of {m_} teacher layers)")
    if m_ > n_:
        raise ConfigError(f"{where}layer map {strategy!r} needs a student no deeper than the teacher, but the "
                          f"student has {m_} layers and the teacher {n_}; give an explicit list instead")
    if strategy == "uniform":
        teacher_of = tuple(m * n_ // m_ for m in range(1, m_ + 1))
    elif strategy == "top":
        teacher_of = tuple(n_ - m_ + m for m in range(1, m_ + 1))
    else:
        teacher_of = tuple(range(1, m_ + 1))
    return LayerMap(m_, n_, teacher_of, strategy)
