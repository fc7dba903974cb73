"""The resumable loader: batch b of epoch e depends only on (seed, e, b), across resumes, ranks and workers."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from bertology.training.data import BatchPlan, ResumableLoader, batch_seed


def _batches(loader: ResumableLoader, epoch: int, start: int = 0) -> list[list[int]]:
    return [batch.tolist() for batch in loader.epoch(epoch, start)]


def random_collate(examples, generator):
    """Collation with randomness (like masking) drawn only from the generator it is given."""
    return {"ids": default_collate(examples),
            "noise": torch.randint(0, 1_000_000, (len(examples),), generator=generator)}


def plain_collate(examples):
    return default_collate(examples)


# ------------------------------------------------------------------------------------------- resume
def test_batch_is_the_same_whatever_came_before() -> None:
    data = list(range(50))
    loader = ResumableLoader(data, batch_size=4, seed=7, drop_last=False)
    for epoch in (0, 1):
        _batches(loader, epoch)  # history that must not matter
    full = _batches(loader, 2)
    resumed = _batches(ResumableLoader(data, batch_size=4, seed=7, drop_last=False), 2, start=5)
    assert resumed == full[5:]
    assert len(full) == 13 and len(resumed) == 8
    # and again, out of order, on the same loader
    assert _batches(loader, 2, start=5) == full[5:]
    assert _batches(loader, 2) == full


def test_start_past_the_end_is_empty() -> None:
    loader = ResumableLoader(list(range(10)), batch_size=3, seed=0, drop_last=True)
    assert len(loader) == 3
    assert _batches(loader, 0, start=3) == []
    assert _batches(loader, 0, start=10) == []


def test_epochs_and_seeds_shuffle_differently() -> None:
    data = list(range(64))
    loader = ResumableLoader(data, batch_size=8, seed=3)
    epoch0, epoch1 = _batches(loader, 0), _batches(loader, 1)
    assert epoch0 != epoch1
    assert sorted(sum(epoch0, [])) == sorted(sum(epoch1, [])) == data
    other_seed = _batches(ResumableLoader(data, batch_size=8, seed=4), 0)
    assert other_seed != epoch0
    # shuffled at all: not the identity order
    assert sum(epoch0, []) != data


def test_no_shuffle_keeps_dataset_order() -> None:
    loader = ResumableLoader(list(range(10)), batch_size=4, seed=9, shuffle=False, drop_last=False)
    assert _batches(loader, 0) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _batches(loader, 5) == _batches(loader, 0)


# ------------------------------------------------------------------------------------------ coverage
def test_every_example_once_per_epoch_without_drop_last() -> None:
    data = list(range(23))
    loader = ResumableLoader(data, batch_size=4, seed=11, drop_last=False)
    assert len(loader) == 6  # ceil(23 / 4)
    for epoch in range(3):
        batches = _batches(loader, epoch)
        assert [len(b) for b in batches] == [4, 4, 4, 4, 4, 3]  # last batch partial
        flat = sum(batches, [])
        assert sorted(flat) == data


def test_drop_last_drops_the_remainder() -> None:
    data = list(range(23))
    loader = ResumableLoader(data, batch_size=4, seed=11, drop_last=True)
    assert len(loader) == 5  # 23 // 4
    batches = _batches(loader, 0)
    assert [len(b) for b in batches] == [4] * 5
    flat = sum(batches, [])
    assert len(set(flat)) == 20 and set(flat) <= set(data)
    # the kept examples are the first 20 of the same epoch order as without drop_last
    full = sum(_batches(ResumableLoader(data, batch_size=4, seed=11, drop_last=False), 0), [])
    assert flat == full[:20]


# ------------------------------------------------------------------------------------------ ranks
def test_two_ranks_split_the_global_batch_of_one_process() -> None:
    data = list(range(40))
    single = _batches(ResumableLoader(data, batch_size=6, seed=5, drop_last=True), 1)
    rank0 = _batches(ResumableLoader(data, batch_size=3, seed=5, drop_last=True, rank=0, world_size=2), 1)
    rank1 = _batches(ResumableLoader(data, batch_size=3, seed=5, drop_last=True, rank=1, world_size=2), 1)
    assert len(single) == len(rank0) == len(rank1) == 6  # 40 // 6
    for whole, a, b in zip(single, rank0, rank1, strict=True):
        assert len(a) == len(b) == 3
        assert not set(a) & set(b)
        assert a + b == whole


def test_two_ranks_without_drop_last_stay_equal_and_cover_everything() -> None:
    data = list(range(10))
    ranks = [_batches(ResumableLoader(data, batch_size=3, seed=2, drop_last=False, rank=r, world_size=2), 0)
             for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2  # ceil(10 / 6)
    assert all(len(b) == 3 for rank in ranks for b in rank)  # the last global batch wraps round
    seen = {i for rank in ranks for b in rank for i in b}
    assert seen == set(data)
    # the first global batch is still disjoint between ranks
    assert not set(ranks[0][0]) & set(ranks[1][0])


def test_batch_plan_indices_match_loader() -> None:
    plan = BatchPlan(17, batch_size=5, seed=1, drop_last=False)
    order = plan.order(4)
    assert sorted(order.tolist()) == list(range(17))
    loader = ResumableLoader(list(range(17)), batch_size=5, seed=1, drop_last=False)
    assert _batches(loader, 4) == [plan.indices(order, b) for b in range(plan.batches_per_epoch)]


# ----------------------------------------------------------------------------------------- collation
def test_collate_gets_a_generator_seeded_per_batch() -> None:
    seed, epoch = 13, 3
    loader = ResumableLoader(list(range(30)), batch_size=4, seed=seed, collate=random_collate, drop_last=True)
    torch.manual_seed(0)
    batches = list(loader.epoch(epoch))
    assert len(batches) == 7
    for b, batch in enumerate(batches):
        generator = torch.Generator().manual_seed(batch_seed(seed, epoch, b))
        want = torch.randint(0, 1_000_000, (4,), generator=generator)
        assert torch.equal(batch["noise"], want), f"batch {b}"
    # neighbouring batches do not draw the same noise
    assert len({tuple(b["noise"].tolist()) for b in batches}) == len(batches)


def test_random_collation_is_reproducible_across_loaders_resumes_and_global_seed() -> None:
    data = list(range(30))
    first = ResumableLoader(data, batch_size=4, seed=13, collate=random_collate)
    second = ResumableLoader(data, batch_size=4, seed=13, collate=random_collate)
    torch.manual_seed(1)
    a = list(first.epoch(2))
    torch.manual_seed(2)  # the global generator must play no part
    b = list(second.epoch(2))
    c = list(second.epoch(2, start=4))
    assert len(a) == len(b) == 7
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["ids"], y["ids"]) and torch.equal(x["noise"], y["noise"])
    for x, y in zip(a[4:], c, strict=True):
        assert torch.equal(x["ids"], y["ids"]) and torch.equal(x["noise"], y["noise"])


def test_workers_give_the_same_batches_as_the_main_process() -> None:
    data = list(range(30))
    serial = list(ResumableLoader(data, batch_size=4, seed=21, collate=random_collate, num_workers=0).epoch(1))
    parallel = list(ResumableLoader(data, batch_size=4, seed=21, collate=random_collate, num_workers=2).epoch(1))
    assert len(serial) == len(parallel) == 7
    for x, y in zip(serial, parallel, strict=True):
        assert torch.equal(x["ids"], y["ids"])
        assert torch.equal(x["noise"], y["noise"])


def test_collate_without_generator_is_called_plainly() -> None:
    loader = ResumableLoader(list(range(8)), batch_size=4, seed=0, shuffle=False, collate=plain_collate)
    assert _batches(loader, 0) == [[0, 1, 2, 3], [4, 5, 6, 7]]


# ----------------------------------------------------------------------------------------- seeds
def test_batch_seed_is_deterministic_and_well_spread() -> None:
    assert batch_seed(1, 2, 3) == batch_seed(1, 2, 3)
    seeds = [batch_seed(0, e, b) for e in range(4) for b in range(64)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)
    assert batch_seed(0, 0, 1) != batch_seed(0, 1, 0)  # epoch and batch are not interchangeable
    assert batch_seed(0, 0, 0) != batch_seed(1, 0, 0)
    # neighbours differ in many bits, not just the last one
    assert bin(batch_seed(5, 0, 0) ^ batch_seed(5, 0, 1)).count("1") > 8
    # usable as a torch seed
    torch.Generator().manual_seed(batch_seed(2**31, 10**6, 10**6))


# ----------------------------------------------------------------------------------------- errors
def test_empty_dataset_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        ResumableLoader([], batch_size=4)
    with pytest.raises(ValueError, match="empty"):
        BatchPlan(0, batch_size=4, seed=0, drop_last=False)


def test_fewer_examples_than_one_global_batch_with_drop_last() -> None:
    with pytest.raises(ValueError, match=r"5 examples.*fewer than one global batch.*drop_last"):
        ResumableLoader(list(range(5)), batch_size=3, world_size=2, rank=0, drop_last=True)
    with pytest.raises(ValueError, match="batch_size"):
        ResumableLoader(list(range(3)), batch_size=4, drop_last=True)
    # without drop_last the same data makes one partial batch
    loader = ResumableLoader(list(range(3)), batch_size=4, seed=0, drop_last=False)
    batches = _batches(loader, 0)
    assert len(batches) == 1 and sorted(batches[0]) == [0, 1, 2]
