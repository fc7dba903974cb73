"""`bertology numbers`: word pieces of numbers and a magnitude probe per layer."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("numbers", help="how numbers split into pieces, and which layers hold their magnitude",
                       description="Sample distinct integers (log-uniform up to --maximum), count the word pieces of "
                                   "each, and fit a ridge probe of log magnitude on every layer's representation of "
                                   "the number in a carrier sentence; write OUT/report.md, results.json, numbers.png.")
    p.add_argument("model", help="model folder (an encoder, or a fine-tuned model's folder)")
    p.add_argument("out", help="output folder")
    p.add_argument("--count", type=int, default=1000, help="distinct numbers (default 1000)")
    p.add_argument("--maximum", type=int, default=10**6, help="largest number (default 1000000)")
    p.add_argument("--template", default="there are {} of them", help="carrier sentence; {} is the number")
    p.add_argument("--random-init", action="store_true", help="the same architecture with random weights")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs.numbers import NumbersRun, numbers

    summary = numbers(NumbersRun(model=args.model, out=args.out, count=args.count, maximum=args.maximum,
                                 template=args.template, random_init=args.random_init, seed=args.seed))
    print(f"best layer {summary['best_layer']} (R² {summary['best_r2']:.3f}); report in {args.out}/report.md")
    return 0
