"""Distillation's promise in numbers: a TinyBERT-4 student against its BERT-base teacher.

TinyBERT (Jiao et al., 2020) reports its 4-layer, 312-wide student as 7.5x smaller and 9.4x faster than
BERT-base. Both models here have random weights (speed does not depend on them) and are timed through
`bertology.compression.report.measure_speed`, the timer the compression report uses: random ids at batch
32 x seq 128, no padding, medians of several runs, in fp32 and under CPU bf16 autocast, one after the
other in the same process with the same threads.

- teacher: 12 layers, hidden 768, 12 heads, ff 3072, vocab 30522 (BERT-base)
- student: 4 layers, hidden 312, 12 heads, ff 1200, vocab 30522 (TinyBERT-4)

Run: python benchmarks/distillation_speed.py [--threads 2] [--repeats 5] [--markdown out.md]
     python benchmarks/distillation_speed.py --smoke   (tiny shapes, one repeat: checks the script runs)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertology import BertConfig, BertModel  # noqa: E402
from bertology.compression.report import count_parameters, measure_speed  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402

PAPER_SPEEDUP = 9.4
PAPER_SIZE_RATIO = 7.5

TEACHER = dict(vocab_size=30522, num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
               intermediate_size=3072)
STUDENT = dict(vocab_size=30522, num_hidden_layers=4, hidden_size=312, num_attention_heads=12,
               intermediate_size=1200)
# --smoke: the same two-model comparison at toy sizes, so the script can be checked in seconds
SMOKE_TEACHER = dict(vocab_size=1000, num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=64)
SMOKE_STUDENT = dict(vocab_size=1000, num_hidden_layers=1, hidden_size=32, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)


def autocast(dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def caller(model: BertModel, dtype: str) -> Callable[[torch.Tensor], object]:
    def call(ids: torch.Tensor) -> object:
        with autocast(dtype):
            return model(ids)

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--smoke", action="store_true", help="toy sizes, batch 2 x seq 16, one repeat")
    parser.add_argument("--markdown", help="also write the table as Markdown here")
    args = parser.parse_args()

    teacher_sizes, student_sizes = TEACHER, STUDENT
    if args.smoke:
        teacher_sizes, student_sizes = SMOKE_TEACHER, SMOKE_STUDENT
        args.batch, args.seq, args.repeats, args.warmup = 2, 16, 1, 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    teacher = BertModel(BertConfig(**teacher_sizes)).eval()
    student = BertModel(BertConfig(**student_sizes)).eval()
    n_teacher, n_student = count_parameters(teacher), count_parameters(student)
    vocab = teacher.config.vocab_size

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch} x seq {args.seq}, "
          f"medians of {args.repeats} runs after {args.warmup} warm-up{' (smoke: toy sizes)' if args.smoke else ''}",
          flush=True)
    print(f"parameters: teacher {n_teacher:,} ({n_teacher / 1e6:.1f}M), student {n_student:,} "
          f"({n_student / 1e6:.1f}M), "
          f"teacher/student {n_teacher / n_student:.2f}x (paper: {PAPER_SIZE_RATIO}x)", flush=True)

    header = ["dtype", "teacher tok/s", "student tok/s", "student/teacher", "paper target"]
    rows = []
    for dtype in args.dtypes.split(","):
        speeds = {}
        for name, model in (("teacher", teacher), ("student", student)):
            speeds[name] = measure_speed(caller(model, dtype), batch=args.batch, seq=args.seq, vocab_size=vocab,
                                         repeats=args.repeats, warmup=args.warmup).tokens_per_s
        ratio = speeds["student"] / speeds["teacher"]
        rows.append([dtype, f"{speeds['teacher']:,.0f}", f"{speeds['student']:,.0f}", f"{ratio:.2f}x",
                     f"{PAPER_SPEEDUP}x"])
        print(format_table(header, rows[-1:]), flush=True)

    print()
    print(format_table(header, rows))
    if args.markdown:
        Path(args.markdown).write_text(format_table(header, rows, markdown=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
