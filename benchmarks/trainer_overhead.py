"""The Trainer's own cost: data loading, logging, checkpoints and bookkeeping, as a share of step time.

Both sides train the same small BERT MLM on the same batches with the same AdamW, schedule and clipping:
- a bare loop: forward, backward, clip, step, with batches built by the same collate function;
- `Trainer.train()`: with progress bar, metrics.jsonl every 10 steps and a checkpoint every 50.
Overhead = (trainer time - bare time) / trainer time, medians of several runs. Target: <= 5%.

Run: python benchmarks/trainer_overhead.py [--steps 200] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertology import BertConfig, BertForMaskedLM  # noqa: E402
from bertology.training import TrainConfig, Trainer  # noqa: E402
from bertology.training.data import ResumableLoader  # noqa: E402
from bertology.training.optim import build_optimizer, build_scheduler  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402


def make_examples(n: int, seq: int, vocab: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    examples = []
    for _ in range(n):
        ids = torch.randint(5, vocab, (seq,), generator=g)
        labels = torch.full_like(ids, -100)
        pick = torch.rand(seq, generator=g) < 0.15
        labels[pick] = ids[pick]
        masked = ids.masked_fill(pick, 4)
        examples.append({"input_ids": masked, "attention_mask": torch.ones_like(ids), "labels": labels})
    return examples


def bare_loop(model, examples, config: TrainConfig, steps: int) -> float:
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps)
    loader = ResumableLoader(examples, config.batch_size, config.seed)
    model.train()
    start = time.perf_counter()
    done, epoch = 0, 0
    while done < steps:
        for batch in loader.epoch(epoch):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            if done == steps:
                break
        epoch += 1
    return time.perf_counter() - start


def with_trainer(model, examples, config: TrainConfig) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, examples, config, run_dir)
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_config = BertConfig.preset("mini", vocab_size=8000, max_position_embeddings=128)
    examples = make_examples(2048, 128, model_config.vocab_size)
    config = TrainConfig(learning_rate=1e-4, max_steps=args.steps, batch_size=16, warmup_steps=10, log_every=10,
                         save_every=50, keep_last=2, bf16=args.bf16, plot=False, progress=True)
    bare, trained = [], []
    for _ in range(args.repeats):
        torch.manual_seed(0)
        bare.append(bare_loop(BertForMaskedLM(model_config), examples, config, args.steps))
        torch.manual_seed(0)
        trained.append(with_trainer(BertForMaskedLM(model_config), examples, config))
    t_bare, t_trainer = statistics.median(bare), statistics.median(trained)
    overhead = (t_trainer - t_bare) / t_trainer
    print(format_table(
        ["loop", "seconds", "ms/step"],
        [["bare loop", f"{t_bare:.2f}", f"{1000 * t_bare / args.steps:.1f}"],
         ["Trainer (log 10, checkpoint 50)", f"{t_trainer:.2f}", f"{1000 * t_trainer / args.steps:.1f}"]],
    ))
    print(f"\nTrainer overhead: {100 * overhead:.1f}% of step time (target <= 5%); "
          f"{args.steps} steps, L4/H256 vocab 8000, batch 16 x 128, {'bf16' if args.bf16 else 'fp32'}, "
          f"threads {args.threads}, medians of {args.repeats} runs")


if __name__ == "__main__":
    main()
