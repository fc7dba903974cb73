"""`bertology embed`: sentence embeddings for lines of text, to JSONL or .npy."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..device import add_device_flag
from ..models.pooling import POOLERS
from ..utils.io import atomic_path, atomic_write


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed texts (one per line) with a model folder",
                       description="Embed each line of a text file (or stdin) and write JSONL or .npy; "
                                   "one output row per input line, in order.")
    p.add_argument("--model", required=True, help="Hugging Face-format model folder (weights + vocab)")
    p.add_argument("input", nargs="?", default="-", help="text file, one text per line; '-' for stdin")
    p.add_argument("-o", "--output", default="-",
                   help="output .npy or .jsonl file; '-' writes JSONL to stdout (default)")
    p.add_argument("--pooling", choices=sorted(POOLERS), default="mean")
    p.add_argument("--normalize", action="store_true", help="scale each embedding to unit length")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=None, help="truncate texts to this many tokens")
    p.add_argument("--no-bucket", dest="bucket", action="store_false",
                   help="batch texts in input order instead of by length (same vectors, more padding)")
    p.add_argument("--bf16", action="store_true",
                   help="run under bfloat16 autocast on the chosen device (fast on GPUs and AMX CPUs)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="torch (default), or onnx: onnxruntime on the CPU (pip install 'bertology[export]'); "
                        "--model may then be a folder or .onnx file from `bertology export`, and a model folder "
                        "is exported into MODEL/onnx/ on first use")
    add_device_flag(p)
    p.set_defaults(run=run)


def _read_lines(source: str) -> list[str]:
    if source == "-":
        return [line.rstrip("\n") for line in sys.stdin]
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not valid UTF-8 ({exc.reason})") from None


def run(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..inference import SentenceEncoder  # torch import deferred so `--help` is instant

    onnx = args.backend == "onnx"
    device = resolve_device(args.device or ("cpu" if onnx else "auto"))  # before any text or weights are read
    texts = _read_lines(args.input)
    options = dict(pooling=args.pooling, normalize=args.normalize, batch_size=args.batch_size,
                   max_length=args.max_length, bf16=args.bf16, sort_by_length=args.bucket, device=device)
    if onnx:
        from ..inference.onnx_runtime import onnx_sentence_encoder

        encoder = onnx_sentence_encoder(args.model, **options)
    else:
        encoder = SentenceEncoder.from_pretrained(args.model, **options)
    vectors = encoder.encode(texts, progress=args.output != "-" and sys.stderr.isatty())
    if args.output.endswith(".npy"):
        with atomic_path(args.output) as tmp, open(tmp, "wb") as handle:
            np.save(handle, vectors)
    else:
        lines = (json.dumps({"line": i + 1, "text": t, "embedding": [round(float(x), 7) for x in v]},
                            ensure_ascii=False) + "\n" for i, (t, v) in enumerate(zip(texts, vectors, strict=True)))
        if args.output == "-":
            sys.stdout.writelines(lines)
        else:
            with atomic_write(args.output) as handle:
                handle.writelines(lines)
    if args.output != "-":
        print(f"wrote {len(texts)} embeddings of size {vectors.shape[1]} to {args.output}", file=sys.stderr)
    return 0
