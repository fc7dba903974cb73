"""Tagging (NER-style): one tag per word, trained on each word's first piece, scored on whole entities."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tokenizers import pre_tokenizers

from ...errors import ConfigError, DataError
from ...utils.typed import check_choice
from ..divergence import symmetric_kl
from ..encoding import Features, pad_rows
from ..examples import CONLL_SUFFIXES, BadRow, Example, short
from ..tagging import IGNORE_INDEX, SCHEMES, align_labels, entity_scores
from .base import TASK_KINDS, TaskKind, class_loss

if TYPE_CHECKING:
    from ..data import Reader
    from ..labels import LabelSet
    from ..model import HeadConfig, HeadOptions
    from ..taskdata import TaskData

logger = logging.getLogger(__name__)

__all__ = ["Tagging", "TaggingOptions", "encode_tagging", "tagged_example", "word_tags"]


@dataclass
class TaggingOptions:
    """How tags are scored and which word pieces are trained."""

    #: the tagging scheme of the entity scores
    scheme: str = "BIO"
    #: train every piece of a word (later pieces of a B- word get its I- tag), not only the first
    label_all_pieces: bool = False

    def validate(self, where: str = "") -> None:
        check_choice(where, "scheme", self.scheme, sorted(SCHEMES))


def tagged_example(words: Any, tags: Any, ident: str | None, source: str) -> Example:
    """Words and (optional) tags as an Example, each checked: a list of non-empty strings, one tag per word."""
    if not isinstance(words, list) or not words:
        raise BadRow("empty text" if words in ([], "", None) else "wrong type",
                     f"the words must be a non-empty list of strings, got {short(words)}")
    for i, word in enumerate(words):
        if not isinstance(word, str):
            raise BadRow("wrong type", f"word {i} is a {type(word).__name__} ({word!r}), not a string")
        if not word.strip():
            raise BadRow("empty word", f"word {i} is empty")
    label = None
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
            raise BadRow("wrong type", f"the tags must be a list of tag names (strings), got {short(tags)}")
        if len(tags) != len(words):
            raise BadRow("tag count differs from word count",
                         f"{len(tags)} tags for {len(words)} words; there must be one tag per word")
        label = [t.strip() for t in tags]
    return Example(text=list(words), label=label, id=ident, source=source)


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


def encode_tagging(examples: Sequence[Example], tokenizer: Any, labels: LabelSet | None, max_length: int,
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


def word_tags(logits: np.ndarray, word_ids: Sequence[int | None], num_words: int, names: Sequence[str]) -> list[str]:
    """One tag per word from its first piece; words cut off by truncation are tagged "O"."""
    tags = ["O"] * num_words
    seen: set[int] = set()
    for position, word in enumerate(word_ids):
        if word is not None and word not in seen and position < len(logits):
            seen.add(word)
            tags[word] = names[int(logits[position].argmax())]
    return tags


@TASK_KINDS.register("tagging", options=TaggingOptions)
class Tagging(TaskKind):
    """Words in (JSONL lists or CoNLL columns), one tag per word out."""

    suffixes = (".jsonl", *CONLL_SUFFIXES)
    sentence_level = False
    uses_labels = True

    def row(self, reader: Reader, row: Mapping[str, Any], source: str) -> Example:
        c = reader.columns
        ident = reader.ident(row)
        words = reader.need(row, c.tokens, "tokens", source)
        raw = reader.need(row, c.tags, "tags", source) if reader.require_labels else row.get(c.tags)
        return tagged_example(words, raw, ident, source)

    def encode(self, examples: Sequence[Example], tokenizer: Any, labels: LabelSet | None,
               max_length: int) -> Features:
        return encode_tagging(examples, tokenizer, labels, max_length, self.options.label_all_pieces)

    def collate_target(self, key: str, values: list[Any]) -> torch.Tensor:
        return pad_rows(values, IGNORE_INDEX)

    def outputs(self, head: HeadConfig) -> int:
        return len(head.labels)

    def loss(self, head: HeadConfig, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        labels = batch.get("labels")
        if labels is None:
            return None, {}
        return class_loss(logits.float(), labels)

    def divergence(self, head: HeadOptions | None, clean: torch.Tensor, perturbed: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
        """A symmetric KL per real token (`mask` 1); padding never counts."""
        keep = mask.bool() if mask is not None else torch.ones(clean.shape[:2], dtype=torch.bool, device=clean.device)
        return symmetric_kl(perturbed[keep], clean[keep])

    def decode(self, task: TaskData, split: str, logits: list[np.ndarray]) -> list[list[str]]:
        examples, features = task.examples[split], task.features[split]
        names = list(task.labels.names) if task.labels is not None else []
        by_example: dict[int, list[str]] = {}
        for feature, row in zip(features, logits, strict=True):
            index = feature.get("example_index", len(by_example))
            by_example[index] = word_tags(row, feature["word_ids"], len(examples[index].text), names)
        return [by_example.get(i, ["O"] * len(e.text)) for i, e in enumerate(examples)]

    def metrics(self, task: TaskData, split: str, predictions: list[Any]) -> dict[str, float]:
        examples = task.examples[split]
        scores = entity_scores([list(e.label) for e in examples], predictions, self.options.scheme)  # type: ignore[arg-type]
        words = sum(len(e.label) for e in examples)  # type: ignore[arg-type]
        right = sum(g == p for e, pred in zip(examples, predictions, strict=True)
                    for g, p in zip(e.label, pred, strict=True))  # type: ignore[arg-type]
        return {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
                "tag_accuracy": right / max(words, 1)}
