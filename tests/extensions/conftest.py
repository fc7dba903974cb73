"""A small real English corpus and a helper that runs `bertology` as a user does, for the extension tests:
each test file defines and registers one new component, then names it in a YAML config."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from bertology import Tokenizer
from bertology.assets import english_fortune_files, read_fortunes
from bertology.data import prepare_corpus


@pytest.fixture(scope="session")
def english(tmp_path_factory) -> Path:
    """A WordPiece tokenizer and a prepared corpus of 300 real fortunes."""
    root = tmp_path_factory.mktemp("english")
    texts = list(islice((t for f in english_fortune_files() for t in read_fortunes(f)), 300))
    (root / "text.txt").write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    tok = Tokenizer.train(iter(texts), vocab_size=1200, min_frequency=1)
    tok.save_pretrained(root / "tok")
    prepare_corpus([root / "text.txt"], root / "corpus", tok, progress=False)
    return root
