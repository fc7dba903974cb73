"""Streaming document readers for corpus preparation: plain text, JSONL and PKU-tagged text.

Files are read as bytes, one line at a time with a length cap, so memory stays bounded by the longest
allowed line and one document whatever the corpus size, and a bad line (invalid UTF-8, binary junk, a
runaway line) is skipped and counted in a :class:`SkipLog` with its file:line instead of stopping the run
or vanishing unnoticed.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
import stat
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FileSystemError

__all__ = [
    "INPUT_FORMATS",
    "SKIP_REASONS",
    "Document",
    "LineReader",
    "SkipLog",
    "describe_odd_path",
    "iter_documents",
    "list_input_files",
    "parse_pku_line",
]

INPUT_FORMATS = ("text", "jsonl", "pku")

#: Every reason a line, sentence or document can be left out, with the words the summary uses.
SKIP_REASONS: dict[str, str] = {
    "invalid_utf8": "lines that are not valid UTF-8",
    "binary": "lines of binary junk (NUL bytes or mostly control characters)",
    "line_too_long": "lines longer than max_line_chars",
    "unreadable_file": "files that could not be read to the end (corrupt gzip, I/O error)",
    "jsonl_invalid_json": "JSONL lines that are not JSON",
    "jsonl_missing_field": "JSONL lines without the text field",
    "jsonl_field_not_text": "JSONL lines whose text field is not a string",
    "empty_document": "empty documents (no text, or no tokens)",
    "empty_sentence": "sentences that tokenize to nothing",
}

# Control bytes that are not whitespace; a line made mostly of them is not text.
_CONTROL = bytes([*range(0, 9), *range(14, 32), 127])
_BINARY_FRACTION = 0.5
_PKU_ID = re.compile(r"^\s*\d{8}-\d{2}-\d{3}-\d{3}/m(?=\s|$)")
# "/tag" (and "]tag" closing a compound) at the end of a token; "[" opening a compound at its start.
_PKU_TAG = re.compile(r"/[A-Za-z]+(?:\][A-Za-z]*)?(?=\s|$)")
_PKU_OPEN = re.compile(r"(?:(?<=\s)|^)\[(?=[^\s/])")
# JSON escapes can spell lone surrogates, which are not Unicode text and which no tokenizer accepts.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(slots=True)
class Document:
    """One document's text and where it starts ("file:line"), for messages about it."""

    text: str
    location: str


@dataclass
class SkipLog:
    """Counts of everything left out, by reason, with the first few locations of each."""

    max_examples: int = 5
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, location: str, n: int = 1) -> None:
        self.counts[reason] += n
        seen = self.examples.setdefault(reason, [])
        if len(seen) < self.max_examples:
            seen.append(location)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def list_input_files(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """The files to read, in a fixed order: each input as given, folders expanded recursively and sorted.

    Hidden files and folders (".name") inside a folder are left out; a missing input is an error, since
    a typo in a path must not produce a smaller corpus quietly. A FIFO, device, socket, dangling or looping
    symbolic link (given, or found in a folder) is named in a FileSystemError before anything is opened;
    symbolic links to folders inside a folder are not followed, so a link loop cannot make the walk endless.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = []
            for root, dirs, names in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found.extend(Path(root) / n for n in names if not n.startswith("."))
            for entry in sorted(found, key=lambda p: p.relative_to(path).parts):
                if entry.is_file():
                    files.append(entry)
                    continue
                odd = describe_odd_path(entry)
                if odd is not None:  # a FIFO, device or dangling link inside a folder is named, not skipped
                    raise FileSystemError(f"corpus input {path}: {entry} {odd}; remove it or give the files "
                                          "one by one")
        else:
            odd = describe_odd_path(path)
            if odd is None:
                raise FileNotFoundError(f"corpus input {path} does not exist")
            raise FileSystemError(f"corpus input {path} {odd}; give regular files or folders")
    return files


def describe_odd_path(path: str | os.PathLike) -> str | None:
    """What a path that is neither a regular file nor a folder is ("is a FIFO (named pipe)", "is a dangling
    symbolic link to X", ...), from ``os.stat``/``os.lstat`` only, so nothing is opened: opening a FIFO would
    block until a writer comes, and a device can be endless. None when nothing is there at all."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        try:
            link = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISLNK(link.st_mode):
            if exc.errno == errno.ELOOP:
                return "is a symbolic link loop (following it leads back to itself)"
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return f"is a dangling symbolic link to {target} (the target does not exist)"
        return f"cannot be read ({exc.strerror or exc})"
    for test, words in ((stat.S_ISFIFO, "is a FIFO (named pipe): reading it would wait for a writer"),
                        (stat.S_ISCHR, "is a character device, not a file"),
                        (stat.S_ISBLK, "is a block device, not a file"),
                        (stat.S_ISSOCK, "is a socket, not a file")):
        if test(mode):
            return words
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "is not a regular file or folder"


def _open_binary(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


class LineReader:
    """Good lines of one file as (line number, text), skipping and counting bad ones.

    Reads with ``readline(limit)`` so a line without newlines never grows past ~4 * max_line_chars bytes.
    """

    def __init__(self, max_line_chars: int, log: SkipLog) -> None:
        self.max_line_chars = max_line_chars
        # UTF-8 takes at most 4 bytes a character: more bytes than this is surely too many characters.
        self.limit = 4 * max_line_chars + 8
        self.log = log
        self.bytes_read = 0

    def lines(self, path: Path) -> Iterator[tuple[int, str]]:
        name = str(path)
        log = self.log
        limit = self.limit
        max_chars = self.max_line_chars
        lineno = 0
        try:
            with _open_binary(path) as handle:
                readline = handle.readline
                while True:
                    raw = readline(limit)
                    if not raw:
                        break
                    lineno += 1
                    self.bytes_read += len(raw)
                    if len(raw) >= limit and not raw.endswith(b"\n"):
                        while True:  # drain the rest of the runaway line without keeping it
                            more = readline(limit)
                            self.bytes_read += len(more)
                            if not more or more.endswith(b"\n"):
                                break
                        log.skip("line_too_long", f"{name}:{lineno}")
                        continue
                    raw = raw.rstrip(b"\r\n")
                    if raw and (b"\x00" in raw or len(raw) - len(raw.translate(None, _CONTROL))
                                > _BINARY_FRACTION * len(raw)):
                        log.skip("binary", f"{name}:{lineno}")
                        continue
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        log.skip("invalid_utf8", f"{name}:{lineno}")
                        continue
                    if lineno == 1 and line.startswith("\ufeff"):
                        line = line[1:]
                    if len(line) > max_chars:
                        log.skip("line_too_long", f"{name}:{lineno}")
                        continue
                    yield lineno, line
        except (OSError, EOFError, zlib.error) as exc:
            log.skip("unreadable_file", f"{name}:{lineno + 1} ({type(exc).__name__}: {exc})")


def parse_pku_line(line: str) -> str:
    """The text of one PKU-tagged line: tags and compound brackets removed, words joined without spaces.

    ``[中共/nt 中央/n]nt`` becomes ``中共中央``; a leading article id (``19980101-01-001-001/m``) is dropped.
    Regex substitutions rather than a loop over tokens: this runs in the reading process, the bottleneck.
    """
    line = _PKU_ID.sub("", line, count=1)
    line = _PKU_OPEN.sub("", _PKU_TAG.sub("", line))
    return "".join(line.split())


def iter_documents(
    files: Iterable[Path],
    log: SkipLog,
    input_format: str = "text",
    text_field: str = "text",
    doc_per_file: bool = False,
    doc_per_line: bool = False,
    max_line_chars: int = 100_000,
    reader: LineReader | None = None,
) -> Iterator[Document]:
    """Yield the documents of `files` in order, counting every line or document left out in `log`.

    text: a document is a block of lines between blank lines (or a whole file with `doc_per_file`, or
    one line with `doc_per_line`); jsonl: one document per line from `text_field`; pku: one document per
    line of ``word/tag`` tokens. Empty documents are counted, not yielded.
    """
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {list(INPUT_FORMATS)}, got {input_format!r}")
    if doc_per_file and doc_per_line:
        raise ValueError("choose at most one of doc_per_file and doc_per_line")
    if max_line_chars < 1:
        raise ValueError(f"max_line_chars must be positive, got {max_line_chars}")
    reader = reader or LineReader(max_line_chars, log)
    for path in files:
        name = str(path)
        if input_format == "jsonl":
            yield from _jsonl_documents(reader.lines(path), name, text_field, log)
        elif input_format == "pku":
            yield from _line_documents(reader.lines(path), name, log, parse_pku_line)
        elif doc_per_line:
            yield from _line_documents(reader.lines(path), name, log, None)
        elif doc_per_file:
            parts = [line for _, line in reader.lines(path)]
            text = "\n".join(parts).strip()
            if text:
                yield Document(text, f"{name}:1")
            else:
                log.skip("empty_document", f"{name}:1")
        else:
            yield from _block_documents(reader.lines(path), name)


def _block_documents(lines: Iterator[tuple[int, str]], name: str) -> Iterator[Document]:
    block: list[str] = []
    start = 0
    for lineno, line in lines:
        if line.strip():
            if not block:
                start = lineno
            block.append(line)
        elif block:
            yield Document("\n".join(block), f"{name}:{start}")
            block = []
    if block:
        yield Document("\n".join(block), f"{name}:{start}")


def _line_documents(lines: Iterator[tuple[int, str]], name: str, log: SkipLog, parse) -> Iterator[Document]:
    for lineno, line in lines:
        text = (parse(line) if parse else line).strip()
        if text:
            yield Document(text, f"{name}:{lineno}")
        else:
            log.skip("empty_document", f"{name}:{lineno}")


def _jsonl_documents(lines: Iterator[tuple[int, str]], name: str, text_field: str, log: SkipLog) -> Iterator[Document]:
    for lineno, line in lines:
        if not line.strip():
            continue  # a blank line holds no record, so nothing is lost
        try:
            record = json.loads(line)
        except ValueError:
            log.skip("jsonl_invalid_json", f"{name}:{lineno}")
            continue
        if not isinstance(record, dict) or text_field not in record:
            log.skip("jsonl_missing_field", f"{name}:{lineno}")
            continue
        text = record[text_field]
        if not isinstance(text, str):
            log.skip("jsonl_field_not_text", f"{name}:{lineno}")
            continue
        if _SURROGATE.search(text):
            log.skip("invalid_utf8", f"{name}:{lineno}")
            continue
        text = text.strip()
        if text:
            yield Document(text, f"{name}:{lineno}")
        else:
            log.skip("empty_document", f"{name}:{lineno}")
