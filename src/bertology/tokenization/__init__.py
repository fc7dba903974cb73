"""Tokenizers built on Hugging Face `tokenizers`, id-for-id with transformers: BERT WordPiece, RoBERTa
byte-level BPE, ChineseBERT's WordPiece with pinyin and AMBERT's WordPiece with words, with one API
(:class:`~bertology.tokenization.base.BaseTokenizer`) and one loader, :class:`Tokenizer`, that picks the
class a saved folder needs."""

from __future__ import annotations

from bertology.tokenization.ambert import AmbertTokenizer
from bertology.tokenization.auto import (
    Tokenizer,
    load_tokenizer,
    save_for_model,
    tokenizer_class_for,
    tokenizer_for_model,
)
from bertology.tokenization.base import BaseTokenizer, BatchEncoding
from bertology.tokenization.bpe import ByteLevelBPETokenizer
from bertology.tokenization.chinesebert import ChineseBertTokenizer
from bertology.tokenization.wordpiece import WordPieceTokenizer, train_wordpiece

__all__ = [
    "AmbertTokenizer",
    "BaseTokenizer",
    "BatchEncoding",
    "ByteLevelBPETokenizer",
    "ChineseBertTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "load_tokenizer",
    "save_for_model",
    "tokenizer_class_for",
    "tokenizer_for_model",
    "train_wordpiece",
]
