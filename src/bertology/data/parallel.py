"""Parallel text for translation language modelling (XLM's TLM): reading sentence pairs for corpus preparation.

`bertology corpus prepare --input-format parallel --languages en,zh INPUT...` reads each INPUT as either

- a TSV file (or a folder of them): one pair a line, ``source<TAB>target``;
- two aligned files given as one input ``SOURCE_FILE::TARGET_FILE``: line n of one is the translation of
  line n of the other.

Each pair becomes one document of exactly two sentences, source then target, never split further (a
translation cut into pieces is no longer aligned). Pairs that cannot be used are counted, with file:line,
like any bad line: a TSV line without exactly one tab, a pair with an empty side, a pair whose other line
was unreadable, a side that tokenizes to nothing or to more than `max_sentence_tokens`. Two files with
different line counts are refused before anything is written, since no pairing of them can be trusted.
The corpus meta records ``"parallel": true`` and the two language names; the order of the names is the
order of the sides, and so the language ids (0 = source, 1 = target) the `parallel` input format gives.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .sources import Document, LineReader, SkipLog, list_input_files

__all__ = [
    "PAIR_SEPARATOR",
    "PARALLEL_SKIP_REASONS",
    "ParallelInput",
    "check_languages",
    "count_lines",
    "iter_parallel_documents",
    "keep_whole_pairs",
    "parallel_inputs",
    "parallel_languages",
    "split_pair",
]

#: joins the two files of one input: ``en.txt::zh.txt``
PAIR_SEPARATOR = "::"
#: joins the two sides in a document's text; a line read from a file never holds one
SIDE_SEPARATOR = "\n"

#: what the preparation summary says for each reason a pair is left out
PARALLEL_SKIP_REASONS: dict[str, str] = {
    "parallel_bad_tsv": "parallel TSV lines without exactly one tab",
    "parallel_empty_side": "parallel pairs with an empty side (no text, or no tokens)",
    "parallel_partner_skipped": "parallel pairs whose other line was skipped (see its reason)",
    "parallel_side_too_long": "parallel pairs with a side longer than max_sentence_tokens",
}


@dataclass(frozen=True)
class ParallelInput:
    """One input: a TSV file (`target` None) or two aligned files (source lines, target lines)."""

    source: Path
    target: Path | None = None

    @property
    def files(self) -> list[Path]:
        return [self.source] if self.target is None else [self.source, self.target]


def check_languages(languages: Any, where: str = "") -> list[str]:
    """The two language names of a parallel corpus, checked: two distinct non-empty names without commas."""
    if not isinstance(languages, list) or len(languages) != 2 or not all(isinstance(x, str) for x in languages):
        raise ConfigError(f"{where}input_format 'parallel' needs 'languages': two names, source then target "
                          f"(e.g. --languages en,zh), got {languages!r}")
    names = [x.strip() for x in languages]
    if not all(names) or names[0] == names[1] or any("," in x for x in names):
        raise ConfigError(f"{where}field 'languages' must hold two distinct non-empty names, got {languages!r}")
    return names


def parallel_languages(meta: dict[str, Any]) -> list[str] | None:
    """The language names (source, target) of a prepared corpus's meta, or None when it is not parallel."""
    if not meta.get("parallel"):
        return None
    return list(meta.get("languages") or [])


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def count_lines(path: Path) -> int:
    """Lines of a file as `LineReader` numbers them (a last line without a newline counts)."""
    count, last = 0, b"\n"
    with _open(path) as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def parallel_inputs(inputs: Iterable[str | os.PathLike]) -> list[ParallelInput]:
    """The inputs of a parallel corpus: ``A::B`` as two aligned files, anything else as TSV files (folders
    expanded as for other formats). Two files with different line counts are refused, naming both."""
    out: list[ParallelInput] = []
    for item in inputs:
        text = os.fspath(item)
        if PAIR_SEPARATOR not in text:
            out.extend(ParallelInput(path) for path in list_input_files([text]))
            continue
        parts = text.split(PAIR_SEPARATOR)
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"parallel input {text!r}: expected SOURCE_FILE{PAIR_SEPARATOR}TARGET_FILE")
        source, target = (Path(p) for p in parts)
        for path in (source, target):
            if not path.is_file():
                raise FileNotFoundError(f"parallel input {path} does not exist or is not a file")
        counts = count_lines(source), count_lines(target)
        if counts[0] != counts[1]:
            raise DataError(f"parallel files are not aligned: {source} has {counts[0]} lines, {target} has "
                            f"{counts[1]}; line n of one must be the translation of line n of the other")
        out.append(ParallelInput(source, target))
    return out


def split_pair(text: str) -> list[str]:
    """The two sides of a parallel document's text (what `iter_parallel_documents` joined)."""
    return text.split(SIDE_SEPARATOR)


def _pair(source: str, target: str, location: str, log: SkipLog) -> Document | None:
    source, target = source.strip(), target.strip()
    if not source and not target:
        return None  # a blank line holds no pair, so nothing is lost
    if not source or not target:
        log.skip("parallel_empty_side", location)
        return None
    return Document(f"{source}{SIDE_SEPARATOR}{target}", location)


def _tsv_documents(lines: Iterator[tuple[int, str]], name: str, log: SkipLog) -> Iterator[Document]:
    for lineno, line in lines:
        location = f"{name}:{lineno}"
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            log.skip("parallel_bad_tsv", location)
            continue
        doc = _pair(parts[0], parts[1], location, log)
        if doc is not None:
            yield doc


def _aligned_documents(pair: ParallelInput, reader: LineReader, log: SkipLog) -> Iterator[Document]:
    """Pairs of two aligned files by line number: a line the reader skipped (bad UTF-8, binary, too long) is
    counted there, and its partner here, so the two files never drift apart."""
    assert pair.target is not None
    left, right = reader.lines(pair.source), reader.lines(pair.target)
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if a is not None and b is not None and a[0] == b[0]:
            doc = _pair(a[1], b[1], f"{pair.source}:{a[0]}", log)
            if doc is not None:
                yield doc
            a, b = next(left, None), next(right, None)
        elif b is None or (a is not None and a[0] < b[0]):
            if a is not None and a[1].strip():
                log.skip("parallel_partner_skipped", f"{pair.source}:{a[0]}")
            a = next(left, None)
        else:
            if b[1].strip():
                log.skip("parallel_partner_skipped", f"{pair.target}:{b[0]}")
            b = next(right, None)


def iter_parallel_documents(inputs: Sequence[ParallelInput], log: SkipLog, reader: LineReader) -> Iterator[Document]:
    """One document per usable pair, in input order; its text is ``source\\ntarget`` (see `split_pair`)."""
    for item in inputs:
        if item.target is None:
            yield from _tsv_documents(reader.lines(item.source), str(item.source), log)
        else:
            yield from _aligned_documents(item, reader, log)


def keep_whole_pairs(lengths: np.ndarray, locations: Sequence[str],
                     max_tokens: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Which sentences of a tokenized batch of pairs to keep (both sides of a pair or neither), and the
    skips: a pair goes when a side has no tokens or more than `max_tokens` (cutting a side into chunks,
    as other formats do with long sentences, would break the pairing).

    `lengths` holds two entries per pair (source, target); `locations` one per pair.
    """
    sides = np.asarray(lengths, dtype=np.int64).reshape(-1, 2)
    empty = (sides == 0).any(axis=1)
    long = ~empty & (sides > max_tokens).any(axis=1)
    skips = [("parallel_empty_side" if empty[i] else "parallel_side_too_long", locations[i])
             for i in np.flatnonzero(empty | long)]
    return np.repeat(~(empty | long), 2), skips
