"""Multiple choice (SWAG, RACE): each choice scored against the question (and passage), softmax over choices."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...errors import DataError
from ..encoding import BOOKKEEPING, Features, pad_rows
from ..examples import BadRow, Example, require_text, short
from ..metrics import accuracy
from .base import TASK_KINDS, TaskKind, argmax, class_loss

if TYPE_CHECKING:
    from ..data import Reader
    from ..labels import LabelSet
    from ..model import HeadConfig
    from ..taskdata import TaskData

__all__ = ["MultipleChoice", "choice_label", "encode_choices"]


def choice_label(value: Any, choices: list[str], required: bool) -> int | None:
    """The right choice's 0-based index, from an index, a letter (A = 0) or the choice's text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRow("empty label")
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
        raise BadRow("bad choice label", f"label {short(value)} is neither a 0-based choice index, a letter (A = 0) "
                                         f"nor the text of a choice")
    if not 0 <= index < len(choices):
        raise BadRow("bad choice label", f"label {short(value)} points at choice {index}, but there are "
                                         f"{len(choices)} choices (0-based)")
    return index


def _choices(reader: Reader, row: Mapping[str, Any], source: str) -> list[str]:
    """A JSON-list column of choices, or numbered columns <choices>0, <choices>1, ..."""
    name = reader.columns.choices
    if name in row:
        value = row[name]
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise BadRow("malformed choices", f"column {name!r} must hold a JSON list of choices "
                                                  f"({exc.msg})") from None
        if not isinstance(value, list):
            raise BadRow("wrong type", f"{name!r} must be a list of choices, got {short(value)}")
    else:
        value = []
        while f"{name}{len(value)}" in row:
            value.append(row[f"{name}{len(value)}"])
        if not value:
            raise reader.missing(source, name, "choices", list(row),
                                 f"expected a list {name!r} or numbered fields '{name}0', '{name}1', ...")
    if len(value) < 2:
        raise BadRow("too few choices", f"{len(value)} choice(s); multiple choice needs at least two")
    out = []
    for i, choice in enumerate(value):
        if isinstance(choice, (int, float)) and not isinstance(choice, bool):
            choice = str(choice)
        if not isinstance(choice, str) or not choice.strip():
            raise BadRow("empty choice", f"choice {i} is empty or not a string ({choice!r})")
        out.append(choice)
    return out


def _check_count(reader: Reader, count: int, source: str) -> None:
    """Every example of a file needs the same number of choices (a batch is one tensor)."""
    first = reader.state.setdefault("choices", (count, source))
    if count != first[0]:
        raise BadRow("choice count differs", f"{count} choices, but the first example ({first[1]}) "
                                             f"has {first[0]}; every example needs the same number")


def encode_choices(examples: Sequence[Example], tokenizer: Any, max_length: int) -> Features:
    """One feature per example holding one row per choice (context or question first, the choice second)."""
    count = None
    firsts: list[str] = []
    seconds: list[str] = []
    for e in examples:
        if not e.choices or not isinstance(e.text, str):
            raise DataError(f"{e.source}: a multiple-choice example needs a question (text) and choices")
        if count is None:
            count = (len(e.choices), e.source)
        elif len(e.choices) != count[0]:
            raise DataError(f"{e.source}: {len(e.choices)} choices, but {count[1]} has {count[0]}; a batch "
                            f"needs every example to have the same number")
        for choice in e.choices:
            if e.text_pair:
                firsts.append(e.text_pair)
                seconds.append(f"{e.text} {choice}")
            else:
                firsts.append(e.text)
                seconds.append(choice)
    encoded = tokenizer(firsts, seconds, max_length=max_length, truncation=True, padding=False,
                        return_tensors=None)
    features = []
    row = 0
    for index, e in enumerate(examples):
        rows = range(row, row + len(e.choices))  # type: ignore[arg-type]
        row += len(rows)
        feature: dict[str, Any] = {key: [values[r] for r in rows] for key, values in encoded.items()
                                   if key not in BOOKKEEPING}
        feature["example_index"] = index
        feature["num_choices"] = len(rows)
        if e.label is not None:
            if isinstance(e.label, bool) or not isinstance(e.label, int) or not 0 <= e.label < len(rows):
                raise DataError(f"{e.source}: the label must be the index of a choice (0..{len(rows) - 1}), "
                                f"got {e.label!r}")
            feature["labels"] = e.label
        features.append(feature)
    return Features(features, {"examples": len(examples), "features": len(features)})


def flatten_groups(inputs: dict[str, Any], cached: torch.Tensor | None
                   ) -> tuple[dict[str, Any], torch.Tensor | None, int | None]:
    """(batch, texts per example, ...) inputs as batch * texts encoder rows, and the texts per example (None
    for inputs that are already rows): choices of a question, or a text with its positive and negative."""
    per_example = None
    ids = inputs.get("input_ids")
    if ids is not None and ids.dim() == 3:
        per_example = ids.shape[1]
        inputs = {k: None if v is None else v.flatten(0, 1) for k, v in inputs.items()}
    if cached is not None:
        per_example = per_example or cached.shape[1]
        cached = cached.flatten(0, 1)
    return inputs, cached, per_example


def pad_choices(groups: Sequence[Sequence[Sequence[Any]]], value: int, key: str) -> torch.Tensor:
    """(examples, choices, longest row) from each example's rows."""
    counts = {len(g) for g in groups}
    if len(counts) > 1:
        raise ValueError(f"multiple-choice batch mixes {sorted(counts)} choices per example in {key!r}")
    width = max(len(row) for group in groups for row in group)
    return torch.stack([pad_rows(group, value, width) for group in groups])


@TASK_KINDS.register("multiple_choice")
class MultipleChoice(TaskKind):
    """A question (and an optional passage) with the same number of choices in every example."""

    def check_header(self, reader: Reader, header: list[str], source: str) -> None:
        c = reader.columns
        if c.choices not in header and f"{c.choices}0" not in header:
            raise reader.missing(source, c.choices, "choices", header,
                                 f"expected a JSON-list column {c.choices!r} or columns "
                                 f"'{c.choices}0', '{c.choices}1', ...")
        reader.require_columns(header, [(c.question, "question")]
                               + ([(c.label, "label")] if reader.require_labels else []), source)

    def row(self, reader: Reader, row: Mapping[str, Any], source: str) -> Example:
        c = reader.columns
        ident = reader.ident(row)
        question = require_text(reader.need(row, c.question, "question", source), "question")
        context = row.get(c.context)
        context = None if context is None or context == "" else require_text(context, "context")
        choices = _choices(reader, row, source)
        raw = reader.need(row, c.label, "label", source) if reader.require_labels else row.get(c.label)
        answer = choice_label(raw, choices, reader.require_labels)
        _check_count(reader, len(choices), source)
        return Example(text=question, text_pair=context, label=answer, choices=choices, id=ident, source=source)

    def encode(self, examples: Sequence[Example], tokenizer: Any, labels: LabelSet | None,
               max_length: int) -> Features:
        return encode_choices(examples, tokenizer, max_length)

    def pad_inputs(self, values: list[Any], pad: int, key: str) -> torch.Tensor:
        return pad_choices(values, pad, key)

    def group(self, inputs: dict[str, Any], cached: torch.Tensor | None
              ) -> tuple[dict[str, Any], torch.Tensor | None, int | None]:
        return flatten_groups(inputs, cached)

    def ungroup(self, logits: torch.Tensor, groups: int | None) -> torch.Tensor:
        return logits.view(-1, groups)  # type: ignore[arg-type]

    def loss(self, head: HeadConfig, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        labels = batch.get("labels")
        if labels is None:
            return None, {}
        return class_loss(logits.float(), labels)

    def decode(self, task: TaskData, split: str, logits: list[np.ndarray]) -> list[int]:
        return argmax(logits)

    def metrics(self, task: TaskData, split: str, predictions: list[Any]) -> dict[str, float]:
        return {"accuracy": accuracy([int(e.label) for e in task.examples[split]], predictions)}  # type: ignore[arg-type]
