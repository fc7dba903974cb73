"""`bertology demo`: the whole life of an encoder on real data, offline, in about 15 minutes on 2 CPU cores."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from ..runs.demo import STAGES

    p = sub.add_parser("demo", help="the main job: the whole life of an encoder on real data (~15 minutes on CPU)",
                       description="Pretrain a small Chinese BERT with whole-word masking on People's Daily, "
                                   "fine-tune it on review sentiment (against random initialisation and a TF-IDF "
                                   "baseline), distil and quantize it, time every variant, probe its layers and draw "
                                   "its attention; fine-tune the real MiniLM (full and LoRA) on WordNet glosses. "
                                   "Writes OUT/report.md with plots. A stage whose result exists is skipped; an "
                                   "interrupted one continues where it stopped.")
    p.add_argument("--out", default=None, help="where the data, runs and report go (default runs/demo, or "
                                               "runs/demo-quick with --quick)")
    p.add_argument("--quick", action="store_true", help="every stage at toy scale (about 3 minutes)")
    p.add_argument("--stages", default=None,
                   help="comma-separated stages to run (default all): " + ", ".join(s.name for s in STAGES))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs.demo import run_demo, select

    select(args.stages)  # an unknown stage name: one error before anything runs
    out = Path(args.out or ("runs/demo-quick" if args.quick else "runs/demo"))
    run_demo(out, quick=args.quick, stages=args.stages)
    return 0
