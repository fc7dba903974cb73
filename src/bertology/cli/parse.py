"""`bertology parse`: tag and parse English text into a CoNLL-U file (silver trees) for probing."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse", help="tag and parse English text into CoNLL-U (silver trees, spaCy)",
                       description="Run spaCy's small English pipeline (pip install 'bertology[english]') over "
                                   "TEXT, one document per line, and write one CoNLL-U sentence per sentence "
                                   "found: the input `bertology probe` and `bertology structural` read. The tags "
                                   "and trees are a parser's output (silver standard), not hand annotation.")
    p.add_argument("text", help="text file, one document per line (blank lines skipped)")
    p.add_argument("out", help="the CoNLL-U file to write")
    p.add_argument("--lines", type=int, default=5000, help="lines to read (default 5000)")
    p.add_argument("--sentences", type=int, default=None, help="stop after this many sentences")
    p.add_argument("--min-words", type=int, default=3, help="skip shorter sentences (default 3)")
    p.add_argument("--max-words", type=int, default=60, help="skip longer sentences (default 60)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from itertools import islice

    from tqdm import tqdm

    from ..analysis.silver import parse_texts
    from ..analysis.trees import write_conllu
    from ..errors import DataError
    from ..runs.attention import read_lines

    texts = read_lines(args.text, args.lines)
    parsed = parse_texts(tqdm(texts, desc="parsing", unit="line", leave=False), min_words=args.min_words,
                         max_words=args.max_words, source=args.text)
    sentences = list(islice(parsed, args.sentences) if args.sentences else parsed)
    if not sentences:
        raise DataError(f"{args.text}: no sentence of {args.min_words}-{args.max_words} words found")
    write_conllu(sentences, args.out)
    words = sum(len(s) for s in sentences)
    print(f"{len(sentences)} sentences, {words} words from {len(texts)} lines -> {args.out} (silver: spaCy)")
    return 0
