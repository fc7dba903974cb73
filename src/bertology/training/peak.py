"""Model FLOPs utilisation (MFU): the model's training FLOPs per second over the machine's matmul peak.

`matmul_peak_flops` measures the peak once per machine (device name, dtype, torch thread count) and keeps
it in a JSON file, `$BERTOLOGY_CACHE/peak.json` (default `~/.cache/bertology/peak.json`), so that a run
started on a busy machine does not read a low peak. `encoder_training_flops` counts a BERT-family
encoder's training FLOPs from its sizes; `training_flops` is the fallback for other modules.
"""

from __future__ import annotations

import json
import logging
import platform
import statistics
import time
from pathlib import Path

import torch

from ..utils.io import atomic_write, cache_dir

logger = logging.getLogger("bertology")

#: matmul sizes large enough to reach the peak (a 1024 matmul is dominated by its launch on a GPU)
PEAK_SIZES = {"cpu": 2048, "cuda": 8192}


def device_name(device: str) -> str:
    """The CUDA device's name, or the CPU model (from /proc/cpuinfo, else platform.processor())."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    if device != "cpu":
        return device
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _cache_key(dtype: torch.dtype, device: str) -> str:
    return f"{device.split(':')[0]}|{device_name(device)}|{str(dtype).removeprefix('torch.')}|threads={torch.get_num_threads()}"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        logger.warning("ignoring the unreadable matmul peak cache %s; measuring again", path)
        return {}
    return data if isinstance(data, dict) else {}


def _measure(dtype: torch.dtype, device: str, size: int | None = None, repeats: int = 7,
             batch_seconds: float = 0.05) -> float:
    """FLOP/s of a `size`² matmul: `repeats` timed batches of many matmuls (synchronised once per batch, so
    launch overhead is amortised); the median of the best half of the batches' per-matmul times."""
    size = size or PEAK_SIZES.get(device.split(":")[0], 2048)
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    # A private generator: measuring must not move the global random state a training run depends on.
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    out = torch.empty(size, size, device=device, dtype=dtype)
    for _ in range(2):  # warm-up: kernel choice, clocks
        torch.matmul(a, b, out=out)
    sync()
    start = time.perf_counter()
    torch.matmul(a, b, out=out)
    sync()
    per_matmul = max(time.perf_counter() - start, 1e-9)
    count = max(1, min(200, round(batch_seconds / per_matmul)))
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(count):
            torch.matmul(a, b, out=out)
        sync()
        times.append((time.perf_counter() - start) / count)
    best = sorted(times)[: max(1, repeats // 2)]
    return 2.0 * size**3 / statistics.median(best)


def matmul_peak_flops(dtype: torch.dtype = torch.float32, device: str = "cpu", size: int | None = None) -> float:
    """The machine's matmul FLOP/s in `dtype`: read from the cache file, else measured once and cached.

    The cache is keyed by device name, dtype and torch's thread count; it is written atomically, and a
    corrupt file is measured again rather than an error.
    """
    path = cache_dir() / "peak.json"
    key = _cache_key(dtype, device)
    cached = _read_cache(path)
    value = cached.get(key)
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    peak = _measure(dtype, device, size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cached = {**_read_cache(path), key: peak}
        with atomic_write(path) as handle:
            json.dump(cached, handle, indent=2, sort_keys=True)
    except OSError as exc:  # a read-only home still trains; it measures again next time
        logger.warning("could not cache the matmul peak in %s: %s", path, exc)
    return peak


def encoder_training_flops(hidden: int, intermediate: int, layers: int, vocab: int, tokens: float,
                           seq_len: float, predicted: float = 0, trainable: float = 1.0) -> float:
    """Training FLOPs (forward and backward) of a BERT-family encoder over `tokens` tokens.

    Per layer per token, the forward pass costs 2 x (4H² + 2HI) in its dense layers (Q, K, V, output
    projection; the two feed-forward layers) and 2 x 2 x S x H for attention scores and weighted values
    (S: the sequence length attention runs over). The backward pass costs 1x forward for activation
    gradients, plus 1x forward of the dense layers for weight gradients scaled by `trainable`, the fraction
    of the encoder's weights that are trained (1: full fine-tuning, about 0 for LoRA/adapters/frozen
    layers); attention's matmuls have no weights, their backward is 2x (both operands are activations).
    So a fully trained encoder costs 3x forward, a frozen one 2x.

    An MLM head (transform H x H and decoder H x vocab) costs 2 x (H² + H x vocab) forward per predicted
    position (`predicted`: the labelled positions when the model computes logits only there, every token
    when it computes them everywhere, 0 without an MLM head), with the same backward rule. Embedding
    lookups, layer norms, softmax and small classifier heads are left out.
    """
    dense = 2.0 * (4 * hidden**2 + 2 * hidden * intermediate) * layers * tokens
    attention = 2.0 * 2 * seq_len * hidden * layers * tokens
    head = 2.0 * (hidden**2 + hidden * vocab) * predicted
    return (dense + head) * (2.0 + trainable) + 3.0 * attention


def training_flops(model: torch.nn.Module, tokens: float) -> float:
    """The fallback for modules that are not BERT-family encoders: 6 FLOPs per parameter per token
    (forward and backward, embedding lookups excluded); it ignores attention's sequence-length term,
    frozen weights and heads computed at a subset of positions."""
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n or "norm" in n)
    return 6.0 * params * tokens


def raise_peak(dtype: torch.dtype, device: str, achieved: float) -> float:
    """A run reached `achieved` FLOP/s, more than the cached peak: that peak was measured while something else
    loaded the machine. Keep the achieved rate as the new (still conservative) peak, so MFU stays honest
    and the cache heals itself; returns it."""
    path = cache_dir() / "peak.json"
    key = _cache_key(dtype, device)
    cached = _read_cache(path)
    old = cached.get(key)
    logger.warning("achieved %.3g FLOP/s, above the cached %s matmul peak of %.3g (measured under load?); "
                   "using the achieved rate as the peak from now on", achieved, key, old or 0.0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            json.dump({**cached, key: achieved}, handle, indent=2, sort_keys=True)
    except OSError as exc:
        logger.warning("could not update the matmul peak in %s: %s", path, exc)
    return achieved
