"""Extractive QA features: question + context windows (the sliding window of BERT's SQuAD code).

``offsets`` holds character offsets into the context for context tokens and ``None`` elsewhere, which is
what :func:`~bertology.finetuning.qa.answer_across_windows` needs; ``start_positions``/``end_positions``
are the gold span's tokens in the window, or 0/0 (the first, [CLS] token) when it is not inside.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from ...errors import ConfigError, DataError
from ..encoding import Features
from ..examples import Example

logger = logging.getLogger(__name__)

__all__ = ["encode_qa"]


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


def encode_qa(examples: Sequence[Example], tokenizer: Any, max_length: int, doc_stride: int,
               max_query_length: int) -> Features:
    """Question + context windows: the context is split into windows of whatever room the question leaves,
    consecutive windows sharing `doc_stride` tokens, so an answer near a window edge is whole in the next."""
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
                      f"{clamped[0]} tokens); consecutive windows share {clamped[1]} tokens instead", stacklevel=4)
    if missed:
        logger.warning("%d answer(s) lie in no single window (longer than the window overlap); those examples "
                       "train towards the [CLS] token", missed)
    return Features(features, {"examples": len(examples), "features": len(features),
                               "examples_with_several_windows": multi, "answers_in_no_window": missed})
