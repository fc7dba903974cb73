"""Task files in, checked examples out (label sets: `labels.py`; cleaning and splitting: `cleaning.py`).

Users bring their own files, so every row is checked before it reaches a model, and a bad row is
reported with its file and line rather than surfacing later as a shape error or a silently wrong score.
``on_error="raise"`` stops at the first bad row; ``on_error="skip"`` drops it, keeps ``(source, reason)``
in :attr:`ReadResult.skipped` and logs each kind of problem once with a count.  A *missing column* is
never skippable: it is a mismatch between the file and the configured :class:`Columns`, which would
otherwise drop every row.

Formats, chosen by suffix:

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
import dataclasses
import io
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError

logger = logging.getLogger(__name__)

KINDS = ("classification", "regression", "tagging", "qa", "multiple_choice")
CONLL_SUFFIXES = (".conll", ".bio", ".bioes", ".iob", ".txt")
SUFFIXES: dict[str, tuple[str, ...]] = {
    "classification": (".csv", ".tsv", ".jsonl"),
    "regression": (".csv", ".tsv", ".jsonl"),
    "tagging": (".jsonl", *CONLL_SUFFIXES),
    "qa": (".json", ".jsonl"),
    "multiple_choice": (".csv", ".tsv", ".jsonl"),
}


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
        for name, value in vars(self).items():
            if not (isinstance(value, str) and value) and not (name == "text_pair" and value is None):
                raise ConfigError(f"columns.{name} must be a non-empty column name, got {value!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "") -> Columns:
        """From a config mapping; an unknown key (a typo) is an error listing the known ones."""
        data = dict(data or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise ConfigError(f"{where}unknown column key(s) {unknown}; known keys: {known}")
        return cls(**data)


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


@dataclass
class ReadResult:
    """What :func:`read_examples` found: the good examples and the rows it skipped, with why."""

    examples: list[Example]
    skipped: list[tuple[str, str]]
    path: Path
    #: reason -> number of rows skipped for it
    reasons: dict[str, int] = field(default_factory=dict)


class _Bad(Exception):
    """A skippable problem with one row: a short reason (for counting) and the full explanation."""

    def __init__(self, reason: str, detail: str | None = None, where: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason
        #: the exact file:line when it differs from the row's start (a line inside a CoNLL sentence)
        self.where = where


# -------------------------------------------------------------------------------------------- reading


def read_examples(
    path: str | os.PathLike,
    kind: str,
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
    if kind not in KINDS:
        raise ConfigError(f"unknown task kind {kind!r}; expected one of {list(KINDS)}")
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    reader = _Reader(Path(path), kind, columns or Columns(), on_error, require_labels)
    return reader.run()


class _Reader:
    def __init__(self, path: Path, kind: str, columns: Columns, on_error: str, require_labels: bool) -> None:
        self.path = path
        self.name = str(path)
        self.kind = kind
        self.columns = columns
        self.on_error = on_error
        self.require_labels = require_labels
        self.examples: list[Example] = []
        self.skipped: list[tuple[str, str]] = []
        self.reasons: Counter[str] = Counter()
        self.first: dict[str, tuple[str, str]] = {}
        self.num_choices: tuple[int, str] | None = None

    # ------------------------------------------------------------------------------ driving
    def run(self) -> ReadResult:
        suffix = self.path.suffix.lower()
        allowed = SUFFIXES[self.kind]
        if suffix not in allowed:
            raise DataError(
                f"{self.name}: cannot read a {self.kind} file with suffix {suffix or '(none)'!r}; "
                f"expected one of {list(allowed)}"
            )
        if not self.path.is_file():
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
        except _Bad as bad:
            where = bad.where or source
            if self.on_error == "raise":
                raise DataError(f"{where}: {bad.detail}") from None
            self.skipped.append((where, bad.detail))
            self.reasons[bad.reason] += 1
            self.first.setdefault(bad.reason, (where, bad.detail))
            return
        if example is not None:
            self.examples.append(example)

    def _missing(self, source: str, column: str, option: str, found: Iterable[str], hint: str = "") -> DataError:
        return DataError(
            f"{source}: missing column {column!r} (columns.{option}); the columns found are {list(found)}"
            + (f"; {hint}" if hint else "")
            + f". Rename the column or set columns.{option}"
        )

    # ------------------------------------------------------------------------------ formats
    def _read_jsonl(self, text: str) -> None:
        for number, line in numbered_lines(text):
            source = f"{self.name}:{number}"
            self._add(source, self._jsonl_row, line, source)

    def _jsonl_row(self, line: str, source: str) -> Example:
        if not line.strip():
            raise _Bad("empty line")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _Bad("malformed JSON", f"malformed JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise _Bad("not a JSON object", f"expected a JSON object, got a {type(row).__name__}")
        return self._row(row, source)

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
        self._check_header(header, f"{self.name}:{rows[0][0]}")
        for number, cells in rows[1:]:
            source = f"{self.name}:{number}"
            self._add(source, self._table_row, header, cells, source)

    def _table_row(self, header: list[str], cells: list[str], source: str) -> Example:
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            raise _Bad("empty line")
        if len(cells) < len(header):
            raise _Bad("too few columns", f"too few columns: {len(cells)} field(s) but the header has "
                                          f"{len(header)} ({header})")
        if len(cells) > len(header):
            raise _Bad("too many columns", f"too many columns: {len(cells)} fields but the header has "
                                           f"{len(header)} ({header}); is a separator inside an unquoted text?")
        return self._row(dict(zip(header, cells, strict=True)), source)

    def _check_header(self, header: list[str], source: str) -> None:
        """Missing columns are caught on the header, before any row is read."""
        c = self.columns
        required: list[tuple[str, str]] = []
        if self.kind in ("classification", "regression"):
            required.append((c.text, "text"))
            if c.text_pair is not None:
                required.append((c.text_pair, "text_pair"))
            if self.require_labels:
                required.append((c.label, "label"))
        elif self.kind == "multiple_choice":
            required.append((c.question, "question"))
            if self.require_labels:
                required.append((c.label, "label"))
            if c.choices not in header and f"{c.choices}0" not in header:
                raise self._missing(source, c.choices, "choices", header,
                                    f"expected a JSON-list column {c.choices!r} or columns "
                                    f"'{c.choices}0', '{c.choices}1', ...")
        for column, option in required:
            if column not in header:
                raise self._missing(source, column, option, header)

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
                raise _Bad("empty word", f"no word before the tab: {line!r} (the sentence from {source} "
                                         f"is bad)", where)
            words.append(fields[0])
            tag = fields[-1] if len(fields) >= 2 and fields[-1] else None
            if tag is None and self.require_labels:
                raise _Bad("tag count differs from word count",
                           f"word {fields[0]!r} has no tag (expected 'word<TAB>tag'), so the sentence from "
                           f"{source} has fewer tags than words", where)
            tags.append(tag)
        label = None if any(t is None for t in tags) else [t for t in tags if t is not None]
        return Example(text=words, label=label, source=source)

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
                    self._add(source, self._qa, context, qa.get("question"), qa.get("answers"),
                              None if qid is None else str(qid), source)

    # ------------------------------------------------------------------------------ rows
    def _row(self, row: Mapping[str, Any], source: str) -> Example:
        """One CSV/TSV/JSONL row (a mapping of column -> value) as an Example of this task."""
        c = self.columns
        found = list(row)

        def need(column: str, option: str) -> Any:
            if column not in row:
                raise self._missing(source, column, option, found)
            return row[column]

        ident = row.get(c.id)
        ident = None if ident is None or ident == "" else str(ident)
        if self.kind in ("classification", "regression"):
            text = _text(need(c.text, "text"), "text")
            pair = None if c.text_pair is None else _text(need(c.text_pair, "text_pair"), "text pair")
            raw = need(c.label, "label") if self.require_labels else row.get(c.label)
            if self.kind == "regression":
                label: Any = _number(raw, self.require_labels)
            else:
                label = _class_label(raw, self.require_labels)
            return Example(text=text, text_pair=pair, label=label, id=ident, source=source)
        if self.kind == "tagging":
            words = need(c.tokens, "tokens")
            raw = need(c.tags, "tags") if self.require_labels else row.get(c.tags)
            return self._tagged(words, raw, ident, source)
        if self.kind == "qa":
            context = need(c.context, "context")
            question = need(c.question, "question")
            answers = need(c.answers, "answers") if self.require_labels else row.get(c.answers)
            return self._qa(context, question, answers, ident, source)
        question = _text(need(c.question, "question"), "question")
        context = row.get(c.context)
        context = None if context is None or context == "" else _text(context, "context")
        choices = self._choices(row, source, found)
        raw = need(c.label, "label") if self.require_labels else row.get(c.label)
        answer = _choice_label(raw, choices, self.require_labels)
        self._check_choice_count(len(choices), source)
        return Example(text=question, text_pair=context, label=answer, choices=choices, id=ident, source=source)

    def _tagged(self, words: Any, tags: Any, ident: str | None, source: str) -> Example:
        if not isinstance(words, list) or not words:
            raise _Bad("empty text" if words in ([], "", None) else "wrong type",
                       f"the words must be a non-empty list of strings, got {_short(words)}")
        for i, word in enumerate(words):
            if not isinstance(word, str):
                raise _Bad("wrong type", f"word {i} is a {type(word).__name__} ({word!r}), not a string")
            if not word.strip():
                raise _Bad("empty word", f"word {i} is empty")
        label = None
        if tags is not None:
            if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
                raise _Bad("wrong type", f"the tags must be a list of tag names (strings), got {_short(tags)}")
            if len(tags) != len(words):
                raise _Bad("tag count differs from word count",
                           f"{len(tags)} tags for {len(words)} words; there must be one tag per word")
            label = [t.strip() for t in tags]
        return Example(text=list(words), label=label, id=ident, source=source)

    def _qa(self, context: Any, question: Any, answers: Any, ident: str | None, source: str) -> Example:
        context = _text(context, "context")
        question = _text(question, "question")
        gold = None
        if answers is not None:
            gold = _answers(answers, context)
            if not gold:
                if self.require_labels:
                    raise _Bad("no answers", "the question has no answers (unanswerable SQuAD 2.0 questions "
                                             "are not supported)")
                gold = None
        return Example(text=context, text_pair=question, answers=gold, id=ident, source=source)

    def _choices(self, row: Mapping[str, Any], source: str, found: list[str]) -> list[str]:
        name = self.columns.choices
        if name in row:
            value = row[name]
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise _Bad("malformed choices", f"column {name!r} must hold a JSON list of choices "
                                                    f"({exc.msg})") from None
            if not isinstance(value, list):
                raise _Bad("wrong type", f"{name!r} must be a list of choices, got {_short(value)}")
        else:
            value = []
            while f"{name}{len(value)}" in row:
                value.append(row[f"{name}{len(value)}"])
            if not value:
                raise self._missing(source, name, "choices", found,
                                    f"expected a list {name!r} or numbered fields '{name}0', '{name}1', ...")
        if len(value) < 2:
            raise _Bad("too few choices", f"{len(value)} choice(s); multiple choice needs at least two")
        out = []
        for i, choice in enumerate(value):
            if isinstance(choice, (int, float)) and not isinstance(choice, bool):
                choice = str(choice)
            if not isinstance(choice, str) or not choice.strip():
                raise _Bad("empty choice", f"choice {i} is empty or not a string ({choice!r})")
            out.append(choice)
        return out

    def _check_choice_count(self, count: int, source: str) -> None:
        if self.num_choices is None:
            self.num_choices = (count, source)
        elif count != self.num_choices[0]:
            raise _Bad("choice count differs", f"{count} choices, but the first example ({self.num_choices[1]}) "
                                               f"has {self.num_choices[0]}; every example needs the same number")


# ------------------------------------------------------------------------------------ value checks


def _conll_fields(line: str) -> list[str]:
    """A CoNLL line's fields: tab-separated when it has a tab (words may then hold spaces), else by spaces."""
    if "\t" in line:
        return [f.strip() for f in line.split("\t")]
    return line.split()


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(value: Any, what: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Bad("empty text", f"empty {what}")
    if not isinstance(value, str):
        raise _Bad("wrong type", f"the {what} must be a string, got {type(value).__name__} {_short(value)}")
    return value


def _class_label(value: Any, required: bool) -> str | list[str] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _Bad("empty label")
        return None
    if isinstance(value, list):
        if any(isinstance(v, list) for v in value):
            raise _Bad("wrong type", f"a multi-label label must be a flat list of names, got {_short(value)}")
        return [str(_class_label(v, True)) for v in value]
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Bad("wrong type", f"a class label must be a string or an integer, got {_short(value)}")


def _number(value: Any, required: bool) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _Bad("empty label")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Bad("not a number", f"the regression label {_short(value)} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise _Bad("not a number", f"the regression label {_short(value)} is not a number") from None
    if not math.isfinite(number):
        raise _Bad("not a number", f"the regression label {_short(value)} is not a finite number")
    return number


def _choice_label(value: Any, choices: list[str], required: bool) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _Bad("empty label")
        return None
    index: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        index = value
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            index = int(text)
        elif len(text) == 1 and "A" <= text <= "Z":
            index = ord(text) - ord("A")
        elif text in choices:
            index = choices.index(text)
    if index is None:
        raise _Bad("bad choice label", f"label {_short(value)} is neither a 0-based choice index, a letter (A = 0) "
                                       f"nor the text of a choice")
    if not 0 <= index < len(choices):
        raise _Bad("bad choice label", f"label {_short(value)} points at choice {index}, but there are "
                                       f"{len(choices)} choices (0-based)")
    return index


def _answers(value: Any, context: str) -> list[dict[str, Any]]:
    """Normalise answers to ``[{text, start}]``, each checked against the context."""
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        starts = value.get("answer_start", value.get("start"))
        if not isinstance(starts, list) or len(starts) != len(value["text"]):
            raise _Bad("bad answer", "answers given as lists need 'text' and 'answer_start' of equal length")
        value = [{"text": t, "answer_start": s} for t, s in zip(value["text"], starts, strict=True)]
    if not isinstance(value, list):
        raise _Bad("bad answer", f"answers must be a list of {{text, answer_start}}, got {_short(value)}")
    out = []
    for i, answer in enumerate(value):
        if not isinstance(answer, dict):
            raise _Bad("bad answer", f"answer {i} must be an object with text and answer_start")
        text = answer.get("text")
        start = answer.get("answer_start", answer.get("start"))
        if not isinstance(text, str) or not text.strip():
            raise _Bad("bad answer", f"answer {i} has no text")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise _Bad("bad answer", f"answer {i} ({text!r}) needs a non-negative integer answer_start, "
                                     f"got {_short(start)}")
        found = context[start : start + len(text)]
        if found != text:
            raise _Bad("answer does not match the context",
                       f"answer {text!r} does not match the context at answer_start={start} "
                       f"(the context has {found!r} there)")
        out.append({"text": text, "start": start})
    return out


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


__all__ = ["CONLL_SUFFIXES", "KINDS", "Columns", "Example", "ReadResult", "numbered_lines", "read_examples",
           "read_text"]
