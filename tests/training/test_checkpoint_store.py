"""CheckpointStore: the files of a training checkpoint, written and read back part by part, and the layout
a Trainer run leaves (the one older checkpoints have, so they still resume)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bertology.errors import CheckpointError
from bertology.training import TrainConfig, Trainer
from bertology.training.checkpoints import MANIFEST, CheckpointManager, CheckpointStore

sys.path.insert(0, str(Path(__file__).parent))
from toy_run import ToyRegression, make_data, plain_collate  # noqa: E402


@pytest.fixture(autouse=True)
def _keep_global_rng():
    """Restoring a checkpoint's random state reseeds the global generators; put them back afterwards."""
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    yield
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


def _optimizer(module: nn.Module) -> torch.optim.Optimizer:
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.1)
    module(torch.ones(2, 4)).sum().backward()
    optimizer.step()  # so that the state holds moments, not only hyperparameters
    return optimizer


def test_every_part_round_trips(tmp_path):
    torch.manual_seed(0)
    store = CheckpointStore(tmp_path, keep_last=2)
    model = nn.Linear(4, 3)
    optimizer = _optimizer(model)
    tmp = store.begin(7)
    store.write_process_files(tmp, rank=0)
    expected_draw = torch.rand(3)  # the first draw after the state was saved
    store.write_main_files(tmp, model=model, optimizer_state=optimizer.state_dict(),
                           callback_states=[{}, {"average": torch.arange(3.0)}],
                           trainer_state={"step": 7, "note": "x"}, run_config={"train": {"seed": 1}})
    checkpoint = store.commit(tmp, 7)
    assert sorted(p.name for p in checkpoint.path.iterdir()) == sorted([
        "model.safetensors", "optimizer.pt", "callbacks.safetensors", "trainer_state.json", "config.yaml",
        "rng-rank0.json", "rng-rank0.safetensors", MANIFEST])
    assert store.verify(checkpoint) is None and store.last_path() == checkpoint.path

    fresh = nn.Linear(4, 3)
    store.load_model(checkpoint, fresh)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True))
    assert torch.equal(store.read_model_state(checkpoint)["weight"], model.weight.detach())
    restored = store.read_optimizer_state(checkpoint, "cpu")
    assert torch.equal(restored["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    states = store.read_callback_states(checkpoint, 2)
    assert states[0] == {} and torch.equal(states[1]["average"], torch.arange(3.0))
    assert store.read_trainer_state(checkpoint) == {"step": 7, "note": "x"}
    torch.rand(5)
    store.restore_rng_state(checkpoint, rank=3)  # a rank that wrote nothing takes rank 0's state
    assert torch.equal(torch.rand(3), expected_draw)

    with pytest.raises(CheckpointError, match="unexpected.*bias"):
        store.load_model(checkpoint, nn.Linear(4, 3, bias=False))


def test_sharded_optimizer_and_no_callback_state(tmp_path):
    store = CheckpointStore(tmp_path)
    model = nn.Linear(4, 3)
    tmp = store.begin(2)
    for rank in (0, 1):
        store.write_process_files(tmp, rank, optimizer_shard={"rank": torch.tensor(rank)})
    store.write_main_files(tmp, model=dict(model.state_dict()), optimizer_state=None, callback_states=[{}],
                           trainer_state={}, run_config={})
    checkpoint = store.commit(tmp, 2)
    names = {p.name for p in checkpoint.path.iterdir()}
    assert {"optimizer-rank0.pt", "optimizer-rank1.pt", "rng-rank1.json"} <= names
    assert "optimizer.pt" not in names and "callbacks.safetensors" not in names
    assert store.read_optimizer_state(checkpoint, "cpu", rank=1)["rank"] == 1
    assert store.read_callback_states(checkpoint, 1) is None


def test_a_trainer_run_leaves_the_same_layout(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(learning_rate=1e-3, max_steps=4, batch_size=16, save_every=2, keep_last=1,
                         progress=False, plot=False, seed=3)
    trainer = Trainer(ToyRegression(), make_data(64), config, tmp_path, collate=plain_collate)
    assert isinstance(trainer.checkpoints, CheckpointManager)
    trainer.train()
    (checkpoint,) = CheckpointManager(tmp_path / "checkpoints").list()
    assert checkpoint.step == 4
    assert sorted(p.name for p in checkpoint.path.iterdir()) == sorted([
        "config.yaml", "manifest.json", "model.safetensors", "optimizer.pt", "rng-rank0.json",
        "rng-rank0.safetensors", "trainer_state.json"])
    state = checkpoint.read_json("trainer_state.json")
    assert state["step"] == 4 and state["world_size"] == 1 and "scheduler" in state
