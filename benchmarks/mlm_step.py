"""The masked-LM training step alone: bertology's `BertForMaskedLM` against transformers', same batches.

Mini size (L4/H256/A4, feed-forward 1024, vocabulary 30,522), batch 32 x 128 of full sequences, 15% of
positions labelled (the same labels on both sides), the same optimizer on both sides (torch AdamW, fused),
fp32 and bf16 autocast, same process and threads. No data collator on either side: this is the model's
forward, backward and optimizer step. Prints tokens/s (medians) and the ratio. Target: >= 3.5x.

`--profile` prints where bertology's step spends its time (torch.profiler, CPU).

Run: python benchmarks/mlm_step.py [--steps 5] [--repeats 3] [--threads 2] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertology import BertConfig, BertForMaskedLM  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402

SEQ, BATCH, VOCAB = 128, 32, 30522
SIZES = dict(vocab_size=VOCAB, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)


def batches(count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        ids = torch.randint(1000, VOCAB, (BATCH, SEQ), generator=gen)
        chosen = torch.rand(BATCH, SEQ, generator=gen) < 0.15
        out.append((ids, torch.where(chosen, ids, torch.full_like(ids, -100))))
    return out


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def make_step(model, data, bf16: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    model.train()

    def step(i: int) -> None:
        ids, labels = data[i % len(data)]
        with autocast(bf16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def timed(step, steps: int, repeats: int) -> float:
    """Median seconds per step over `repeats` runs of `steps` steps, after two warm-up steps."""
    step(0)
    step(1)
    runs = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            step(2 + r * steps + i)
        runs.append((time.perf_counter() - start) / steps)
    return statistics.median(runs)


def theirs():
    import transformers

    torch.manual_seed(0)
    return transformers.BertForMaskedLM(transformers.BertConfig(**SIZES, attn_implementation="sdpa"))


def ours():
    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(**SIZES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    data = batches(8)
    if args.profile:
        for bf16 in (False, True):
            step = make_step(ours(), data, bf16)
            step(0)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                for i in range(3):
                    step(1 + i)
            print(f"--- bertology step, {'bf16' if bf16 else 'fp32'}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
        return
    header = ["dtype", "transformers tok/s", "bertology tok/s", "ratio"]
    rows = []
    for bf16 in (False, True):
        ref = timed(make_step(theirs(), data, bf16), args.steps, args.repeats)
        mine = timed(make_step(ours(), data, bf16), args.steps, args.repeats)
        tokens = BATCH * SEQ
        rows.append(["bf16" if bf16 else "fp32", f"{tokens / ref:,.0f}", f"{tokens / mine:,.0f}", f"{ref / mine:.2f}x"])
        print(format_table(header, rows[-1:]), flush=True)
    note = (f"mini L4/H256/A4, vocab {VOCAB}, batch {BATCH} x {SEQ}, 15% labelled, fused AdamW on both sides, "
            f"threads {args.threads}, torch {torch.__version__}, transformers {transformers.__version__}; "
            f"medians of {args.repeats} runs of {args.steps} steps")
    print("\n" + note)
    print(format_table(header, rows))
    if args.markdown:
        args.markdown.write_text(f"{note}\n\n{format_table(header, rows, markdown=True)}\n")


if __name__ == "__main__":
    main()
