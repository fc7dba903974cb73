"""Label sets: names in a fixed order, read from a label file or the data, checked against both."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..errors import DataError
from ..utils.io import atomic_write
from .examples import Example, numbered_lines, read_text

logger = logging.getLogger(__name__)


def _labels_of(example: Example) -> list[str]:
    label = example.label
    if label is None:
        return []
    if isinstance(label, list):
        return label
    if isinstance(label, str):
        return [label]
    raise DataError(f"{example.source}: label {label!r} is not a class name or tag; label sets are for "
                    f"classification and tagging")


class LabelSet:
    """Label names in a fixed order, so ids mean the same thing in training, in a saved model and at
    prediction time.  For tagging the names are the tags."""

    def __init__(self, names: Iterable[str], source: str | None = None) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self.source = source
        where = f"{source}: " if source else ""
        for name in self.names:
            if not isinstance(name, str) or not name.strip():
                raise DataError(f"{where}label names must be non-empty strings, got {name!r}")
        repeated = sorted(n for n, k in Counter(self.names).items() if k > 1)
        if repeated:
            raise DataError(f"{where}label(s) {repeated} appear more than once")
        self.label2id: dict[str, int] = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.label2id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and other.names == self.names

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LabelSet({list(self.names)!r})"

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def _known(self, limit: int = 30) -> str:
        shown = list(self.names[:limit])
        more = f" and {len(self.names) - limit} more" if len(self.names) > limit else ""
        origin = f" (from {self.source})" if self.source else ""
        return f"{shown}{more}{origin}"

    def encode(self, label: str, source: str = "") -> int:
        """The id of `label`; an unknown one (a class never seen in training) names the row and the
        known labels, since predicting it is impossible and scoring it would silently count as wrong."""
        try:
            return self.label2id[label]
        except (KeyError, TypeError):
            where = f"{source}: " if source else ""
            raise DataError(f"{where}unknown label {label!r}; the known labels are {self._known()}") from None

    def multi_hot(self, labels: Sequence[str], source: str = "") -> list[float]:
        """A 0/1 vector over the label set, for multi-label classification."""
        vector = [0.0] * len(self)
        for label in labels:
            vector[self.encode(label, source)] = 1.0
        return vector

    def decode(self, index: int) -> str:
        return self.names[index]

    @classmethod
    def from_examples(cls, examples: Iterable[Example]) -> LabelSet:
        """Every label (or tag) in `examples`, sorted: the same data always gives the same ids."""
        names: set[str] = set()
        for example in examples:
            names.update(_labels_of(example))
        if not names:
            raise DataError("no labels in the examples: a label set needs labelled training data or a label file")
        return cls(sorted(names))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> LabelSet:
        """One label per line, in id order.  Blank lines and repeats are errors naming the line: either
        would shift or merge ids silently."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such label file")
        seen: dict[str, int] = {}
        for number, line in numbered_lines(read_text(path)):
            name = line.strip()
            if not name:
                raise DataError(f"{path}:{number}: blank line in the label file (one label per line)")
            if name in seen:
                raise DataError(f"{path}:{number}: label {name!r} repeats line {seen[name]}")
            seen[name] = number
        if not seen:
            raise DataError(f"{path}: the label file is empty (one label per line)")
        return cls(seen, source=str(path))

    def save(self, path: str | os.PathLike) -> Path:
        """Write one label per line (atomically), readable by :meth:`from_file`."""
        path = Path(path)
        with atomic_write(path) as handle:
            handle.write("".join(f"{name}\n" for name in self.names))
        return path

    def unknown(self, examples: Iterable[Example]) -> dict[str, str]:
        """Labels used by `examples` but absent here, each with the first row using it."""
        missing: dict[str, str] = {}
        for example in examples:
            for label in _labels_of(example):
                if label not in self.label2id and label not in missing:
                    missing[label] = example.source
        return missing

    def check_against(self, examples: Sequence[Example], path: str | os.PathLike | None = None) -> list[str]:
        """Compare this (file) label set with the labels in the data.

        Labels in the data that the set lacks are an error naming the first row of each: the model
        could never predict them.  Labels of the set that the data never uses are only worth a warning
        (a small dev set may simply lack a rare class); the warnings are logged and returned.
        """
        data = f" {path}" if path else " the data"
        origin = self.source or "the label set"
        missing = self.unknown(examples)
        if missing:
            listed = ", ".join(f"{label!r} (first at {source})" for label, source in missing.items())
            raise DataError(f"{origin} does not list label(s) used in{data}: {listed}; "
                            f"its labels are {self._known()}")
        used: set[str] = set()
        for example in examples:
            used.update(_labels_of(example))
        unused = [name for name in self.names if name not in used]
        warnings = []
        if unused:
            message = f"{origin}: label(s) {unused} never occur in{data}"
            if message not in _WARNED:  # said once per process: a second run over the same files adds nothing
                _WARNED.add(message)
                logger.warning("%s", message)
            warnings.append(message)
        return warnings


#: label warnings already logged in this process
_WARNED: set[str] = set()

__all__ = ["LabelSet"]
