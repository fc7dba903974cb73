"""Word starts: where a whole word begins in a sequence of tokens.

Whole-word masking and AMBERT's coarse tokens both read words from these marks. The corpus preparation
(data/prepare.py) records them for pretraining and :class:`~bertology.tokenization.ambert.AmbertTokenizer`
computes them from raw text at fine-tuning and prediction time; both call the functions here, so the two
agree by construction: a token starts a word where the pre-tokenizer's word changes (a WordPiece token
without the "##" prefix), and, with jieba, a token of one CJK character starts a word only where a jieba
word starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bertology.errors import BertologyError
from bertology.tokenization.pinyin import has_cjk

__all__ = ["cjk_token_table", "continuation_table", "load_jieba", "mark_jieba_starts", "unk_id", "word_id_starts"]

#: The CJK ideograph blocks of `has_cjk`, as code point ranges (for unknown tokens, read from the text).
CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF),
              (0x30000, 0x3134F))

#: jieba.lcut: text -> its words (what `load_jieba().lcut` is)
Cut = Callable[..., list[str]]


def is_cjk_point(points: np.ndarray) -> np.ndarray:
    """Which code points are CJK ideographs (vectorised `has_cjk` of one character)."""
    mask = np.zeros(points.shape, dtype=bool)
    for lo, hi in CJK_RANGES:
        mask |= (points >= lo) & (points <= hi)
    return mask


def continuation_table(backend: Any) -> np.ndarray | None:
    """id -> continues a word, for a WordPiece backend with a "##"-style prefix (None for other models).

    With WordPiece a token continues a word exactly when it carries the prefix (a word it cannot spell
    becomes one [UNK]), so word starts follow from the ids alone, without word ids or offsets.
    """
    prefix = getattr(backend.model, "continuing_subword_prefix", None)
    if type(backend.model).__name__ != "WordPiece" or not prefix:
        return None
    vocab = backend.get_vocab(with_added_tokens=True)
    table = np.zeros(max(vocab.values()) + 1, dtype=bool)
    for token, token_id in vocab.items():
        if token.startswith(prefix) and len(token) > len(prefix):
            table[token_id] = True
    return table


def word_id_starts(word_ids: np.ndarray) -> np.ndarray:
    """Starts (uint8) where the pre-tokenizer's word id changes; a negative id (an added token, whose word
    id is None) stands alone. For models whose ids do not tell a continuation (byte-level BPE)."""
    starts = np.ones(len(word_ids), dtype=np.uint8)
    if len(word_ids) > 1:
        starts[1:] = word_ids[1:] != word_ids[:-1]
    starts[word_ids < 0] = 1
    return starts


def cjk_token_table(backend: Any) -> np.ndarray:
    """id -> is one CJK character (BERT gives each its own token), so no per-character scan is needed."""
    vocab = backend.get_vocab(with_added_tokens=True)
    table = np.zeros(max(vocab.values()) + 1, dtype=bool)
    for token, token_id in vocab.items():
        if len(token) == 1 and has_cjk(token):
            table[token_id] = True
    return table


def unk_id(backend: Any) -> int | None:
    """The backend's unknown-token id: an unknown CJK character is still a character token."""
    return backend.token_to_id(getattr(backend.model, "unk_token", "[UNK]") or "[UNK]")


def load_jieba() -> Any:
    """jieba, imported on first use (loading its dictionary takes a second; English never needs it)."""
    import logging

    try:
        import jieba
    except ImportError:
        raise BertologyError("Chinese word starts need jieba, which is not installed: pip install "
                             "'bertology[data]' (or prepare with --chinese-words none)") from None
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def mark_jieba_starts(text: str, ids: np.ndarray, offsets: np.ndarray, starts: np.ndarray,
                      cjk_tokens: np.ndarray, unk: int | None, cut: Cut) -> None:
    """In place: a token of one CJK character of `text` starts a word only where a jieba word starts
    (Chinese whole-word masking); other tokens keep their marks.

    `ids`, `offsets` ((n, 2) character spans in `text`) and `starts` (a writable view) are the text's
    tokens, without special tokens. jieba cuts within runs of Han characters, letters and digits, which
    never span a sentence boundary, so cutting a whole text gives what cutting its sentences gives.
    """
    n = len(ids)
    if n == 0 or not has_cjk(text):
        return
    is_cjk = cjk_tokens[ids]
    first = offsets[:, 0]
    unknown = np.flatnonzero(ids == unk)
    if len(unknown):
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        one_char = offsets[unknown, 1] - first[unknown] == 1
        is_cjk[unknown] = one_char & is_cjk_point(points[np.minimum(first[unknown], len(text) - 1)])
    word_begin = np.zeros(len(text) + 1, dtype=bool)
    lengths = np.fromiter(map(len, cut(text, HMM=True)), dtype=np.int64)
    word_begin[np.cumsum(lengths) - lengths] = True
    starts[is_cjk] = word_begin[first[is_cjk]]
