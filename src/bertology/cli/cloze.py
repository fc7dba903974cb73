"""`bertology cloze`: fill-mask predictions, or LAMA-style facts scored by precision@k."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cloze", help="what a masked-LM predicts: fill-mask, or facts by precision@k",
                       description="With --text: the top-k fillers of each [MASK]. With --facts FILE (JSONL "
                                   "{template: '[X] was born in [Y].', subject, answer}): each answer is put as "
                                   "as many [MASK]s as it has word pieces and ranked among the beam's best "
                                   "piece sequences; prints precision@1/5/10 and writes OUT/report.md and "
                                   "results.json when --out is given.")
    p.add_argument("model", help="masked-LM model folder (e.g. a pretraining run's model/)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--text", help="a text holding [MASK] (the tokenizer's mask token)")
    group.add_argument("--facts", help="JSONL facts with templates")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--out", help="output folder for report.md and results.json (--facts)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..analysis.cloze import fill_mask, precision_at, read_facts, score_fact
    from ..models import load
    from ..runs.probe import load_folder_tokenizer
    from ..utils.io import atomic_write
    from ..utils.table import format_table, print_table

    model, tokenizer = load(args.model), load_folder_tokenizer(args.model)
    if args.text:
        text = args.text.replace("[MASK]", tokenizer.mask_token)
        for n, fillers in enumerate(fill_mask(model, tokenizer, text, args.top_k), 1):
            print(f"mask {n}:")
            print_table(["filler", "probability"], [[t, f"{p:.4f}"] for t, p in fillers])
        return 0
    facts = read_facts(args.facts)
    results = [score_fact(model, tokenizer, fact, max(args.top_k, 10)) for fact in facts]
    scores = {f"P@{k}": precision_at(results, k) for k in (1, 5, 10)}
    rows = [[r.fact.subject, r.fact.answer, str(r.pieces), str(r.rank or "-"), r.top[0][0] if r.top else ""]
            for r in results]
    header = ["subject", "answer", "pieces", "rank", "top prediction"]
    print_table(header, rows)
    print("  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "results.json") as handle:
            json.dump({"model": args.model, "facts": args.facts, **scores,
                       "results": [{"subject": r.fact.subject, "answer": r.fact.answer, "pieces": r.pieces,
                                    "rank": r.rank, "log_prob": r.log_prob, "top": r.top} for r in results]},
                      handle, indent=2, ensure_ascii=False)
        with atomic_write(out / "report.md") as handle:
            handle.write(f"# Cloze facts: {args.facts}\n\nModel {args.model}; "
                         + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()) + "\n\n"
                         + format_table(header, rows, markdown=True) + "\n")
    return 0
