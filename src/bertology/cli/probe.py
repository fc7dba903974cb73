"""`bertology probe`: probing classifiers per layer (with control tasks) on a tagged corpus."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ..analysis.probing import PROBES
    from ..runs.probe import FORMATS

    p = sub.add_parser("probe", help="probe every layer of a model for word tags, with control tasks",
                       description="Train a probe on each layer's frozen word representations (0 = embeddings) "
                                   "to predict the tags of DATA, and the same probe on a control task (a random "
                                   "tag per word type); write OUT/report.md, results.json and probe.png. The "
                                   "representations are computed once and cached in OUT.")
    p.add_argument("model", help="model folder (an encoder, or a fine-tuned model's folder)")
    p.add_argument("data", help="tagged sentences: CoNLL-U, PKU word/tag lines (People's Daily) or JSONL")
    p.add_argument("out", help="output folder")
    p.add_argument("--format", choices=FORMATS, help="default: from the file name (.conllu, .jsonl; else pku)")
    p.add_argument("--column", default="upos", help="CoNLL-U: upos or xpos; JSONL: the tag key (default upos)")
    p.add_argument("--probe", default="linear", choices=sorted(PROBES))
    p.add_argument("--pooling", default="first", choices=("first", "mean"), help="a word's first piece or the mean")
    p.add_argument("--sentences", type=int, default=2000, help="sentences to read (default 2000)")
    p.add_argument("--no-control", dest="control", action="store_false", help="skip the control task")
    p.add_argument("--random-init", action="store_true",
                   help="probe the same architecture with random weights (the baseline)")
    p.add_argument("--max-length", type=int, default=128,
                   help="tokens per sentence; later words are left out (default 128)")
    p.add_argument("--layers", help="comma-separated layers to probe, e.g. 0,3,-1 (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs.probe import ProbeRun, parse_layers, probe

    summary = probe(ProbeRun(model=args.model, data=args.data, out=args.out, format=args.format, column=args.column,
                             probe=args.probe, pooling=args.pooling, sentences=args.sentences, control=args.control,
                             random_init=args.random_init, seed=args.seed, max_length=args.max_length,
                             layers=parse_layers(args.layers)))
    print(f"best layer {summary['best_layer']} ({summary['best_accuracy']:.4f}); report in {args.out}/report.md")
    return 0
