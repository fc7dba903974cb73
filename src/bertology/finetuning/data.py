"""Task files in, checked examples out (label sets: `labels.py`; cleaning and splitting: `cleaning.py`).

Users bring their own files, so every row is checked before it reaches a model, and a bad row is
reported with its file and line rather than surfacing later as a shape error or a silently wrong score.
``on_error="raise"`` stops at the first bad row; ``on_error="skip"`` drops it, keeps ``(source, reason)``
in :attr:`ReadResult.skipped` and logs each kind of problem once with a count.  A *missing column* is
never skippable: it is a mismatch between the file and the configured :class:`Columns`, which would
otherwise drop every row.

The reader knows the file formats; the task kind (``finetuning.tasks``) knows which suffixes it accepts
and turns each row into an :class:`Example`. Formats, chosen by suffix:

* classification / regression: ``.csv``, ``.tsv`` (a header row is required; TSV is read without
  quoting, as GLUE's files need) or ``.jsonl`` (one JSON object per line).  A JSONL label that is a list
  makes the example multi-label.
* tagging: CoNLL (``.conll``, ``.bio``, ``.bioes``, ``.iob``, ``.txt``: one ``word<TAB>tag`` or
  ``word tag`` per line, the word first and the tag last so CoNLL-2003's four columns work, a blank line
  between sentences, ``-DOCSTART-`` ignored) or ``.jsonl`` with a list of words and a list of tags.
* qa: SQuAD v1.1 ``.json`` (data -> paragraphs -> context, qas -> id, question, answers) or ``.jsonl``
  with context, question and answers (a list of ``{text, answer_start}``, or Hugging Face's
  ``{text: [...], answer_start: [...]}``).  Every answer must match the context at its offset.
* multiple_choice: ``.jsonl`` whose choices field is a list, or ``.csv``/``.tsv`` with either a choices
  column holding a JSON list or numbered columns ``<choices>0``, ``<choices>1``, ... (SWAG's
  ``ending0``..``ending3`` with ``choices: ending``).  The label is a 0-based index, a letter (``A`` = 0)
  or the text of the right choice; an optional context column (e.g. RACE's article) comes first.

Blank lines at the very end of a file are ignored (editors add them); anywhere else they are bad rows,
except in CoNLL where they separate sentences.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from .examples import CONLL_SUFFIXES, BadRow, Columns, Example, numbered_lines, read_text
from .tasks import TaskKind, task_kind

logger = logging.getLogger(__name__)

__all__ = ["CONLL_SUFFIXES", "Columns", "Example", "ReadResult", "Reader", "numbered_lines", "read_examples",
           "read_text"]


@dataclass
class ReadResult:
    """What :func:`read_examples` found: the good examples and the rows it skipped, with why."""

    examples: list[Example]
    skipped: list[tuple[str, str]]
    path: Path
    #: reason -> number of rows skipped for it
    reasons: dict[str, int] = field(default_factory=dict)


def read_examples(
    path: str | os.PathLike,
    kind: str | TaskKind,
    columns: Columns | None = None,
    on_error: str = "raise",
    require_labels: bool = True,
) -> ReadResult:
    """Read a task file into :class:`Example` objects, checking every row.

    ``require_labels=False`` is for prediction files: labels (tags, answers, the right choice) may be
    absent, and are read and checked when present.  Raises :class:`~bertology.errors.DataError` naming
    the file and line of the first bad row (``on_error="raise"``), or skips and counts bad rows
    (``on_error="skip"``); a missing column always raises.
    """
    kind = task_kind(kind)
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    return Reader(Path(path), kind, columns or Columns(), on_error, require_labels).run()


class Reader:
    """Reads one file for a task kind: the format by suffix, each row by the kind, bad rows by the policy.

    A kind's `row` and `check_header` use `columns`, `require_labels`, `need`, `ident`, `missing`,
    `require_columns` and `state` (per-file memory, e.g. the first example's number of choices).
    """

    def __init__(self, path: Path, kind: TaskKind, columns: Columns, on_error: str, require_labels: bool) -> None:
        self.path = path
        self.name = str(path)
        self.kind = kind
        self.columns = columns
        self.on_error = on_error
        self.require_labels = require_labels
        self.state: dict[str, Any] = {}
        self.examples: list[Example] = []
        self.skipped: list[tuple[str, str]] = []
        self.reasons: Counter[str] = Counter()
        self.first: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------------------ driving
    def run(self) -> ReadResult:
        suffix = self.path.suffix.lower()
        allowed = self.kind.suffixes
        if suffix not in allowed:
            raise DataError(
                f"{self.name}: cannot read a {self.kind.name} file with suffix {suffix or '(none)'!r}; "
                f"expected one of {list(allowed)}"
            )
        if not self.path.is_file():
            if self.path.is_dir():
                raise DataError(f"{self.name}: is a folder, not a file")
            if self.path.exists():
                raise DataError(f"{self.name}: not a regular file (a FIFO, socket or device cannot be read as data)")
            raise DataError(f"{self.name}: no such file")
        text = read_text(self.path)
        if suffix == ".jsonl":
            self._read_jsonl(text)
        elif suffix in (".csv", ".tsv"):
            self._read_table(text, "\t" if suffix == ".tsv" else ",")
        elif suffix == ".json":
            self._read_squad(text)
        else:
            self._read_conll(text)
        for reason, count in self.reasons.items():
            where, detail = self.first[reason]
            logger.warning("%s: skipped %d row(s): %s (first at %s: %s)", self.name, count, reason, where, detail)
        return ReadResult(self.examples, self.skipped, self.path, dict(self.reasons))

    def _add(self, source: str, build: Any, *args: Any) -> None:
        """Build one example, keeping it, raising or skipping per the policy."""
        try:
            example = build(*args)
        except BadRow as bad:
            where = bad.where or source
            if self.on_error == "raise":
                raise DataError(f"{where}: {bad.detail}") from None
            self.skipped.append((where, bad.detail))
            self.reasons[bad.reason] += 1
            self.first.setdefault(bad.reason, (where, bad.detail))
            return
        if example is not None:
            self.examples.append(example)

    # ------------------------------------------------------------------------ for the kinds
    def missing(self, source: str, column: str, option: str, found: Iterable[str], hint: str = "") -> DataError:
        """The error for a column the file lacks (never skippable: it would drop every row)."""
        return DataError(
            f"{source}: missing column {column!r} (columns.{option}); the columns found are {list(found)}"
            + (f"; {hint}" if hint else "")
            + f". Rename the column or set columns.{option}"
        )

    def need(self, row: Mapping[str, Any], column: str, option: str, source: str) -> Any:
        """The value of `column` in `row`; a missing one raises naming the columns found."""
        if column not in row:
            raise self.missing(source, column, option, list(row))
        return row[column]

    def ident(self, row: Mapping[str, Any]) -> str | None:
        """The row's id (`columns.id`) as a string, or None."""
        value = row.get(self.columns.id)
        return None if value is None or value == "" else str(value)

    def require_columns(self, header: list[str], required: Iterable[tuple[str, str]], source: str) -> None:
        """Each (column, option) must be in the header."""
        for column, option in required:
            if column not in header:
                raise self.missing(source, column, option, header)

    # ------------------------------------------------------------------------------ formats
    def _read_jsonl(self, text: str) -> None:
        for number, line in numbered_lines(text):
            source = f"{self.name}:{number}"
            self._add(source, self._jsonl_row, line, source)

    def _jsonl_row(self, line: str, source: str) -> Example:
        if not line.strip():
            raise BadRow("empty line")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRow("malformed JSON", f"malformed JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise BadRow("not a JSON object", f"expected a JSON object, got a {type(row).__name__}")
        return self.kind.row(self, row, source)

    def _read_table(self, text: str, delimiter: str) -> None:
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
        rows: list[tuple[int, list[str]]] = []
        previous = 0
        try:
            for row in reader:
                rows.append((previous + 1, row))
                previous = reader.line_num
        except csv.Error as exc:
            raise DataError(f"{self.name}:{previous + 1}: cannot parse the row ({exc})") from None
        while rows and not any(cell.strip() for cell in rows[-1][1]):
            rows.pop()
        if not rows:
            raise DataError(f"{self.name}: the file is empty; expected a header row naming the columns")
        header = [cell.strip() for cell in rows[0][1]]
        duplicated = sorted(name for name, n in Counter(header).items() if n > 1)
        if duplicated:
            raise DataError(f"{self.name}:{rows[0][0]}: the header repeats column(s) {duplicated}")
        self.kind.check_header(self, header, f"{self.name}:{rows[0][0]}")
        for number, cells in rows[1:]:
            source = f"{self.name}:{number}"
            self._add(source, self._table_row, header, cells, source)

    def _table_row(self, header: list[str], cells: list[str], source: str) -> Example:
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            raise BadRow("empty line")
        if len(cells) < len(header):
            raise BadRow("too few columns", f"too few columns: {len(cells)} field(s) but the header has "
                                            f"{len(header)} ({header})")
        if len(cells) > len(header):
            raise BadRow("too many columns", f"too many columns: {len(cells)} fields but the header has "
                                             f"{len(header)} ({header}); is a separator inside an unquoted text?")
        return self.kind.row(self, dict(zip(header, cells, strict=True)), source)

    def _read_conll(self, text: str) -> None:
        sentence: list[tuple[int, str]] = []
        for number, line in [*numbered_lines(text), (-1, "")]:
            if line.strip():
                if _conll_fields(line)[0] != "-DOCSTART-":
                    sentence.append((number, line))
                continue
            if sentence:
                source = f"{self.name}:{sentence[0][0]}"
                self._add(source, self._conll_sentence, sentence, source)
                sentence = []

    def _conll_sentence(self, lines: list[tuple[int, str]], source: str) -> Example:
        words: list[str] = []
        tags: list[str | None] = []
        for number, line in lines:
            fields = _conll_fields(line)
            where = f"{self.name}:{number}"
            if not fields[0]:
                raise BadRow("empty word", f"no word before the tab: {line!r} (the sentence from {source} "
                                           f"is bad)", where)
            words.append(fields[0])
            tag = fields[-1] if len(fields) >= 2 and fields[-1] else None
            if tag is None and self.require_labels:
                raise BadRow("tag count differs from word count",
                             f"word {fields[0]!r} has no tag (expected 'word<TAB>tag'), so the sentence from "
                             f"{source} has fewer tags than words", where)
            tags.append(tag)
        label = None if any(t is None for t in tags) else [t for t in tags if t is not None]
        return self.kind.row(self, {self.columns.tokens: words, self.columns.tags: label}, source)

    def _read_squad(self, text: str) -> None:
        try:
            root = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.name}:{exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(root, dict) or not isinstance(root.get("data"), list):
            found = list(root) if isinstance(root, dict) else type(root).__name__
            raise DataError(f"{self.name}:1: expected SQuAD JSON: an object with a 'data' list "
                            f"(data -> paragraphs -> context, qas); found {found}")
        lines = _id_lines(text)
        for a, article in enumerate(root["data"]):
            paragraphs = _squad_field(article, "paragraphs", list, f"{self.name}: data[{a}]")
            for p, paragraph in enumerate(paragraphs):
                where = f"data[{a}].paragraphs[{p}]"
                context = _squad_field(paragraph, "context", str, f"{self.name}: {where}")
                qas = _squad_field(paragraph, "qas", list, f"{self.name}: {where}")
                for q, qa in enumerate(qas):
                    path = f"{where}.qas[{q}]"
                    if not isinstance(qa, dict):
                        raise DataError(f"{self.name}: {path} must be an object, got {type(qa).__name__}")
                    qid = qa.get("id")
                    queue = lines.get(str(qid)) if qid is not None else None
                    line = queue.pop(0) if queue else None
                    source = f"{self.name}:{line} ({path})" if line else f"{self.name} ({path})"
                    for key in ("question", *(["answers"] if self.require_labels else [])):
                        if key not in qa:
                            raise DataError(f"{source}: missing field {key!r}; the fields found are {list(qa)}")
                    c = self.columns
                    row = {c.context: context, c.question: qa.get("question"), c.answers: qa.get("answers"),
                           c.id: qid}
                    self._add(source, self.kind.row, self, row, source)


def _conll_fields(line: str) -> list[str]:
    """A CoNLL line's fields: tab-separated when it has a tab (words may then hold spaces), else by spaces."""
    if "\t" in line:
        return [f.strip() for f in line.split("\t")]
    return line.split()


def _squad_field(node: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(node, dict) or key not in node:
        found = list(node) if isinstance(node, dict) else type(node).__name__
        raise DataError(f"{where}: missing field {key!r}; the fields found are {found}")
    if not isinstance(node[key], kind):
        raise DataError(f"{where}: field {key!r} must be a {kind.__name__}, got {type(node[key]).__name__}")
    return node[key]


def _id_lines(text: str) -> dict[str, list[int]]:
    """Line numbers of every ``"id": "..."`` in a JSON text, in order, so SQuAD rows can name a line."""
    newlines = [m.start() for m in re.finditer("\n", text)]
    lines: dict[str, list[int]] = {}
    for match in re.finditer(r'"id"\s*:\s*"((?:[^"\\]|\\.)*)"', text):
        try:
            key = json.loads(f'"{match.group(1)}"')
        except json.JSONDecodeError:
            continue
        lines.setdefault(key, []).append(bisect.bisect_left(newlines, match.start()) + 1)
    return lines


