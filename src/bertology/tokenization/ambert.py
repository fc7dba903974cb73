"""AMBERT's tokenizer: BERT WordPiece ids plus the aligned coarse-grained sequence, one token per word.

An AMBERT model reads, beside the fine tokens (characters, word pieces), `coarse_ids` with their own
`coarse_attention_mask` and `coarse_token_type_ids`: one coarse token per whole word of the fine sequence.
In pretraining they come from the corpus's word starts (data/coarse.py). At fine-tuning and prediction
time there is no corpus, so this tokenizer marks the word starts of the text it encodes with the functions
the corpus preparation uses (tokenization/words.py): the model sees the same words for the same sentence.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers

from bertology.tokenization.base import _as_batch, read_config
from bertology.tokenization.chinesebert import CLASS_KEY
from bertology.tokenization.coarse import CLS, COARSE_VOCAB_FILE, PAD, SEP, CoarseVocabulary
from bertology.tokenization.wordpiece import WordPieceTokenizer
from bertology.tokenization.words import (
    cjk_token_table,
    continuation_table,
    load_jieba,
    mark_jieba_starts,
    unk_id,
    word_id_starts,
)

__all__ = ["COARSE_INPUTS", "AmbertTokenizer"]

#: The batch keys this tokenizer adds (AmbertModel.token_inputs).
COARSE_INPUTS = ("coarse_ids", "coarse_attention_mask", "coarse_token_type_ids")
#: tokenizer_config.json key: how Chinese words were cut when the corpus was prepared ("jieba" or None).
CHINESE_WORDS_KEY = "chinese_words"
_CHINESE_WORDS = ("jieba", None)


class AmbertTokenizer(WordPieceTokenizer):
    """A BERT WordPiece tokenizer whose batches also carry AMBERT's coarse sequence.

    Ids, segments, masks and offsets are the WordPiece tokenizer's; `__call__` adds `coarse_ids`,
    `coarse_attention_mask` and `coarse_token_type_ids`: one coarse token per word of the truncated fine
    sequence ([CLS] and each [SEP] become the coarse [CLS] and [SEP], a word missing from the coarse
    vocabulary [UNK]), a word's segment being its first token's. Padding makes no words; when the fine rows
    share one length the coarse rows are padded to the longest (id 0, mask 0, segment 0), so a batch turns
    into tensors exactly when the fine one does. The folder holds `coarse_vocab.json` beside the vocabulary.
    """

    def __init__(self, backend: tokenizers.Tokenizer, *, coarse_vocab: CoarseVocabulary,
                 chinese_words: str | None = "jieba", **kwargs: Any) -> None:
        if chinese_words not in _CHINESE_WORDS:
            raise ValueError(f"chinese_words must be 'jieba' or None, got {chinese_words!r}")
        super().__init__(backend, **kwargs)
        self.coarse_vocab = coarse_vocab
        self._chinese_words = chinese_words
        self._continues = continuation_table(backend)
        self._cjk_tokens = cjk_token_table(backend)
        self._unk = unk_id(backend)
        self._jieba: Any = None

    # ----------------------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> AmbertTokenizer:
        """The WordPiece files of a folder (or one of them) and the folder's coarse_vocab.json."""
        plain = WordPieceTokenizer.from_pretrained(path)
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        return cls.from_wordpiece(plain, coarse_vocab=_read_coarse_vocab(folder),
                                  chinese_words=read_config(folder).get(CHINESE_WORDS_KEY, "jieba"))

    @classmethod
    def for_model_folder(cls, tokenizer: WordPieceTokenizer, extras: str | os.PathLike) -> AmbertTokenizer:
        """`tokenizer` with the coarse vocabulary a pretraining run saved in its folder `extras`."""
        return cls.from_wordpiece(tokenizer, coarse_vocab=_read_coarse_vocab(Path(extras)))

    @property
    def chinese_words(self) -> str | None:
        """"jieba": a CJK character starts a word only where a jieba word starts; None: every one does."""
        return self._chinese_words

    # ---------------------------------------------------------------------------------------- encoding

    def word_starts(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None,
                    max_length: int | None = None, truncation: bool = True) -> list[list[int]]:
        """Per text, 1 where a word starts, for each token of its unpadded ids ([CLS] and every [SEP] a word
        of their own): the marks the coarse sequence is built from, for checks and inspection."""
        batch = _as_batch(texts, "texts")
        pairs = None if text_pairs is None else _as_batch(text_pairs, "text_pairs")
        max_length = self._check_max_length(max_length, pair=pairs is not None)
        encodings = self._encode(batch, pairs, max_length, truncation)
        return [self._word_starts(enc, batch[i], pairs[i] if pairs else None).astype(int).tolist()
                for i, enc in enumerate(encodings)]

    def _extra_inputs(
        self, encodings: list[Any], texts: list[str], pairs: list[str] | None
    ) -> dict[str, list[Any]]:
        rows = [self._coarse_row(enc, texts[i], pairs[i] if pairs else None) for i, enc in enumerate(encodings)]
        masks = [[1] * len(ids) for ids, _ in rows]
        if len({len(e) for e in encodings}) == 1:  # the fine rows share one length: so do the coarse ones
            width = max(len(ids) for ids, _ in rows)
            rows = [(_pad(ids, width, PAD), _pad(types, width, 0)) for ids, types in rows]
            masks = [_pad(mask, width, 0) for mask in masks]
        return {"coarse_ids": [ids for ids, _ in rows], "coarse_attention_mask": masks,
                "coarse_token_type_ids": [types for _, types in rows]}

    def _coarse_row(self, enc: Any, text: str, pair: str | None) -> tuple[list[int], list[int]]:
        """The coarse ids and segments of one encoding: a word from each start to the next."""
        n = _real_length(enc)
        ids = np.asarray(enc.ids[:n], dtype=np.int64)
        types = enc.type_ids[:n]
        frame = _frame(np.asarray(types))
        bounds = np.flatnonzero(self._word_starts(enc, text, pair)).tolist()
        coarse = [
            (CLS if a == 0 else SEP) if frame[a] else self.coarse_vocab.lookup(tuple(ids[a:b].tolist()))
            for a, b in zip(bounds, [*bounds[1:], n], strict=True)
        ]
        return coarse, [types[a] for a in bounds]

    def _word_starts(self, enc: Any, text: str, pair: str | None) -> np.ndarray:
        """Word starts (bool) of an encoding's real tokens, as the corpus preparation marks them in each
        sentence; [CLS] and each [SEP] stand alone, so each segment's first token starts a word."""
        n = _real_length(enc)
        ids = np.asarray(enc.ids[:n], dtype=np.int64)
        if self._continues is not None:
            starts = ~self._continues[ids]
        else:
            word_ids = np.array([-1 if w is None else w for w in enc.word_ids[:n]], dtype=np.int64)
            starts = word_id_starts(word_ids).astype(bool)
        frame = _frame(np.asarray(enc.type_ids[:n]))
        starts |= frame
        starts[1:] |= frame[:-1]
        if self._chinese_words == "jieba":
            offsets = np.asarray(enc.offsets[:n], dtype=np.int64).reshape(n, 2)
            for (a, b), segment in zip(_segment_spans(frame), (text, pair), strict=False):
                mark_jieba_starts(segment, ids[a:b], offsets[a:b], starts[a:b], self._cjk_tokens, self._unk,
                                  self._jieba_cut)
        return starts

    def _jieba_cut(self, text: str, HMM: bool = True) -> list[str]:
        # jieba is imported only when a text with a CJK character shows up: English never needs it.
        if self._jieba is None:
            self._jieba = load_jieba()
        return self._jieba.lcut(text, HMM=HMM)

    # -------------------------------------------------------------------------------------------- saving

    def _save_vocabulary(self, folder: Path) -> None:
        super()._save_vocabulary(folder)
        self.coarse_vocab.save(folder / COARSE_VOCAB_FILE)

    def _tokenizer_config(self, special_map: dict[str, Any]) -> dict[str, Any]:
        return {**super()._tokenizer_config(special_map), CLASS_KEY: type(self).__name__,
                CHINESE_WORDS_KEY: self._chinese_words}


# ------------------------------------------------------------------------------------------------ helpers


def _read_coarse_vocab(folder: Path) -> CoarseVocabulary:
    path = folder / COARSE_VOCAB_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {COARSE_VOCAB_FILE}: an AMBERT tokenizer needs the coarse "
                                "vocabulary its model was pretrained with")
    return CoarseVocabulary.load(path)


def _real_length(enc: Any) -> int:
    """Tokens before the padding (padding is always on the right)."""
    return int(sum(enc.attention_mask))


def _frame(types: np.ndarray) -> np.ndarray:
    """Where BERT's template put [CLS] (first) and each segment's [SEP] (its last token), told by position
    rather than by id, so a "[SEP]" typed in the text is a word like any other, as in the corpus."""
    frame = np.zeros(len(types), dtype=bool)
    frame[0] = True
    for segment in np.unique(types):
        frame[np.flatnonzero(types == segment)[-1]] = True
    return frame


def _segment_spans(frame: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each segment's own tokens, between the frame tokens."""
    marks = np.flatnonzero(frame).tolist()
    return [(a + 1, b) for a, b in zip(marks, marks[1:], strict=False)]


def _pad(row: list[int], width: int, value: int) -> list[int]:
    return row + [value] * (width - len(row))
