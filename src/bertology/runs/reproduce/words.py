"""The word-based Chinese data of the char-vs-word claim: the character data's text cut into jieba words."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..demo.chinese import read_jsonl


def _cut(text: str, jieba: Any) -> str:
    return " ".join(w for w in jieba.lcut(text.strip()) if w.strip())


def prepare(chars: Path, folder: Path, vocab_size: int) -> dict[str, Any]:
    """From the character data folder `chars`: spaced text, a word-level WordPiece vocabulary (CJK characters
    not split apart), the pretraining corpus and the spaced sentiment splits, all under `folder`."""
    import jieba

    from ...data.prepare import prepare_corpus
    from ...tokenization import WordPieceTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    texts = []
    for name in ("peoples_daily.txt", "reviews.txt"):
        target = folder / name
        with open(chars / name, encoding="utf-8") as source:
            target.write_text("".join(_cut(line, jieba) + "\n" for line in source if line.strip()), encoding="utf-8")
        texts.append(target)
    tokenizer = WordPieceTokenizer.train([str(t) for t in texts], vocab_size=vocab_size, min_frequency=2,
                                         tokenize_chinese_chars=False, limit_alphabet=7000, show_progress=False)
    tokenizer.save_pretrained(folder / "tokenizer")
    summary = prepare_corpus(texts, folder / "corpus", tokenizer, input_format="text", doc_per_line=True,
                             chinese_words="none", overwrite=True)
    sentiment = folder / "sentiment"
    sentiment.mkdir(exist_ok=True)
    for split in ("train", "dev", "test"):
        rows = read_jsonl(chars / "sentiment" / f"{split}.jsonl")
        (sentiment / f"{split}.jsonl").write_text(
            "".join(json.dumps({**row, "text": _cut(row["text"], jieba)}, ensure_ascii=False) + "\n" for row in rows),
            encoding="utf-8")
    shutil.copy(chars / "sentiment" / "labels.txt", sentiment / "labels.txt")
    return {"vocab_size": tokenizer.vocab_size, "tokens": summary.tokens}
