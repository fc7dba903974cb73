"""`bertology tokenizer train`: a WordPiece vocabulary from text files."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer", help="train tokenizers", description="Tokenizer tools.")
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)
    t = tsub.add_parser("train", help="train a WordPiece vocabulary from text files",
                        description="Train a BERT WordPiece vocabulary and save it in the Hugging Face layout "
                                    "(vocab.txt, tokenizer.json, tokenizer_config.json).")
    t.add_argument("files", nargs="+", help="plain-text training files")
    t.add_argument("-o", "--output", required=True, help="folder to write the tokenizer to")
    t.add_argument("--kind", choices=("wordpiece", "bpe"), default="wordpiece",
                   help="wordpiece (BERT) or byte-level BPE (RoBERTa)")
    t.add_argument("--vocab-size", type=int, default=None, help="default: 30522 (wordpiece), 50265 (bpe)")
    t.add_argument("--min-frequency", type=int, default=2)
    t.add_argument("--limit-alphabet", type=int, default=1000,
                   help="most distinct characters kept (raise it for Chinese: one token per character)")
    t.add_argument("--cased", action="store_true", help="keep case (default: lower-case)")
    t.add_argument("--strip-accents", action=argparse.BooleanOptionalAction, default=None,
                   help="strip accents (default: whenever lower-casing)")
    t.add_argument("--no-split-cjk", action="store_true", help="do not split CJK characters one per token")
    t.add_argument("--model-max-length", type=int, default=512)
    t.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ..tokenization import ByteLevelBPETokenizer, WordPieceTokenizer

    for name in args.files:
        if not Path(name).is_file():
            raise FileNotFoundError(f"{name}: no such training file")
    if args.kind == "bpe":
        tok = ByteLevelBPETokenizer.train(
            args.files, vocab_size=args.vocab_size or 50265, min_frequency=args.min_frequency,
            model_max_length=args.model_max_length, show_progress=True,
        )
    else:
        tok = WordPieceTokenizer.train(
            args.files, vocab_size=args.vocab_size or 30522, lowercase=not args.cased,
            strip_accents=args.strip_accents, tokenize_chinese_chars=not args.no_split_cjk,
            min_frequency=args.min_frequency, model_max_length=args.model_max_length,
            limit_alphabet=args.limit_alphabet, show_progress=True,
        )
    folder = tok.save_pretrained(args.output)
    print(f"trained a vocabulary of {tok.vocab_size} tokens; saved to {folder}")
    return 0
