"""Corpus preparation throughput: `prepare_corpus` on real text with the MiniLM (bert-base-uncased) vocabulary.

Workloads (inputs are written to a temporary folder first; only preparation is timed):
- English: every Debian English fortune (one document each) and every WordNet gloss (all four data files,
  one document each), as plain text with blank lines between documents;
- Chinese: the full People's Daily (January 1998, PKU format, one document a line) with jieba word starts,
  and the same without jieba (every character its own word) to show what jieba costs.

Reports documents, sentences, tokens and tokens/s (median of the runs). Target: >= 500k tokens/s for
English with 2 workers on the 2-core development machine.

Run: python benchmarks/corpus_prepare.py [--workers 2] [--runs 3] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertology import Tokenizer  # noqa: E402
from bertology.assets import (  # noqa: E402
    english_fortune_files,
    minilm_dir,
    peoples_daily_path,
    read_fortunes,
    wordnet_data_files,
)
from bertology.data import prepare_corpus  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402


def write_english(folder: Path) -> Path:
    """Fortunes and WordNet glosses as blank-line separated documents."""
    path = folder / "english.txt"
    with open(path, "w", encoding="utf-8") as out:
        for f in english_fortune_files():
            for entry in read_fortunes(f):
                out.write(entry + "\n\n")
        for f in wordnet_data_files():
            with open(f, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if " | " in line and not line.startswith("  "):
                        out.write(line.split(" | ", 1)[1].strip() + "\n\n")
    return path


def measure(name: str, inputs: list[Path], out: Path, tokenizer: Tokenizer, runs: int, **options) -> list[str]:
    speeds = []
    summary = None
    for _ in range(runs):
        summary = prepare_corpus(inputs, out, tokenizer, overwrite=True, progress=False, **options)
        speeds.append(summary.tokens_per_second)
        print(f"  {name}: {summary.seconds:.2f} s, {summary.tokens_per_second:,.0f} tokens/s", file=sys.stderr)
    assert summary is not None
    return [name, f"{summary.documents:,}", f"{summary.sentences:,}", f"{summary.tokens:,}",
            f"{summary.bytes_read / 1e6:.1f}", f"{statistics.median(speeds):,.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    args = parser.parse_args()

    tokenizer = Tokenizer.from_pretrained(minilm_dir())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bertology-corpus-bench-") as tmp:
        tmp = Path(tmp)
        english = write_english(tmp)
        rows.append(measure("English (fortunes + WordNet)", [english], tmp / "en", tokenizer, args.runs,
                            workers=args.workers))
        rows.append(measure("English, --record-case", [english], tmp / "en", tokenizer, args.runs,
                            workers=args.workers, record_case=True))
        rows.append(measure("People's Daily, jieba words", [peoples_daily_path()], tmp / "zh", tokenizer,
                            args.runs, workers=args.workers, input_format="pku", chinese_words="jieba"))
        rows.append(measure("People's Daily, no jieba", [peoples_daily_path()], tmp / "zh", tokenizer,
                            args.runs, workers=args.workers, input_format="pku", chinese_words=None))
    header = ("workload", "documents", "sentences", "tokens", "MB read", f"tokens/s (median of {args.runs})")
    print(f"workers={args.workers}")
    print(format_table(header, rows))
    if args.markdown:
        Path(args.markdown).write_text(format_table(header, rows, markdown=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
