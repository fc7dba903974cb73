"""Structural probes: the metrics worked out by hand, the probes on representations that encode the tree exactly
(they find it) and on random ones (chance), determinism, and the errors of mismatched inputs."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from bertology.analysis.structural import (
    PUNCTUATION_TAGS,
    DepthProbe,
    DistanceProbe,
    depth_spearman,
    distance_spearman,
    minimum_spanning_tree,
    probe_layers,
    root_accuracy,
    spearman,
    train_probe,
    uuas,
)
from bertology.analysis.trees import Sentence, tree_depths, tree_distances
from bertology.errors import ConfigError, DataError

# A five-word tree (1-based heads): 2 is the root, 1 and 3 hang from 2, 4 and 5 from 3.
# 0-based gold edges: (0,1), (1,2), (2,3), (2,4); gold distances:
#   0: [0, 1, 2, 3, 3]   1: [1, 0, 1, 2, 2]   2: [2, 1, 0, 1, 1]   3: [3, 2, 1, 0, 2]   4: [3, 2, 1, 2, 0]
HEADS = [2, 0, 2, 3, 3]
PREDICTED = np.array([
    [0.0, 1.0, 4.0, 2.0, 5.0],
    [1.0, 0.0, 3.0, 6.0, 7.0],
    [4.0, 3.0, 0.0, 1.5, 8.0],
    [2.0, 6.0, 1.5, 0.0, 9.0],
    [5.0, 7.0, 8.0, 9.0, 0.0],
])


def sentence(heads: list[int], punct: set[int] = frozenset()) -> Sentence:
    n = len(heads)
    return Sentence([f"w{i}" for i in range(n)], list(heads), upos=["PUNCT" if i in punct else "X" for i in range(n)])


def test_minimum_spanning_tree_by_hand() -> None:
    # Prim from word 0: nearest is 1 (1.0) -> edge (0,1); then 3 (2.0 from 0) -> (0,3); then 2 (1.5 from 3)
    # -> (2,3); last 4, nearest in the tree is 0 (5.0) -> (0,4)
    assert minimum_spanning_tree(PREDICTED) == [(0, 1), (0, 3), (0, 4), (2, 3)]
    assert minimum_spanning_tree(torch.tensor(PREDICTED), nodes=[0, 1, 2, 3]) == [(0, 1), (0, 3), (2, 3)]
    assert minimum_spanning_tree(PREDICTED, nodes=[3]) == []
    # on gold distances the MST is the tree itself: its edges are the only pairs at distance 1
    assert minimum_spanning_tree(tree_distances(HEADS)) == [(0, 1), (1, 2), (2, 3), (2, 4)]


def test_uuas_by_hand() -> None:
    # MST {(0,1), (0,3), (0,4), (2,3)} against gold {(0,1), (1,2), (2,3), (2,4)}: (0,1) and (2,3) found, 2 of 4
    assert uuas([PREDICTED], [HEADS]) == pytest.approx(0.5)
    # word 4 as punctuation: gold loses (2,4), the MST over words 0-3 is {(0,1), (0,3), (2,3)}: 2 of 3
    tree = sentence(HEADS, punct={4})
    assert uuas([PREDICTED], [tree], exclude_tags=PUNCTUATION_TAGS) == pytest.approx(2 / 3)
    assert uuas([PREDICTED], [tree]) == pytest.approx(0.5)  # no tags excluded: as before
    # corpus-level: with a perfect second sentence (4 of 4) it is (2 + 4) / (4 + 4)
    assert uuas([PREDICTED, tree_distances(HEADS)], [HEADS, HEADS]) == pytest.approx(6 / 8)


# Distance Spearman of PREDICTED, each word against the other four (ranks, ties averaged):
#   word 0: pred [1, 4, 2, 5] ranks [1, 3, 2, 4]; gold [1, 2, 3, 3] ranks [1, 2, 3.5, 3.5]
#           centred: [-1.5, .5, -.5, 1.5] . [-1.5, -.5, 1, 1] = 3; norms^2 5 and 4.5 -> 3 / sqrt(22.5)
#   word 1: pred [1, 3, 6, 7] ranks [1, 2, 3, 4]; gold [1, 1, 2, 2] ranks [1.5, 1.5, 3.5, 3.5] -> 4 / sqrt(5 * 4)
#   word 2: pred [4, 3, 1.5, 8] ranks [3, 2, 1, 4]; gold [2, 1, 1, 1] ranks [4, 2, 2, 2] -> 1 / sqrt(5 * 3)
#   word 3: pred [2, 6, 1.5, 9] ranks [2, 3, 1, 4]; gold [3, 2, 1, 2] ranks [4, 2.5, 1, 2.5] -> 1.5 / sqrt(22.5)
#   word 4: pred [5, 7, 8, 9] ranks [1, 2, 3, 4]; gold [3, 2, 1, 2] ranks [4, 2.5, 1, 2.5] -> -3 / sqrt(22.5)
ROWS = [3 / math.sqrt(22.5), 4 / math.sqrt(20), 1 / math.sqrt(15), 1.5 / math.sqrt(22.5), -3 / math.sqrt(22.5)]
DSPR = sum(ROWS) / 5  # 0.29377...


def test_distance_spearman_by_hand() -> None:
    assert DSPR == pytest.approx(0.293771, abs=1e-6)
    assert distance_spearman([PREDICTED], [HEADS]) == pytest.approx(DSPR)
    # averaged per length first: lengths 5 (this and a perfect sentence) and 6 (perfect), then over lengths;
    # a 4-word sentence, predicted backwards, lies outside 5-50 and does not count
    six = [0, 1, 1, 2, 2, 3]
    four = [0, 1, 2, 3]
    predictions = [PREDICTED, tree_distances(HEADS), tree_distances(six), -tree_distances(four)]
    trees = [HEADS, HEADS, six, four]
    assert distance_spearman(predictions, trees) == pytest.approx(((DSPR + 1) / 2 + 1) / 2)
    assert distance_spearman(predictions, trees, lengths=(4, 4)) == pytest.approx(-1.0)
    assert math.isnan(distance_spearman(predictions, trees, lengths=(7, 50)))


def test_distance_spearman_with_self_as_released_code() -> None:
    pytest.importorskip("scipy")
    from scipy.stats import spearmanr  # an oracle only; the library does not use scipy

    gold = tree_distances(HEADS)
    expected = np.mean([spearmanr(PREDICTED[i], gold[i]).statistic for i in range(5)])
    assert distance_spearman([PREDICTED], [HEADS], include_self=True) == pytest.approx(expected)
    others = [spearmanr(np.delete(PREDICTED[i], i), np.delete(gold[i], i)).statistic for i in range(5)]
    assert others == pytest.approx(ROWS)


def test_spearman_against_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 4, size=9).astype(float)  # many ties
        y = rng.normal(size=9)
        assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # a constant side has no correlation


def test_depth_metrics_by_hand() -> None:
    # gold depths [1, 0, 1, 2, 2]; the shallowest prediction is word 4 (0.1), not the root (word 1)
    predicted = np.array([0.9, 0.2, 1.4, 2.5, 0.1])
    assert root_accuracy([predicted], [HEADS]) == 0.0
    # with word 4 as punctuation the shallowest left is word 1 (0.2): right
    assert root_accuracy([predicted], [sentence(HEADS, punct={4})], PUNCTUATION_TAGS) == 1.0
    # ranks: pred [3, 2, 4, 5, 1], gold [2.5, 1, 2.5, 4.5, 4.5]; centred [0, -1, 1, 2, -2] and
    # [-.5, -2, -.5, 1.5, 1.5]: 1.5 / sqrt(10 * 9)
    assert depth_spearman([predicted], [HEADS]) == pytest.approx(1.5 / math.sqrt(90))
    assert depth_spearman([tree_depths(HEADS)], [HEADS]) == pytest.approx(1.0)


def test_probe_shapes() -> None:
    h = torch.randn(3, 6, 8)
    distance, depth = DistanceProbe(8, rank=4).requires_grad_(False), DepthProbe(8).requires_grad_(False)
    assert distance.proj.shape == (8, 4) and depth.proj.shape == (8, 8)
    d = distance(h)
    assert d.shape == (3, 6, 6)
    t = h[1] @ distance.proj
    assert d[1, 2, 5] == pytest.approx(float(((t[2] - t[5]) ** 2).sum()), rel=1e-5)
    assert torch.allclose(d, d.transpose(1, 2)) and torch.all(d.diagonal(dim1=1, dim2=2) == 0)
    assert depth(h).shape == (3, 6)
    with pytest.raises(ConfigError):
        DistanceProbe(8, rank=0)


# --- trained probes on synthetic data --------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny probes gain nothing from threads; on a shared 2-core machine each hand-off costs milliseconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


MAX_WORDS, HIDDEN = 12, 16


def random_trees(count: int, seed: int) -> list[list[int]]:
    """Trees whose words attach in a random order, so every pair of words is equally likely an edge."""
    rng = random.Random(seed)
    trees = []
    for _ in range(count):
        n = rng.randint(5, MAX_WORDS)
        order = list(range(n))
        rng.shuffle(order)
        heads = [0] * n
        for k in range(1, n):
            heads[order[k]] = order[rng.randrange(k)] + 1
        trees.append(heads)
    return trees


# fixed orthonormal rows: a well-conditioned map from the edge indicators to the hidden size
MIX = torch.linalg.qr(torch.randn(HIDDEN, MAX_WORDS, generator=torch.Generator().manual_seed(7)))[0].T


def tree_embedding(heads: list[int], seed: int) -> torch.Tensor:
    """h_i = M e_i, e_i the indicator of the edges from the root down to word i.

    ||e_i - e_j||^2 counts the edges on one path but not the other: the path length between i and j; and
    ||e_i||^2 is i's depth. A probe recovers both through M's transpose. Each sentence gives its edges
    distinct dimensions drawn at random, so that every dimension is trained, not only those of long sentences.
    """
    dims = random.Random(seed).sample(range(MAX_WORDS), len(heads))
    e = torch.zeros(len(heads), MAX_WORDS)
    for i in range(len(heads)):
        j = i
        while heads[j]:
            e[i, dims[j]] = 1.0  # the edge from j up to its head
            j = heads[j] - 1
    return e @ MIX


def embed(trees: list[list[int]]) -> list[torch.Tensor]:
    return [tree_embedding(t, seed=k) for k, t in enumerate(trees)]


TRAIN, DEV = random_trees(80, seed=1), random_trees(30, seed=2)
FAST = {"lr": 0.02, "epochs": 30, "batch_size": 10, "patience": 5}


def chance_uuas(trees: list[list[int]]) -> float:
    # a tree independent of the gold one shares each gold edge with probability 2 / n (its n - 1 edges among
    # the n (n - 1) / 2 pairs, every pair equally likely in these gold trees)
    return sum((len(t) - 1) * 2 / len(t) for t in trees) / sum(len(t) - 1 for t in trees)


def test_probe_layers_finds_the_tree_only_where_it_is() -> None:
    rng = torch.Generator().manual_seed(3)
    random_layer = [torch.randn(len(t), HIDDEN, generator=rng) for t in TRAIN + DEV]
    tree_layer = embed(TRAIN + DEV)
    results = probe_layers([random_layer, tree_layer], TRAIN, DEV, "distance", **FAST)
    assert [r.layer for r in results] == [0, 1]
    noise, syntax = results
    assert syntax.metrics["uuas"] == 1.0
    assert syntax.metrics["dspr"] > 0.9  # not 1: float noise breaks the many ties among gold distances
    chance = chance_uuas(DEV)  # about 0.3 for 5-12 words
    assert abs(noise.metrics["uuas"] - chance) < 0.12, (noise.metrics, chance)
    assert noise.metrics["dspr"] < 0.3
    assert syntax.trained.dev_loss < noise.trained.dev_loss
    assert set(syntax.row()) == {"layer", "uuas", "dspr", "dev_loss", "best_epoch"}


def test_depth_probe_finds_the_root() -> None:
    reps = embed(TRAIN + DEV)
    (result,) = probe_layers([reps], TRAIN, DEV, "depth", rank=MAX_WORDS, **FAST)
    assert result.metrics["root_acc"] == 1.0
    assert result.metrics["nspr"] > 0.9
    assert result.trained.probe.proj.shape == (HIDDEN, MAX_WORDS)


def test_training_is_deterministic_and_early_stops() -> None:
    train = embed(TRAIN[:30])
    dev = embed(DEV[:10])
    options = {"lr": 0.02, "epochs": 8, "batch_size": 10, "seed": 5}
    a = train_probe(train, TRAIN[:30], dev, DEV[:10], **options)
    b = train_probe(train, TRAIN[:30], dev, DEV[:10], **options)
    assert torch.equal(a.probe.proj, b.probe.proj) and a.dev_losses == b.dev_losses
    c = train_probe(train, TRAIN[:30], dev, DEV[:10], **{**options, "seed": 6})
    assert not torch.equal(a.probe.proj, c.probe.proj)
    assert a.dev_loss == min(a.dev_losses) and a.dev_losses[a.best_epoch - 1] == a.dev_loss
    # a learning rate of zero never improves on the first epoch: training stops after `patience` more epochs
    stuck = train_probe(train, TRAIN[:30], dev, DEV[:10], lr=0.0, epochs=30, patience=3)
    assert (stuck.best_epoch, stuck.epochs) == (1, 4)


def test_mismatched_inputs() -> None:
    reps = embed(TRAIN[:5] + DEV[:2])
    with pytest.raises(DataError, match=r"layer 0 has 7 sentence representations but there are 5 train \+ 3 dev"):
        probe_layers([reps], TRAIN[:5], DEV[:3])
    bad = [*reps[:5], torch.zeros(3, HIDDEN), reps[6]]
    with pytest.raises(DataError, match=rf"dev sentence 0 has {len(DEV[0])} words but its representation has "
                                        rf"shape \(3, {HIDDEN}\)"):
        probe_layers([bad], TRAIN[:5], DEV[:2])
    with pytest.raises(ConfigError, match="unknown probe kind 'tree'"):
        train_probe(reps[:5], TRAIN[:5], reps[5:], DEV[:2], "tree")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sentence 0 has 5 words but its prediction has shape"):
        uuas([PREDICTED[:4, :4]], [HEADS])
