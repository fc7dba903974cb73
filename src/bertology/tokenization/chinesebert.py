"""ChineseBERT's tokenizer: BERT WordPiece ids plus every token's pinyin ids, aligned with them.

A ChineseBERT model reads `pinyin_ids` (batch, seq, 8) beside `input_ids`. In pretraining they come from
the corpus: `prepare_corpus(record_pinyin=True)` stores, for every token of every sentence, what
:class:`~bertology.tokenization.pinyin.PinyinEncoder` reads from the sentence's own text (all zeros for a
sentence without a CJK ideograph), and [CLS], [SEP] and padding get all zeros when instances and batches
are built. At fine-tuning and prediction time this tokenizer computes them the same way from the text it
encodes, so the model sees the same pinyin for the same sentence in both.

pypinyin reads heteronyms per run of Chinese characters, and sentence boundaries are punctuation or line
breaks, so reading a whole text at once gives what the preparation's sentence-by-sentence reading gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tokenizers

from bertology.tokenization.pinyin import PINYIN_VOCAB, PinyinEncoder, has_cjk
from bertology.tokenization.wordpiece import WordPieceTokenizer

__all__ = ["CLASS_KEY", "ChineseBertTokenizer"]

#: Key of tokenizer_config.json that names our class when transformers' tokenizer_class cannot: a
#: ChineseBERT folder stays a plain "BertTokenizer" to transformers (same ids, no pinyin).
CLASS_KEY = "bertology_class"


class ChineseBertTokenizer(WordPieceTokenizer):
    """A BERT WordPiece tokenizer whose batches also carry ChineseBERT's `pinyin_ids`.

    Ids, segments, masks, offsets and saved files are exactly the WordPiece tokenizer's (so transformers
    loads the folder as a BertTokenizer); `__call__` adds `pinyin_ids`, shape (batch, seq, 8): each
    token's pinyin letters then tone (see :mod:`~bertology.tokenization.pinyin`), truncated and padded
    with the ids, all zeros for special tokens, padding and tokens without a Chinese character.
    `encode` still returns the ids alone, like every tokenizer here.
    """

    def __init__(self, backend: tokenizers.Tokenizer, **kwargs: Any) -> None:
        super().__init__(backend, **kwargs)
        self._pinyin = PinyinEncoder()

    @property
    def pinyin_length(self) -> int:
        """Pinyin ids per token (8, as in ChineseBERT and the corpus shards)."""
        return self._pinyin.length

    @property
    def pinyin_vocab_size(self) -> int:
        """Size of the pinyin id vocabulary (padding, five tones, 26 letters): the model's pinyin table."""
        return len(PINYIN_VOCAB)

    def _extra_inputs(
        self, encodings: list[Any], texts: list[str], pairs: list[str] | None
    ) -> dict[str, list[Any]]:
        rows = []
        for i, enc in enumerate(encodings):
            ids = np.zeros((len(enc), self.pinyin_length), dtype=np.int64)
            # Segments are told apart by token type (BERT's template: first text 0, second 1), not by
            # sequence_ids, which tokenizers loses for the first text when post-processing a pair.
            # Special and padding tokens are left out: their offsets (0, 0) would read no pinyin anyway.
            for segment, text in ((0, texts[i]), (1, pairs[i] if pairs is not None else None)):
                if text is None or not has_cjk(text):
                    continue  # what the corpus preparation does: no pinyin without a CJK ideograph
                spans = [
                    span if not special and kind == segment else (0, 0)
                    for span, special, kind in zip(enc.offsets, enc.special_tokens_mask, enc.type_ids, strict=True)
                ]
                ids += self._pinyin.encode(text, spans)
            rows.append(ids.tolist())
        return {"pinyin_ids": rows}

    def _tokenizer_config(self, special_map: dict[str, Any]) -> dict[str, Any]:
        return {**super()._tokenizer_config(special_map), CLASS_KEY: type(self).__name__}
