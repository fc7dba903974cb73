"""`bertology prune`: make a fine-tuned model smaller by removing heads, feed-forward neurons or layers.

Head importance (Michel et al. 2019) is measured on --data with the task's own loss; the least important
heads (or random ones, the baseline) are removed from the matrices, so the saved model is really smaller and
`bertology evaluate` reads it like any fine-tuned model. A short recovery fine-tuning (--recover-epochs on
--train) may follow. The output folder holds model/ (with its tokenizer), head_importance.md/.json/.png
(before pruning), report.md, results.json and metric_vs_speed.png comparing the original and the pruned model,
and prune_summary.json (what was removed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..device import add_device_flag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="remove attention heads, feed-forward neurons or layers from a fine-tuned model",
                       description="Prune MODEL (a fine-tuned model folder) into OUT: head importance on --data "
                                   "(the task loss's gradient at a gate on each head), then the least important "
                                   "heads (--heads), neurons (--neurons) and whole layers (--drop-layers) are "
                                   "removed so the matrices shrink; optional recovery fine-tuning; a compression "
                                   "report (parameters, size, latency, tokens/s, --test metric).")
    p.add_argument("model", help="fine-tuned model folder (a run's model/)")
    p.add_argument("out", help="output folder (model/, importance table and heatmap, report)")
    p.add_argument("--data", required=True, help="labelled task file to measure importance on")
    p.add_argument("--heads", help="heads to remove: a count (e.g. 24) or a fraction of all heads (e.g. 0.3)")
    p.add_argument("--by", choices=("importance", "random"), default="importance",
                   help="which heads go: the least important (default) or random ones (the baseline)")
    p.add_argument("--per-layer", action="store_true", help="--heads counts per layer instead of over the model")
    p.add_argument("--neurons", type=float, help="fraction of each layer's feed-forward neurons to remove")
    p.add_argument("--neurons-by", choices=("gradient", "magnitude"), default="gradient",
                   help="neuron importance: gradient at a gate on each neuron (default) or weight magnitude")
    p.add_argument("--drop-layers", metavar="SPEC", help="drop whole layers first: top:N, bottom:N, every-other, "
                                                         "or layer numbers i,j")
    p.add_argument("--recover-epochs", type=int, default=0, help="fine-tune this many epochs after pruning")
    p.add_argument("--train", help="training file for --recover-epochs")
    p.add_argument("--learning-rate", type=float, default=2e-5, help="recovery learning rate (default 2e-5)")
    p.add_argument("--test", help="labelled file to score the original and the pruned model on")
    p.add_argument("--task", help="task name (default: the model's first task)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-batches", type=int, default=0, help="measure importance on at most this many batches")
    p.add_argument("--seed", type=int, default=0, help="seed of --by random and of the recovery run")
    p.add_argument("--no-speed", dest="speed", action="store_false", help="skip the latency/throughput timing")
    p.add_argument("--overwrite", action="store_true", help="replace what OUT already holds")
    add_device_flag(p, "the CPU")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs.guard import claim_run_folder
    from ..runs.prune import PruneRun, check, prune

    options = {k: getattr(args, k) for k in PruneRun.__dataclass_fields__}
    config = PruneRun(**options)
    check(config)  # before the folder is claimed
    with claim_run_folder(config.out, overwrite=args.overwrite):
        summary = prune(config)
    print(f"pruned: {summary['parameters_before']:,} -> {summary['parameters_after']:,} encoder parameters; "
          f"model in {Path(config.out) / 'model'}")
    return 0
