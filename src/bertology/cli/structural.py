"""`bertology structural`: Hewitt and Manning's distance and depth probes per layer on CoNLL-U trees."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ..runs.structural import KINDS

    p = sub.add_parser("structural", help="structural probes (tree distance and depth) on every layer",
                       description="Train Hewitt and Manning's distance probe and depth probe on each layer's word "
                                   "representations of the CoNLL-U trees in DATA (80/10/10 split by sentence) and "
                                   "score them on the test sentences: UUAS, distance Spearman, root accuracy, depth "
                                   "Spearman. Writes OUT/report.md, results.json and structural.png.")
    p.add_argument("model", help="model folder (an encoder, or a fine-tuned model's folder)")
    p.add_argument("data", help="a CoNLL-U file (e.g. from `bertology parse`)")
    p.add_argument("out", help="output folder")
    p.add_argument("--probes", default=",".join(KINDS), help="distance, depth or both (default both)")
    p.add_argument("--sentences", type=int, default=2000, help="sentences to read (default 2000)")
    p.add_argument("--pooling", default="mean", choices=("first", "mean"), help="a word's first piece or the mean")
    p.add_argument("--rank", type=int, help="rank of the probe's linear map (default: full)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--layers", help="comma-separated layers to probe, e.g. 0,3,-1 (default: all)")
    p.add_argument("--random-init", action="store_true", help="the same architecture with random weights")
    p.add_argument("--max-length", type=int, default=128, help="tokens per sentence; longer ones are left out")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..runs.probe import parse_layers
    from ..runs.structural import KINDS, StructuralRun, structural

    kinds = tuple(k.strip() for k in args.probes.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ConfigError(f"--probes {args.probes!r}: expected distance, depth or both")
    summary = structural(StructuralRun(model=args.model, data=args.data, out=args.out, kinds=kinds,
                                       sentences=args.sentences, pooling=args.pooling, rank=args.rank,
                                       epochs=args.epochs, random_init=args.random_init, seed=args.seed,
                                       max_length=args.max_length, layers=parse_layers(args.layers)))
    names = {"best_uuas": "UUAS", "best_dspr": "distance Spearman", "best_root_acc": "root accuracy",
             "best_nspr": "depth Spearman"}
    best = ", ".join(f"{names[k]} best at layer {v['layer']} ({v['value']:.4f})" for k, v in summary.items()
                     if k in names)
    print(f"{best}; report in {args.out}/report.md")
    return 0
