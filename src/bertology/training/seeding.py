"""One seed for every random source, applied before anything random is built."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, numpy's global generator and torch (CPU and every CUDA device).

    Called at the very start of building a run (before the model, heads and data order are made) and again
    when training starts, so the same config and seed give the same losses, in one process or across several.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
