"""A small real corpus shared by the objectives' end-to-end tests: prepared once per session."""

from __future__ import annotations

from itertools import islice

import pytest

from bertology import Tokenizer
from bertology.assets import peoples_daily_path, peoples_daily_sentences
from bertology.data import prepare_corpus


@pytest.fixture(scope="session")
def people_daily_300(tmp_path_factory):
    """The first 300 People's Daily lines prepared with jieba word starts, and a character vocabulary for them
    (`ROOT/corpus`, `ROOT/tok`). Read-only: tests write their runs elsewhere."""
    root = tmp_path_factory.mktemp("people_daily_300")
    lines = ["".join(words) for words in islice(peoples_daily_sentences(), 300)]
    tok = Tokenizer.train(iter(lines), vocab_size=2000, limit_alphabet=3000, min_frequency=1)
    tok.save_pretrained(root / "tok")
    source = root / "pd.txt"
    with open(peoples_daily_path(), encoding="utf-8") as handle:
        source.write_text("".join(islice(handle, 300)), encoding="utf-8")
    prepare_corpus([source], root / "corpus", tok, input_format="pku", chinese_words="jieba", progress=False)
    return root
