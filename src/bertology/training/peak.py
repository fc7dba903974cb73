"""The machine's measured matrix-multiply peak, the denominator of model FLOPs utilisation (MFU)."""

from __future__ import annotations

import functools
import time

import torch


@functools.lru_cache(maxsize=4)
def matmul_peak_flops(dtype: torch.dtype = torch.float32, device: str = "cpu", size: int = 1024,
                      seconds: float = 0.3) -> float:
    """FLOP/s of a square matmul in `dtype`, best of repeated runs for about `seconds`."""
    # A private generator: measuring must not move the global random state a training run depends on.
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    a @ b  # warm-up: first call picks kernels
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_flops(model: torch.nn.Module, tokens: int) -> float:
    """About 6 FLOPs per parameter per token for forward and backward (embedding lookups excluded)."""
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n or "norm" in n)
    return 6.0 * params * tokens
