"""`bertology robustness`: how often a fine-tuned classifier's predictions change under shuffled, truncated
or edited input."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ..analysis.robustness import PERTURBATIONS

    p = sub.add_parser("robustness", help="how a classifier's predictions move when its input is disturbed",
                       description="Classify each line of TEXTS, then each line disturbed (shuffled words, first "
                                   "half only, one word replaced, one word removed); report the share of "
                                   "changed predictions and the mean drop of the original class's probability. "
                                   "Writes OUT/report.md and results.json when --out is given.")
    p.add_argument("model", help="a fine-tuned classification model folder")
    p.add_argument("texts", help="text file, one input per line")
    p.add_argument("--perturbations", default=",".join(PERTURBATIONS),
                   help=f"comma-separated, from {', '.join(PERTURBATIONS)} (default: all)")
    p.add_argument("--lines", type=int, default=1000, help="lines to read (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np
    import torch

    from ..analysis.robustness import measure, results_table
    from ..errors import ConfigError
    from ..finetuning.session import load_for_inference
    from ..runs.attention import read_lines
    from ..utils.io import atomic_write

    session = load_for_inference(args.model, device="cpu")
    if session.config.kind != "classification":
        raise ConfigError(f"{args.model}: robustness reads a classifier's probabilities; this head is "
                          f"{session.config.kind!r}")
    model, tokenizer = session.model.eval(), session.tokenizer
    limit = min(session.config.max_length, model.encoder.config.max_position_embeddings)

    @torch.no_grad()
    def predict(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), 64):
            batch = tokenizer(texts[start:start + 64], max_length=limit)
            logits = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")},
                           task=session.name).outputs["logits"]
            out.append(torch.softmax(logits.float(), -1).numpy())
        return np.concatenate(out)

    texts = read_lines(args.texts, args.lines)
    results = measure(predict, texts, [p.strip() for p in args.perturbations.split(",") if p.strip()], args.seed)
    print(results_table(results))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "results.json") as handle:
            json.dump({"model": args.model, "texts": args.texts, "results": [r.__dict__ for r in results]}, handle,
                      indent=2)
        with atomic_write(out / "report.md") as handle:
            handle.write(f"# Robustness of {args.model}\n\n{len(texts)} lines of {args.texts}; seed {args.seed}.\n\n"
                         + results_table(results, markdown=True) + "\n")
    return 0
