"""Tokenizers built on Hugging Face `tokenizers`, id-for-id with transformers: BERT WordPiece, RoBERTa
byte-level BPE and ChineseBERT's WordPiece with pinyin, with one API
(:class:`~bertology.tokenization.base.BaseTokenizer`) and one loader, :class:`Tokenizer`, that picks the
class a saved folder needs."""

from __future__ import annotations

from bertology.tokenization.auto import Tokenizer, load_tokenizer, tokenizer_class_for
from bertology.tokenization.base import BaseTokenizer, BatchEncoding
from bertology.tokenization.bpe import ByteLevelBPETokenizer
from bertology.tokenization.chinesebert import ChineseBertTokenizer
from bertology.tokenization.wordpiece import WordPieceTokenizer, train_wordpiece

__all__ = [
    "BaseTokenizer",
    "BatchEncoding",
    "ByteLevelBPETokenizer",
    "ChineseBertTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "load_tokenizer",
    "tokenizer_class_for",
    "train_wordpiece",
]
