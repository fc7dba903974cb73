"""Kinds that label a text or a text pair (classification, regression, and new kinds built like them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..encoding import Features, encode_texts
from ..examples import Example, require_text
from .base import TaskKind

if TYPE_CHECKING:
    from ..data import Reader
    from ..labels import LabelSet

__all__ = ["TextKind"]


class TextKind(TaskKind):
    """Rows with a text (and a pair text when `columns.text_pair` is set) and a label; one feature each.

    A subclass says how a raw label is read (`read_label`) and what the model is trained on (`target`).
    """

    def check_header(self, reader: Reader, header: list[str], source: str) -> None:
        c = reader.columns
        required = [(c.text, "text")]
        if c.text_pair is not None:
            required.append((c.text_pair, "text_pair"))
        if reader.require_labels:
            required.append((c.label, "label"))
        reader.require_columns(header, required, source)

    def row(self, reader: Reader, row: Mapping[str, Any], source: str) -> Example:
        c = reader.columns
        ident = reader.ident(row)
        text = require_text(reader.need(row, c.text, "text", source), "text")
        pair = None if c.text_pair is None else require_text(reader.need(row, c.text_pair, "text_pair", source),
                                                             "text pair")
        raw = reader.need(row, c.label, "label", source) if reader.require_labels else row.get(c.label)
        return Example(text=text, text_pair=pair, label=self.read_label(raw, reader.require_labels), id=ident,
                       source=source)

    def read_label(self, value: Any, required: bool) -> Any:
        """The label as read from the file (a BadRow when it is malformed, or missing but required)."""
        raise NotImplementedError

    def target(self, example: Example, labels: LabelSet | None) -> Any:
        """What the model is trained towards for `example` (None: nothing, e.g. a prediction file)."""
        raise NotImplementedError

    def encode(self, examples: Sequence[Example], tokenizer: Any, labels: LabelSet | None,
               max_length: int) -> Features:
        return encode_texts(examples, tokenizer, max_length, lambda example: self.target(example, labels))
