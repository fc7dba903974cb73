"""`bertology demo`: fine-tune the real MiniLM on real WordNet glosses, compare full tuning and LoRA."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: fine-tune MiniLM on WordNet glosses (a few minutes on CPU)",
                       description="Fine-tune the installed all-MiniLM-L6-v2 to name the WordNet lexicographer "
                                   "file of a gloss (45 classes), full tuning against LoRA; print held-out scores "
                                   "and label new definitions.")
    p.add_argument("--out", default="runs/demo", help="where the data, runs and reports go (default runs/demo)")
    p.add_argument("--train", type=int, default=3000, help="training glosses (default 3000)")
    p.add_argument("--epochs", type=int, default=2)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs.demo import run_demo

    run_demo(Path(args.out), args.train, args.epochs)
    return 0
