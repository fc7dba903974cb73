"""`bertology attention`: per-head attention statistics, heads grouped by behaviour, heatmaps."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="what every attention head attends to, over a text file",
                       description="Average each head's entropy and its shares of attention to [CLS], [SEP], "
                                   "punctuation, the previous/next token and itself over DATA (one sentence per "
                                   "line), group the heads by behaviour, draw one head per group; write "
                                   "OUT/report.md, results.json and heads.png.")
    p.add_argument("model", help="model folder (an encoder, or a fine-tuned model's folder)")
    p.add_argument("data", help="text file, one sentence per line")
    p.add_argument("out", help="output folder")
    p.add_argument("--sentences", type=int, default=500, help="lines to read (default 500)")
    p.add_argument("--groups", type=int, default=5, help="head groups (k-means k, default 5)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs.attention import AttentionRun, attention

    attention(AttentionRun(model=args.model, data=args.data, out=args.out, sentences=args.sentences,
                           groups=args.groups, max_length=args.max_length, seed=args.seed))
    print(f"report in {args.out}/report.md")
    return 0
