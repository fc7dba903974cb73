"""Examples to model features, per task kind, keeping what is needed to map predictions back.

Features are plain Python (lists and ints), unpadded, one dict per model input row; :class:`Collator`
pads a batch of them to its longest member and makes tensors.  Bookkeeping keys (``example_index``,
``word_ids``, ``offsets``, ...) stay in the features for decoding and are dropped by the collator.

* classification / regression: ``input_ids``, ``token_type_ids``, ``attention_mask`` and ``labels``
  (a class id, a multi-hot list for multi-label examples, or a float).
* tagging: words are tokenised as given (``is_pretokenized``); the first piece of each word carries its
  tag and later pieces ``-100`` (see :func:`~bertology.finetuning.tagging.align_labels`).  ``word_ids``
  maps pieces back to words.  A sentence too long for ``max_length`` is cut at a word boundary, so no
  word is half-labelled; the words lost are counted in ``Features.stats``.
* qa: question + context windows (the sliding window of BERT's SQuAD code): the context is split into
  windows of whatever room the question leaves, consecutive windows sharing ``doc_stride`` tokens, so an
  answer near a window edge is whole in the next window.  ``offsets`` holds character offsets into the
  context for context tokens and ``None`` elsewhere, which is what
  :func:`~bertology.finetuning.qa.answer_across_windows` needs; ``start_positions``/``end_positions``
  are the gold span's tokens in the window, or 0/0 (the first, [CLS] token) when it is not inside.
* multiple_choice: one feature per example holding one row per choice (context or question first,
  the choice second); ``labels`` is the index of the right choice.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tokenizers import pre_tokenizers

from ..errors import ConfigError, DataError
from .data import KINDS, Example
from .labels import LabelSet
from .tagging import IGNORE_INDEX, align_labels

logger = logging.getLogger(__name__)


class Features(list):
    """The encoded features (a list of dicts) with ``stats``: counts of truncation and windows."""

    def __init__(self, items: Sequence[dict] = (), stats: Mapping[str, int] | None = None) -> None:
        super().__init__(items)
        self.stats: dict[str, int] = dict(stats or {})


def encode(
    examples: Sequence[Example],
    tokenizer: Any,
    kind: str,
    labels: LabelSet | None = None,
    max_length: int = 128,
    doc_stride: int = 128,
    max_query_length: int = 64,
    label_all_pieces: bool = False,
) -> Features:
    """Encode `examples` for a `kind` task with one of our tokenizers.

    `labels` maps class names / tags to ids; without it (prediction files) class labels and tags are
    not encoded.  An example whose label the set does not know raises a
    :class:`~bertology.errors.DataError` naming its file and line.  `doc_stride` and
    `max_query_length` apply to QA only, `label_all_pieces` to tagging only.  Tagging and QA drive
    ``tokenizer.backend`` directly (QA briefly detaches its post-processor), so do not share one
    tokenizer between this and concurrent encoding threads.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown task kind {kind!r}; expected one of {list(KINDS)}")
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise ConfigError(f"max_length must be an int, got {max_length!r}")
    if max_length > tokenizer.model_max_length:
        warnings.warn(f"max_length={max_length} exceeds the tokenizer's model_max_length="
                      f"{tokenizer.model_max_length}; using {tokenizer.model_max_length}", stacklevel=2)
        max_length = tokenizer.model_max_length
    if not examples:
        return Features([], {"examples": 0, "features": 0})
    if kind in ("classification", "regression"):
        return _encode_sentences(examples, tokenizer, kind, labels, max_length)
    if kind == "tagging":
        return _encode_tagging(examples, tokenizer, labels, max_length, label_all_pieces)
    if kind == "qa":
        return _encode_qa(examples, tokenizer, max_length, doc_stride, max_query_length)
    return _encode_choices(examples, tokenizer, max_length)


def _inputs(encoded: Mapping[str, list], row: int) -> dict[str, Any]:
    return {key: encoded[key][row] for key in ("input_ids", "token_type_ids", "attention_mask")}


def _encode_sentences(examples: Sequence[Example], tokenizer: Any, kind: str, labels: LabelSet | None,
                      max_length: int) -> Features:
    features: list[dict | None] = [None] * len(examples)
    singles = [i for i, e in enumerate(examples) if e.text_pair is None]
    pairs = [i for i, e in enumerate(examples) if e.text_pair is not None]
    truncated = 0
    for group in (singles, pairs):
        if not group:
            continue
        texts = [_require_str(examples[i].text, examples[i]) for i in group]
        seconds = [examples[i].text_pair for i in group] if group is pairs else None
        encoded = tokenizer(texts, seconds, max_length=max_length, truncation=True, padding=False,
                            return_tensors=None)
        for row, i in enumerate(group):
            feature = _inputs(encoded, row)
            feature["example_index"] = i
            truncated += len(feature["input_ids"]) >= max_length
            label = examples[i].label
            if label is not None:
                if kind == "regression":
                    if isinstance(label, (list, str)) or isinstance(label, bool):
                        raise DataError(f"{examples[i].source}: regression label {label!r} is not a number")
                    feature["labels"] = float(label)
                elif labels is not None:
                    if isinstance(label, list):
                        feature["labels"] = labels.multi_hot(label, examples[i].source)
                    else:
                        feature["labels"] = labels.encode(label, examples[i].source)
            features[i] = feature
    return Features(features, {"examples": len(examples), "features": len(examples), "at_max_length": truncated})


def _require_str(text: Any, example: Example) -> str:
    if not isinstance(text, str):
        raise DataError(f"{example.source}: expected a text, got {type(text).__name__} (is this a tagging file?)")
    return text


# ---------------------------------------------------------------------------------------------- tagging


def _words_for_backend(backend: Any, words: list[str]) -> list[str]:
    """Byte-level BPE marks a word start with a space; pre-tokenised words have none, so give every
    word but the first its space back, or RoBERTa would read the sentence as one glued word."""
    pre = backend.pre_tokenizer
    if isinstance(pre, pre_tokenizers.ByteLevel) and not getattr(pre, "add_prefix_space", False):
        return [w if i == 0 else " " + w for i, w in enumerate(words)]
    return words


def _check_tags(example: Example, labels: LabelSet, label_all_pieces: bool) -> list[str]:
    tags = example.label
    if not isinstance(tags, list) or not isinstance(example.text, list) or len(tags) != len(example.text):
        raise DataError(f"{example.source}: a tagging example needs a list of words and one tag per word")
    for tag in tags:
        labels.encode(tag, example.source)
        if label_all_pieces and tag.startswith("B-") and "I-" + tag[2:] not in labels:
            raise DataError(f"{example.source}: label_all_pieces gives later pieces of a {tag!r} word the tag "
                            f"'I-{tag[2:]}', which the label set lacks")
    return tags


def _encode_tagging(examples: Sequence[Example], tokenizer: Any, labels: LabelSet | None, max_length: int,
                    label_all_pieces: bool) -> Features:
    backend = tokenizer.backend
    budget = max_length - backend.num_special_tokens_to_add(False)
    if budget < 1:
        raise ConfigError(f"max_length={max_length} leaves no room for words after the special tokens")
    for e in examples:
        if not isinstance(e.text, list) or not e.text:
            raise DataError(f"{e.source}: a tagging example needs a non-empty list of words, got {e.text!r}")
    batch = [_words_for_backend(backend, list(e.text)) for e in examples]
    encodings = backend.encode_batch(batch, is_pretokenized=True, add_special_tokens=False)
    features = []
    cut_sentences = lost_words = 0
    for index, (example, encoding) in enumerate(zip(examples, encodings, strict=True)):
        if len(encoding) > budget:
            pieces = encoding.word_ids
            first_out = pieces[budget]
            # Cut before the first word that does not fit whole; a first word longer than everything is cut.
            cut = pieces.index(first_out) if first_out else budget
            encoding.truncate(cut)
            kept = len({w for w in encoding.word_ids if w is not None})
            cut_sentences += 1
            lost_words += len(example.text) - kept
        encoding = backend.post_process(encoding, None, add_special_tokens=True)
        word_ids = list(encoding.word_ids)
        feature: dict[str, Any] = {
            "input_ids": list(encoding.ids),
            "token_type_ids": list(encoding.type_ids),
            "attention_mask": list(encoding.attention_mask),
            "word_ids": word_ids,
            "num_words": len(example.text),
            "example_index": index,
        }
        if labels is not None and example.label is not None:
            tags = _check_tags(example, labels, label_all_pieces)
            feature["labels"] = align_labels(tags, word_ids, labels.label2id, label_all_pieces)
        features.append(feature)
    if lost_words:
        logger.warning("%d word(s) in %d sentence(s) do not fit max_length=%d and get no label or prediction "
                       "(predicted as 'O')", lost_words, cut_sentences, max_length)
    return Features(features, {"examples": len(examples), "features": len(features),
                               "truncated_examples": cut_sentences, "words_lost": lost_words})


# --------------------------------------------------------------------------------------------------- QA


def _encode_sides(backend: Any, texts: list[str]) -> list[Any]:
    """Encode without the post-processor: it runs even without special tokens, and RoBERTa's trims
    offsets, which must happen once (when the pair is assembled), not twice."""
    processor = backend.post_processor
    backend.post_processor = None
    try:
        return backend.encode_batch(texts, add_special_tokens=False)
    finally:
        backend.post_processor = processor


def _cut_question(backend: Any, question: str, encoding: Any, max_query_length: int) -> Any:
    """The question re-encoded from a prefix of its text that fits `max_query_length` tokens.

    (Encoding.truncate would keep the rest as overflow, and the pair assembly would then pair every
    question overflow with every context window.)
    """
    while len(encoding) > max_query_length:
        end = encoding.offsets[max_query_length - 1][1]
        encoding = _encode_sides(backend, [question[:end]])[0]
        if len(encoding) > max_query_length:
            max_query_length -= 1
            if max_query_length < 1:
                return _encode_sides(backend, [""])[0]
    return encoding


def _span(offsets: list[tuple[int, int] | None], start: int, end: int) -> tuple[int, int]:
    """Token positions of characters [start, end) when the window holds all of them, else (0, 0)."""
    context = [i for i, o in enumerate(offsets) if o is not None]
    if not context or offsets[context[0]][0] > start or offsets[context[-1]][1] < end:  # type: ignore[index]
        return 0, 0
    first = next(i for i in context if offsets[i][1] > start)  # type: ignore[index]
    last = next(i for i in reversed(context) if offsets[i][0] < end)  # type: ignore[index]
    if last < first:
        return 0, 0
    return first, last


def _encode_qa(examples: Sequence[Example], tokenizer: Any, max_length: int, doc_stride: int,
               max_query_length: int) -> Features:
    backend = tokenizer.backend
    specials = backend.num_special_tokens_to_add(True)
    if max_query_length < 1:
        raise ConfigError(f"max_query_length must be at least 1, got {max_query_length}")
    if doc_stride < 0:
        raise ConfigError(f"doc_stride (the tokens consecutive windows share) must be >= 0, got {doc_stride}")
    if max_length - max_query_length - specials < 1:
        raise ConfigError(f"max_length={max_length} leaves no room for the context after a question of up to "
                          f"max_query_length={max_query_length} tokens and {specials} special tokens")
    for e in examples:
        if not isinstance(e.text, str) or not isinstance(e.text_pair, str):
            raise DataError(f"{e.source}: a QA example needs a context (text) and a question (text_pair)")
    questions = _encode_sides(backend, [e.text_pair for e in examples])  # type: ignore[misc]
    contexts = _encode_sides(backend, [e.text for e in examples])  # type: ignore[misc]
    features = []
    clamped: tuple[int, int] | None = None
    multi = missed = 0
    for index, (example, question, context) in enumerate(zip(examples, questions, contexts, strict=True)):
        question = _cut_question(backend, example.text_pair, question, max_query_length)  # type: ignore[arg-type]
        room = max_length - len(question) - specials
        overlap = doc_stride
        if overlap >= room:
            overlap = room // 2
            clamped = clamped or (room, overlap)
        if len(context) > room:
            context.truncate(room, stride=overlap)
        # Each window is assembled on its own: the overflow encodings that one call would also assemble
        # come back with every context token's type id 0 (tokenizers 0.2x), which BERT would misread.
        windows = [backend.post_process(question, context, add_special_tokens=True)]
        windows += [backend.post_process(question, w, add_special_tokens=True) for w in context.overflowing]
        multi += len(windows) > 1
        gold = example.answers[0] if example.answers else None
        found = False
        for window in windows:
            offsets = [tuple(o) if s == 1 else None for o, s in zip(window.offsets, window.sequence_ids,
                                                                    strict=True)]
            feature: dict[str, Any] = {
                "input_ids": list(window.ids),
                "token_type_ids": list(window.type_ids),
                "attention_mask": list(window.attention_mask),
                "offsets": offsets,
                "example_index": index,
            }
            if gold is not None:
                start, end = _span(offsets, gold["start"], gold["start"] + len(gold["text"]))
                feature["start_positions"], feature["end_positions"] = start, end
                found = found or (start, end) != (0, 0)
            features.append(feature)
        missed += gold is not None and not found
    if clamped:
        warnings.warn(f"doc_stride={doc_stride} is not smaller than the room for the context (as little as "
                      f"{clamped[0]} tokens); consecutive windows share {clamped[1]} tokens instead", stacklevel=3)
    if missed:
        logger.warning("%d answer(s) lie in no single window (longer than the window overlap); those examples "
                       "train towards the [CLS] token", missed)
    return Features(features, {"examples": len(examples), "features": len(features),
                               "examples_with_several_windows": multi, "answers_in_no_window": missed})


# -------------------------------------------------------------------------------------- multiple choice


def _encode_choices(examples: Sequence[Example], tokenizer: Any, max_length: int) -> Features:
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
        feature: dict[str, Any] = {key: [encoded[key][r] for r in rows]
                                   for key in ("input_ids", "token_type_ids", "attention_mask")}
        feature["example_index"] = index
        feature["num_choices"] = len(rows)
        if e.label is not None:
            if isinstance(e.label, bool) or not isinstance(e.label, int) or not 0 <= e.label < len(rows):
                raise DataError(f"{e.source}: the label must be the index of a choice (0..{len(rows) - 1}), "
                                f"got {e.label!r}")
            feature["labels"] = e.label
        features.append(feature)
    return Features(features, {"examples": len(examples), "features": len(features)})


# ---------------------------------------------------------------------------------------------- collator


TENSOR_KEYS = ("input_ids", "token_type_ids", "attention_mask", "labels", "start_positions", "end_positions",
               "cached")


class Collator:
    """Features -> a batch of tensors, padded to the longest sequence in the batch (not to max_length:
    short batches then cost less).  Tagging labels pad with -100 so padding adds no loss; multiple choice
    gives ``(batch, choices, seq)``.  Bookkeeping keys are dropped; ``cached`` frozen-encoder features are
    stacked (token-level ones zero-padded along the sequence)."""

    def __init__(self, pad_token_id: int, kind: str) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown task kind {kind!r}; expected one of {list(KINDS)}")
        self.pad_token_id = int(pad_token_id)
        self.kind = kind

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        keys = [k for k in TENSOR_KEYS if k in features[0]]
        for n, feature in enumerate(features):
            mismatch = set(keys) ^ {k for k in TENSOR_KEYS if k in feature}
            if mismatch:
                raise ValueError(f"batch feature {n} differs from feature 0 in {sorted(mismatch)} (does the batch "
                                 f"mix labelled and unlabelled examples?)")
        pads = {"input_ids": self.pad_token_id, "token_type_ids": 0, "attention_mask": 0}
        batch: dict[str, torch.Tensor] = {}
        for key in keys:
            values = [f[key] for f in features]
            if key in pads:
                if self.kind == "multiple_choice":
                    batch[key] = _pad_choices(values, pads[key], key)
                else:
                    batch[key] = _pad(values, pads[key])
            elif key == "cached":
                batch[key] = _stack_cached(values)
            elif key == "labels":
                batch[key] = self._labels(values)
            else:
                batch[key] = torch.tensor(values, dtype=torch.long)
        return batch

    def _labels(self, values: list[Any]) -> torch.Tensor:
        if self.kind == "tagging":
            return _pad(values, IGNORE_INDEX)
        if isinstance(values[0], list):  # multi-label: multi-hot rows
            return torch.tensor(values, dtype=torch.float)
        if self.kind == "regression":
            return torch.tensor(values, dtype=torch.float)
        return torch.tensor(values, dtype=torch.long)


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def _pad_choices(groups: Sequence[Sequence[Sequence[int]]], value: int, key: str) -> torch.Tensor:
    counts = {len(g) for g in groups}
    if len(counts) > 1:
        raise ValueError(f"multiple-choice batch mixes {sorted(counts)} choices per example in {key!r}")
    width = max(len(row) for group in groups for row in group)
    out = torch.full((len(groups), counts.pop(), width), value, dtype=torch.long)
    for i, group in enumerate(groups):
        for j, row in enumerate(group):
            out[i, j, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def _stack_cached(values: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) == 1:
        return torch.stack(values)
    if len({(len(s), s[:-2], s[-1]) for s in shapes}) > 1:
        raise ValueError(f"cached features differ in more than sequence length: {sorted(shapes)}")
    length = max(v.shape[-2] for v in values)
    return torch.stack([torch.nn.functional.pad(v, (0, 0, 0, length - v.shape[-2])) for v in values])


__all__ = ["Collator", "Features", "encode"]
