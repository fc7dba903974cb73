"""The shapes every task kind shares: column names, the checked example, a skippable bad row, text helpers.

A leaf module (it imports no task kind), so that the kinds, the reader and the label sets can all use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..utils.typed import check_fields

#: suffixes read as CoNLL (one ``word<TAB>tag`` per line, a blank line between sentences)
CONLL_SUFFIXES = (".conll", ".bio", ".bioes", ".iob", ".txt")

__all__ = ["CONLL_SUFFIXES", "BadRow", "Columns", "Example", "numbered_lines", "read_text", "require_text", "short"]


@dataclass
class Columns:
    """Names of the fields in the user's file (CSV/TSV header names or JSON keys).

    ``text_pair`` names the second text of a sentence-pair task (None: single texts).  ``context`` is
    the passage for QA and the optional passage for multiple choice; ``id`` is read when present.
    """

    text: str = "text"
    text_pair: str | None = None
    label: str = "label"
    tokens: str = "tokens"
    tags: str = "tags"
    question: str = "question"
    choices: str = "choices"
    context: str = "context"
    answers: str = "answers"
    id: str = "id"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "") -> None:
        check_fields(self, where)
        for name, value in vars(self).items():
            if not (isinstance(value, str) and value) and not (name == "text_pair" and value is None):
                raise ConfigError(f"{where}field '{name}' must be a non-empty column name, got {value!r}")


@dataclass
class Example:
    """One row of a task file, in the same shape for every format.

    * classification / regression: ``text`` (and ``text_pair``), ``label`` a class name, a list of
      names (multi-label) or a float.
    * tagging: ``text`` is the list of words, ``label`` the list of tags (one per word).
    * qa: ``text`` is the context, ``text_pair`` the question, ``answers`` a list of ``{text, start}``.
    * multiple_choice: ``text`` is the question, ``text_pair`` the optional context, ``choices`` the
      candidate answers, ``label`` the index of the right one.

    ``source`` is ``"file:line"`` so that any later problem can point back at the row.
    """

    text: str | list[str]
    text_pair: str | None = None
    label: str | float | int | list[str] | None = None
    choices: list[str] | None = None
    answers: list[dict[str, Any]] | None = None
    id: str | None = None
    source: str = ""


class BadRow(Exception):
    """A skippable problem with one row: a short reason (for counting) and the full explanation."""

    def __init__(self, reason: str, detail: str | None = None, where: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason
        #: the exact file:line when it differs from the row's start (a line inside a CoNLL sentence)
        self.where = where


def short(value: Any, limit: int = 60) -> str:
    """A value for a message, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_text(value: Any, what: str) -> str:
    """A non-empty string, else a bad row naming `what`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRow("empty text", f"empty {what}")
    if not isinstance(value, str):
        raise BadRow("wrong type", f"the {what} must be a string, got {type(value).__name__} {short(value)}")
    return value


def read_text(path: Path) -> str:
    """The file as text; invalid UTF-8 is an error naming the line (a byte offset helps nobody)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 ({exc.reason}); save the file as UTF-8") from None


def numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) pairs without line ends; trailing blank lines are dropped.

    Splits on newlines only: str.splitlines would also split on characters JSON strings may hold raw.
    """
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        yield number, line.rstrip("\r")
