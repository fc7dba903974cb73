"""A small training run for the trainer tests, runnable as a subprocess (for kills) or under torchrun.

usage: python toy_run.py RUN_DIR [--resume] [--max-steps N] [--batch-size B] [--accum A] [--save-every S]
                                 [--slow SECONDS] [--slow-commit SECONDS] [--nan-from STEP] [--dropout P]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from bertology.training import StepOutput, TrainConfig, Trainer
from bertology.training.checkpoints import CheckpointManager


class ToyRegression(nn.Module):
    """y = w.x + noise, through a small MLP with dropout (so RNG state matters for exact resume)."""

    def __init__(self, dropout: float = 0.1, slow: float = 0.0, nan_from: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(dropout), nn.LayerNorm(32), nn.Linear(32, 1))
        self.slow = slow
        self.nan_from = nan_from
        self.calls = 0

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        self.calls += 1
        if self.slow:
            time.sleep(self.slow)
        pred = self.net(x).squeeze(-1)
        mse = ((pred - y) ** 2).mean()
        if self.nan_from and self.training and self.calls >= self.nan_from:
            mse = mse * float("nan")
        return StepOutput({"mse": mse}, {"mean_pred": pred.mean()})


def make_data(n: int = 512, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(8, generator=g)
    xs = torch.randn(n, 8, generator=g)
    ys = xs @ w + 0.1 * torch.randn(n, generator=g)
    return [{"x": xs[i], "y": ys[i]} for i in range(n)]


def noisy_collate(examples, generator):
    """Randomness in collation (like masking) must come from the per-batch generator."""
    x = torch.stack([e["x"] for e in examples])
    y = torch.stack([e["y"] for e in examples])
    return {"x": x + 0.01 * torch.randn(x.shape, generator=generator), "y": y}


def plain_collate(examples):
    return {"x": torch.stack([e["x"] for e in examples]), "y": torch.stack([e["y"] for e in examples])}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--save-every", type=int, default=5)
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--slow-commit", type=float, default=0.0)
    p.add_argument("--nan-from", type=int, default=0)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-bad-steps", type=int, default=20)
    p.add_argument("--no-noise", action="store_true", help="plain collation (for DDP parity)")
    p.add_argument("--fsdp", action="store_true", help="shard with FSDP instead of DDP under torchrun")
    args = p.parse_args()

    if args.slow_commit:
        original = CheckpointManager.commit

        def slow_commit(self, tmp, step):
            # Stand in for a slow disk: files are written, the manifest and rename are not yet done.
            (Path(args.run_dir) / f"writing-{step}").touch()
            time.sleep(args.slow_commit)
            return original(self, tmp, step)

        CheckpointManager.commit = slow_commit

    torch.manual_seed(0)
    model = ToyRegression(args.dropout, args.slow, args.nan_from)
    config = TrainConfig(learning_rate=3e-3, max_steps=args.max_steps, batch_size=args.batch_size,
                         gradient_accumulation=args.accum, save_every=args.save_every, log_every=1,
                         warmup_steps=5, schedule="cosine", keep_last=3, progress=False, plot=False,
                         max_bad_steps=args.max_bad_steps, seed=7, distributed="fsdp" if args.fsdp else "ddp")
    collate = plain_collate if args.no_noise else noisy_collate
    trainer = Trainer(model, make_data(), config, args.run_dir, collate=collate)
    result = trainer.train(resume=args.resume)
    print(f"RESULT step={result.step} stopped={result.stopped}", flush=True)


if __name__ == "__main__":
    main()
