"""Pinyin inputs for ChineseBERT (Sun et al., 2021): each token's pinyin as a short sequence of letter ids.

ChineseBERT feeds every character's romanisation (letters, then the tone digit) to a small CNN, so that
the model sees pronunciation, which disambiguates heteronyms (行 hang2 / xing2) and links homophones.
The pinyin of a character depends on its word (银行 yin2 hang2, 行走 xing2 zou3), so the whole sentence
goes to pypinyin at once and its phrase dictionary picks the reading; tokens are then matched to
characters through the tokenizer's character offsets.

The id layout is ChineseBERT's `pinyin_map.json`: 0 = padding, "1".."5" = 1..5, "a".."z" = 6..31.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["PINYIN_LENGTH", "PINYIN_VOCAB", "PinyinEncoder", "has_cjk", "pinyin_ids", "sentence_pinyin"]

#: Ids per token: the longest syllable ("zhuang") plus its tone fits in 7, and ChineseBERT pads to 8.
PINYIN_LENGTH = 8
#: Padding, the five tones (5 = neutral) and the Latin letters, with ü written "v" as in IMEs.
PINYIN_VOCAB: dict[str, int] = {
    "[PAD]": 0,
    **{str(tone): tone for tone in range(1, 6)},
    **{letter: 6 + i for i, letter in enumerate(string.ascii_lowercase)},
}

# CJK ideographs (the unified blocks, compatibility ideographs, extensions B-H). The corpus preparation
# records pinyin only for sentences holding one of these (bertology.data.sentences.has_cjk, same ranges:
# a test keeps them equal), so the tokenizer must skip exactly the same texts: pypinyin also reads a few
# characters outside them (〇, the compatibility supplement), which pretraining never saw with pinyin.
_CJK = re.compile(
    "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ebef\U00030000-\U0003134f]"
)


def has_cjk(text: str) -> bool:
    """True if `text` holds a CJK ideograph, i.e. if the corpus preparation would read its pinyin."""
    return _CJK.search(text) is not None


def _ascii_syllable(syllable: str) -> str:
    """Keep a-z and the tone digit; ü -> v, and any other accented letter to its base letter."""
    out = []
    for ch in syllable.lower().replace("ü", "v"):
        if ch in PINYIN_VOCAB:
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch)[:1]
        if base in PINYIN_VOCAB:
            out.append(base)
    return "".join(out)


def sentence_pinyin(text: str) -> list[str | None]:
    """The pinyin (TONE3, neutral tone as 5) of every character of `text`, None where it has none.

    One pypinyin call on the whole text, so that its phrase dictionary resolves heteronyms in context.
    """
    from pypinyin import Style, pinyin  # deferred: loading its dictionaries costs a few hundred ms

    items = pinyin(text, style=Style.TONE3, heteronym=False, neutral_tone_with_five=True,
                   errors=lambda run: [""] * len(run))
    if len(items) != len(text):  # pypinyin kept one item per character so far; never trust it blindly
        items = [pinyin(ch, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda run: [""])[0]
                 if ch.strip() else [""] for ch in text]
    readings: list[str | None] = []
    for item in items:
        syllable = _ascii_syllable(item[0]) if item and item[0] else ""
        # A reading must end in its tone; anything else is pypinyin echoing a non-Chinese character.
        readings.append(syllable if len(syllable) >= 2 and syllable[-1] in "12345" else None)
    return readings


def pinyin_ids(syllable: str | None, length: int = PINYIN_LENGTH) -> list[int]:
    """`"hang2"` -> the ids of h, a, n, g, 2 padded with zeros to `length` (all zeros for None)."""
    if not syllable:
        return [0] * length
    ids = [PINYIN_VOCAB[ch] for ch in syllable]
    if len(ids) > length:
        raise ValueError(f"pinyin {syllable!r} needs {len(ids)} ids, more than length={length}")
    return ids + [0] * (length - len(ids))


class PinyinEncoder:
    """Maps a text and its tokens' character offsets to per-token pinyin ids, shape (n_tokens, 8).

    Tokens without a Chinese character ([CLS], [SEP], padding, Latin words, punctuation) get all zeros.
    A token spanning several characters (rare in Chinese BERT vocabularies, which split CJK characters
    apart) takes the pinyin of its first character that has one.
    """

    def __init__(self, length: int = PINYIN_LENGTH) -> None:
        if length < 7:
            raise ValueError(f"length must be at least 7 (e.g. 'zhuang1'), got {length}")
        self.length = length
        self.vocab: dict[str, int] = dict(PINYIN_VOCAB)
        self._by_id = {i: t for t, i in self.vocab.items()}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, offsets: Sequence[Sequence[int]] | Any) -> np.ndarray:
        """Pinyin ids for each token of `text`, given its (start, end) character offsets.

        `offsets` is what a tokenizer returns with `return_offsets_mapping=True` for this text (a list of
        pairs or an (n_tokens, 2) array/tensor); special and padding tokens there span (0, 0).
        """
        spans = np.asarray(offsets.tolist() if hasattr(offsets, "tolist") else offsets, dtype=np.int64)
        spans = spans.reshape(-1, 2)
        readings = sentence_pinyin(text)
        out = np.zeros((len(spans), self.length), dtype=np.int64)
        for row, (start, end) in enumerate(spans):
            if not 0 <= start <= end <= len(text):
                raise ValueError(f"token {row} has offsets ({start}, {end}) outside the text of "
                                 f"{len(text)} characters; were the offsets made for another text?")
            reading = next((r for r in readings[start:end] if r is not None), None)
            if reading is not None:
                out[row] = pinyin_ids(reading, self.length)
        return out

    def encode_batch(self, texts: Sequence[str], offset_mapping: Sequence[Any] | Any) -> np.ndarray:
        """`encode` for a padded batch: `offset_mapping` (batch, seq, 2) -> ids (batch, seq, length)."""
        rows = [self.encode(text, offsets) for text, offsets in zip(texts, offset_mapping, strict=True)]
        seq = max((len(r) for r in rows), default=0)
        out = np.zeros((len(rows), seq, self.length), dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def decode_ids(self, row: Sequence[int] | np.ndarray) -> str:
        """The syllable a row of ids spells, e.g. "hang2"; "" for an all-zero row."""
        return "".join(self._by_id[int(i)] for i in row if int(i) != 0)
