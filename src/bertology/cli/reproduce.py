"""`bertology reproduce CLAIM|all|--list`: the literature's claims re-run at small scale with several seeds."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="re-run the literature's claims at small scale, with several seeds",
                       description="Re-run a claim of the BERT literature (pretraining helps, whole-word masking, "
                                   "NSP, layer maps, int8, head pruning, probing, word order, ...) as a small "
                                   "experiment with several seeds: means and spreads, the paper's number beside "
                                   "ours, and a verdict. Models are built once in OUT and shared between claims.")
    p.add_argument("claim", nargs="?", help="a claim name (see --list) or all")
    p.add_argument("--list", action="store_true", help="name every claim with its cost")
    p.add_argument("--seeds", type=int, default=3, help="seeds per claim (default 3)")
    p.add_argument("--out", default="runs/reproduce", help="where models and reports go (default runs/reproduce)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..runs.reproduce import listing, resolve
    from ..runs.reproduce import run as reproduce
    from ..utils.table import print_table

    if args.list:
        print_table(["claim", f"cost ({args.seeds} seeds, 2 CPU cores)", "statement"], listing(args.seeds))
        return 0
    if not args.claim:
        raise ConfigError("give a claim name, all, or --list")
    resolve(args.claim)  # an unknown name: one error before anything runs
    reproduce(args.claim, Path(args.out), args.seeds)
    return 0
