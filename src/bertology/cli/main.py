"""`bertology` entry point: each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import BertologyError
from . import corpus, demo, embed, finetune, info, pretrain, tokenizer

COMMANDS = (demo, embed, info, pretrain, finetune, tokenizer, corpus)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertology",
        description="Tokenize, pretrain, fine-tune, compress and look inside BERT-family encoders.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except (BertologyError, FileNotFoundError, ValueError) as exc:
        # User errors: one clear line, no traceback (use -v for one).
        if args.verbose:
            raise
        print(f"bertology {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
