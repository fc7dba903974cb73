"""Building blocks the task kinds encode and batch with: the feature list, model inputs, padding.

Features are plain Python (lists and ints), unpadded, one dict per model input row; the collator pads a
batch to its longest member. Any model input the tokenizer returns (a family may add its own, such as
pinyin ids) travels in the features beside ``input_ids``; bookkeeping keys (``example_index``,
``word_ids``, ``offsets``, ...) stay for decoding and never reach the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..errors import DataError
from .examples import Example

#: tokenizer outputs that describe an encoding rather than feed the model
BOOKKEEPING = frozenset({"offset_mapping", "word_ids", "special_tokens_mask", "overflow_to_sample_mapping"})

__all__ = ["BOOKKEEPING", "Features", "encode_texts", "model_inputs", "pad_rows", "require_str"]


class Features(list):
    """The encoded features (a list of dicts) with ``stats``: counts of truncation and windows."""

    def __init__(self, items: Sequence[dict] = (), stats: Mapping[str, int] | None = None) -> None:
        super().__init__(items)
        self.stats: dict[str, int] = dict(stats or {})


def model_inputs(encoded: Mapping[str, list], row: int) -> dict[str, Any]:
    """Row `row` of a batch encoding: every model input it holds (input_ids, token_type_ids, ...)."""
    return {key: values[row] for key, values in encoded.items() if key not in BOOKKEEPING}


def require_str(text: Any, example: Example) -> str:
    if not isinstance(text, str):
        raise DataError(f"{example.source}: expected a text, got {type(text).__name__} (is this a tagging file?)")
    return text


def encode_texts(examples: Sequence[Example], tokenizer: Any, max_length: int,
                 target: Callable[[Example], Any]) -> Features:
    """One feature per text (or text pair); ``labels`` is ``target(example)`` unless that is None.

    Single texts and pairs are encoded in two batches (the tokenizer takes one kind per call); the
    features keep the examples' order.
    """
    features: list[dict | None] = [None] * len(examples)
    singles = [i for i, e in enumerate(examples) if e.text_pair is None]
    pairs = [i for i, e in enumerate(examples) if e.text_pair is not None]
    truncated = 0
    for group in (singles, pairs):
        if not group:
            continue
        texts = [require_str(examples[i].text, examples[i]) for i in group]
        seconds = [examples[i].text_pair for i in group] if group is pairs else None
        encoded = tokenizer(texts, seconds, max_length=max_length, truncation=True, padding=False,
                            return_tensors=None)
        for row, i in enumerate(group):
            feature = model_inputs(encoded, row)
            feature["example_index"] = i
            truncated += len(feature["input_ids"]) >= max_length
            value = target(examples[i])
            if value is not None:
                feature["labels"] = value
            features[i] = feature
    return Features(features, {"examples": len(examples), "features": len(examples), "at_max_length": truncated})


def _inner_shape(rows: Sequence[Sequence[Any]]) -> tuple[int, ...]:
    """() for rows of ids; (k,) for rows of k-long id lists (a family's per-token inputs, e.g. pinyin)."""
    for row in rows:
        if len(row):
            return (len(row[0]),) if isinstance(row[0], (list, tuple)) else ()
    return ()


def pad_rows(rows: Sequence[Sequence[Any]], value: int, width: int | None = None) -> torch.Tensor:
    """Rows of different lengths as one long tensor, padded with `value` to `width` (default: the longest)."""
    width = max(len(r) for r in rows) if width is None else width
    out = torch.full((len(rows), width, *_inner_shape(rows)), value, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out
