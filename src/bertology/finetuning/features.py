"""Examples to model features and features to batches; what differs per task kind, the kind does.

Features are plain Python (lists and ints), unpadded, one dict per model input row (see `encoding.py`);
:class:`Collator` pads a batch of them to its longest member and makes tensors. Per kind (see
``finetuning.tasks``):

* classification / regression: ``input_ids``, ``token_type_ids``, ``attention_mask`` and ``labels``
  (a class id, a multi-hot list for multi-label examples, or a float).
* tagging: words are tokenised as given (``is_pretokenized``); the first piece of each word carries its
  tag and later pieces ``-100``.  ``word_ids`` maps pieces back to words.  A sentence too long for
  ``max_length`` is cut at a word boundary, so no word is half-labelled; the words lost are counted in
  ``Features.stats``.
* qa: question + context windows, consecutive windows sharing ``doc_stride`` tokens; ``offsets`` map
  context tokens back to characters; ``start_positions``/``end_positions`` are the gold span in the window
  (0/0, the [CLS] token, when it is not inside).
* multiple_choice: one feature per example holding one row per choice; ``labels`` is the right choice.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import ConfigError
from .encoding import Features
from .examples import Example
from .labels import LabelSet
from .tasks import TaskKind, kind_with, task_kind

__all__ = ["Collator", "Features", "collator_for", "encode"]


def encode(
    examples: Sequence[Example],
    tokenizer: Any,
    kind: str | TaskKind,
    labels: LabelSet | None = None,
    max_length: int = 128,
    doc_stride: int = 128,
    max_query_length: int = 64,
    label_all_pieces: bool = False,
) -> Features:
    """Encode `examples` for a task of `kind` with one of our tokenizers.

    `labels` maps class names / tags to ids; without it (prediction files) class labels and tags are
    not encoded.  An example whose label the set does not know raises a
    :class:`~bertology.errors.DataError` naming its file and line.  A kind named by a string takes its
    options from the keywords (`doc_stride` and `max_query_length` for QA, `label_all_pieces` for
    tagging); a TaskKind object brings its own.  Tagging and QA drive ``tokenizer.backend`` directly (QA
    briefly detaches its post-processor), so do not share one tokenizer between this and concurrent
    encoding threads.
    """
    kind = kind_with(kind, doc_stride=doc_stride, max_query_length=max_query_length,
                     label_all_pieces=label_all_pieces)
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise ConfigError(f"max_length must be an int, got {max_length!r}")
    if max_length > tokenizer.model_max_length:
        warnings.warn(f"max_length={max_length} exceeds the tokenizer's model_max_length="
                      f"{tokenizer.model_max_length}; using {tokenizer.model_max_length}", stacklevel=2)
        max_length = tokenizer.model_max_length
    if not examples:
        return Features([], {"examples": 0, "features": 0})
    return kind.encode(examples, tokenizer, labels, max_length)


class Collator:
    """Features -> a batch of tensors, padded to the longest sequence in the batch (not to max_length:
    short batches then cost less).  The kind pads its inputs (multiple choice gives ``(batch, choices,
    seq)``) and batches its targets (tagging labels pad with -100, so padding adds no loss).  Model inputs
    beyond the standard three (a family's own, such as pinyin ids) are padded with `input_pads`.
    Bookkeeping keys are dropped; ``cached`` frozen-encoder features are stacked (token-level ones
    zero-padded along the sequence)."""

    def __init__(self, pad_token_id: int, kind: str | TaskKind, input_pads: Mapping[str, int] | None = None) -> None:
        self.kind = task_kind(kind)
        self.pad_token_id = int(pad_token_id)
        self.pads = {"input_ids": self.pad_token_id, "token_type_ids": 0, "attention_mask": 0, **(input_pads or {})}
        self.tensor_keys = (*self.pads, *self.kind.target_keys, "cached")

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        keys = [k for k in self.tensor_keys if k in features[0]]
        for n, feature in enumerate(features):
            mismatch = set(keys) ^ {k for k in self.tensor_keys if k in feature}
            if mismatch:
                raise ValueError(f"batch feature {n} differs from feature 0 in {sorted(mismatch)} (does the batch "
                                 f"mix labelled and unlabelled examples?)")
        batch: dict[str, torch.Tensor] = {}
        for key in keys:
            values = [f[key] for f in features]
            if key in self.pads:
                batch[key] = self.kind.pad_inputs(values, self.pads[key], key)
            elif key == "cached":
                batch[key] = _stack_cached(values)
            else:
                batch[key] = self.kind.collate_target(key, values)
        return batch


def collator_for(tokenizer: Any, kind: str | TaskKind, token_inputs: Sequence[str] = ()) -> Collator:
    """The collator of `kind` for `tokenizer` and an encoder taking `token_inputs` besides the standard three
    (a family's own, e.g. ChineseBERT's ``pinyin_ids``): those pad with 0 (their attention mask hides the
    padding) unless the tokenizer's ``extra_input_pads`` names another value."""
    pads = dict.fromkeys(token_inputs, 0)
    pads.update(getattr(tokenizer, "extra_input_pads", None) or {})
    return Collator(tokenizer.pad_token_id, kind, pads)


def _stack_cached(values: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) == 1:
        return torch.stack(values)
    if len({(len(s), s[:-2], s[-1]) for s in shapes}) > 1:
        raise ValueError(f"cached features differ in more than sequence length: {sorted(shapes)}")
    length = max(v.shape[-2] for v in values)
    return torch.stack([torch.nn.functional.pad(v, (0, 0, 0, length - v.shape[-2])) for v in values])
