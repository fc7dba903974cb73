"""torch.distributed set-up for runs launched by torchrun: DDP (gloo on CPU, nccl on GPU) or FSDP."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..device import resolve_device
from ..errors import ConfigError


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    #: where collective tensors live: nccl only reduces CUDA tensors
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        if not self.distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every process if it is true on any (e.g. a stop signal seen by one)."""
        return bool(self.all_reduce_sum([float(flag)])[0]) if self.distributed else flag


def _leave_group() -> None:
    if dist.is_initialized():
        try:
            dist.destroy_process_group()  # no barrier: a peer that crashed must not keep this one waiting
        except Exception:  # a peer already gone: nothing left to leave cleanly
            pass


def init_world() -> World:
    """Join the process group torchrun describes in the environment (a single process needs none)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        # Leave the group before the interpreter tears down its threads: a group left to exit handlers can
        # abort the process ("terminate called without an active exception") after a finished run.
        atexit.register(_leave_group)
    device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return World(rank=rank, size=size, local_rank=local_rank, device=device)


def device_for(world: World, requested: str = "auto") -> torch.device:
    """The device `requested` names (auto: CUDA when present, else the CPU); a process launched by torchrun
    keeps its own GPU, cuda:LOCAL_RANK, whenever CUDA is present (its process group reduces CUDA tensors)."""
    device = resolve_device(requested)  # checks the spelling and that the device is present
    if not world.distributed:
        return device
    if torch.cuda.is_available():
        if device.type == "cpu":
            raise ConfigError(f"device {requested!r}: under torchrun with CUDA present each process trains on its "
                              "own GPU (cuda:LOCAL_RANK); use device auto or cuda")
        return torch.device("cuda", world.local_rank)
    return torch.device("cpu")


def wrap(module: nn.Module, world: World, strategy: str) -> nn.Module:
    """DDP replicates the model and averages gradients; FSDP shards parameters, gradients and optimizer state."""
    if not world.distributed:
        return module
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        return fully_shard(module)
    device_ids = [world.local_rank] if torch.cuda.is_available() else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
