"""Tokenizers: BERT WordPiece built on Hugging Face `tokenizers`, id-for-id with transformers."""

from bertology.tokenization.wordpiece import BatchEncoding, Tokenizer, train_wordpiece

__all__ = ["BatchEncoding", "Tokenizer", "train_wordpiece"]
