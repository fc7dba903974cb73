"""`bertology` entry point: each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import BertologyError, RunInterrupted
from ..utils.io import FILESYSTEM_ERRNOS, describe_os_error
from . import (
    attention,
    cloze,
    corpus,
    demo,
    distill,
    embed,
    export,
    finetune,
    info,
    numbers,
    parse,
    pretrain,
    probe,
    prune,
    quantize,
    reproduce,
    robustness,
    serve,
    structural,
    tokenizer,
)

COMMANDS = (demo, embed, info, pretrain, finetune, distill, quantize, prune, export, parse, probe, structural,
            attention, cloze, robustness, numbers, reproduce, serve, tokenizer, corpus)


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
    except RunInterrupted as exc:  # stopped by a signal after saving a checkpoint: not a success
        print(f"bertology {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C (or one before training started): stop at once, no traceback
        print(f"bertology {args.command}: stopped at once; the newest checkpoint in the run folder (if any) "
              "resumes it with --resume", file=sys.stderr)
        return 130
    except (BertologyError, FileNotFoundError, ValueError) as exc:
        # User errors: one clear line, no traceback (use -v for one).
        if args.verbose:
            raise
        print(f"bertology {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A file-system failure no write helper translated (no space, read-only, permission, a file in
        # the path): still one line naming the path and the cause.
        if args.verbose or exc.errno not in FILESYSTEM_ERRNOS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"bertology {args.command}: error: cannot access{where}: {describe_os_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
