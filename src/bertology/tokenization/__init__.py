"""Tokenizers built on Hugging Face `tokenizers`, id-for-id with transformers: BERT WordPiece and RoBERTa
byte-level BPE, with one API (see :class:`~bertology.tokenization.base.BaseTokenizer`)."""

from __future__ import annotations

import os
from pathlib import Path

from bertology.tokenization.base import CONFIG_FILE, TOKENIZER_FILE, BaseTokenizer, read_config, read_json
from bertology.tokenization.bpe import MERGES_FILE, ByteLevelBPETokenizer
from bertology.tokenization.bpe import VOCAB_FILE as BPE_VOCAB_FILE
from bertology.tokenization.wordpiece import VOCAB_FILE as WORDPIECE_VOCAB_FILE
from bertology.tokenization.wordpiece import BatchEncoding, Tokenizer, train_wordpiece

__all__ = [
    "BaseTokenizer",
    "BatchEncoding",
    "ByteLevelBPETokenizer",
    "Tokenizer",
    "load_tokenizer",
    "train_wordpiece",
]

# transformers' tokenizer_class names (without "Fast") whose pipeline each of our classes reproduces.
_BPE_CLASSES = {"RobertaTokenizer", "GPT2Tokenizer", "BartTokenizer", "LongformerTokenizer"}
_WORDPIECE_CLASSES = {"BertTokenizer", "DistilBertTokenizer", "ElectraTokenizer"}
_BY_MODEL_TYPE: dict[str, type[BaseTokenizer]] = {"BPE": ByteLevelBPETokenizer, "WordPiece": Tokenizer}


def load_tokenizer(folder: str | os.PathLike) -> Tokenizer | ByteLevelBPETokenizer:
    """Load a saved tokenizer folder with the class that fits it, so callers need not know which.

    Decided by tokenizer_config.json's tokenizer_class when it has one, else by tokenizer.json's model
    type, else by the files present (vocab.json + merges.txt: byte-level BPE; vocab.txt: WordPiece).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no tokenizer folder at {folder}")
    name = read_config(folder).get("tokenizer_class")
    if name is not None:
        base = str(name).removesuffix("Fast")
        if base in _BPE_CLASSES:
            return ByteLevelBPETokenizer.from_pretrained(folder)
        if base in _WORDPIECE_CLASSES:
            return Tokenizer.from_pretrained(folder)
        raise ValueError(
            f"{folder / CONFIG_FILE}: tokenizer_class {name!r} is neither byte-level BPE "
            f"({sorted(_BPE_CLASSES)}) nor WordPiece ({sorted(_WORDPIECE_CLASSES)})"
        )
    if (folder / TOKENIZER_FILE).is_file():
        state = read_json(folder / TOKENIZER_FILE)
        model = state.get("model") if isinstance(state, dict) else None
        kind = model.get("type") if isinstance(model, dict) else None
        if kind in _BY_MODEL_TYPE:
            return _BY_MODEL_TYPE[kind].from_pretrained(folder)  # type: ignore[return-value]
        raise ValueError(f"{folder / TOKENIZER_FILE}: model type {kind!r} is neither BPE nor WordPiece")
    if (folder / BPE_VOCAB_FILE).is_file() or (folder / MERGES_FILE).is_file():
        return ByteLevelBPETokenizer.from_pretrained(folder)
    if (folder / WORDPIECE_VOCAB_FILE).is_file():
        return Tokenizer.from_pretrained(folder)
    raise FileNotFoundError(
        f"{folder} holds no tokenizer: expected {TOKENIZER_FILE}, {BPE_VOCAB_FILE} + {MERGES_FILE}, "
        f"or {WORDPIECE_VOCAB_FILE}"
    )
