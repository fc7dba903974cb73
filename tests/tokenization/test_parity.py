"""Our tokenizer must give transformers' ids, offsets and word ids on real English and Chinese text."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertTokenizerFast

from bertology.assets import (
    chinese_fortune_files,
    english_fortune_files,
    minilm_dir,
    peoples_daily_sentences,
    read_fortunes,
    wordnet_data_files,
)
from bertology.tokenization import Tokenizer, WordPieceTokenizer

BATCH = 64


def _glosses(path: Path, limit: int) -> list[str]:
    """WordNet glosses: the text after '| ' on synset lines (the licence header lines start with spaces)."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  ") or "| " not in line:
                continue
            out.append(line.split("| ", 1)[1].strip())
            if len(out) >= limit:
                break
    return out


@pytest.fixture(scope="module")
def english() -> list[str]:
    # A spread over every fortune file (not just the first), plus dictionary-style glosses.
    texts = [e for f in english_fortune_files() for e in itertools.islice(read_fortunes(f), 30)]
    for path in wordnet_data_files():
        texts += _glosses(path, 150)
    assert len(texts) >= 1000
    return texts


@pytest.fixture(scope="module")
def chinese() -> list[str]:
    texts = ["".join(words) for words in itertools.islice(peoples_daily_sentences(), 900)]
    for path in chinese_fortune_files():
        # transformers' own pair truncation is quadratic in document length, so skip the few essays
        # over 1,500 characters to keep the oracle fast; the rest still overflow 512 tokens.
        texts += list(itertools.islice((e for e in read_fortunes(path) if len(e) <= 1500), 150))
    assert len(texts) >= 1000
    return texts


@pytest.fixture(scope="module")
def ours() -> WordPieceTokenizer:
    return Tokenizer.from_pretrained(minilm_dir())


@pytest.fixture(scope="module")
def theirs():
    return BertTokenizerFast.from_pretrained(str(minilm_dir()))


def _batches(texts: list[str], pairs: bool):
    for start in range(0, len(texts) - 1, BATCH):
        chunk = texts[start : start + BATCH + 1]
        if pairs:  # consecutive sentences as (first, second)
            yield chunk[:-1], chunk[1:]
        else:
            yield chunk[:-1], None


def _assert_same(
    ours: WordPieceTokenizer, theirs, texts: list[str], pairs: bool, max_length: int, extras: bool
) -> None:
    for first, second in _batches(texts, pairs):
        a = ours(
            first,
            second,
            max_length=max_length,
            return_tensors=None,
            return_offsets_mapping=extras,
            return_word_ids=extras,
        )
        b = theirs(
            first,
            second,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_offsets_mapping=extras,
        )
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert a[key] == b[key], key
        assert max(len(ids) for ids in a["input_ids"]) <= max_length
        if extras:
            assert a["offset_mapping"] == [[tuple(o) for o in row] for row in b["offset_mapping"]]
            assert a["word_ids"] == [b.word_ids(i) for i in range(len(first))]


@pytest.mark.parametrize("language", ["english", "chinese"])
@pytest.mark.parametrize("pairs", [False, True], ids=["single", "pair"])
@pytest.mark.parametrize("max_length", [32, 128, 512])
def test_ids_match_transformers(request, ours, theirs, language, pairs, max_length):
    texts = request.getfixturevalue(language)
    _assert_same(ours, theirs, texts, pairs, max_length, extras=max_length == 128)


def test_truncation_really_happens_and_is_longest_first(ours, theirs, english):
    # Guard against a vacuous parity test: at 32 many inputs must be cut, and a long first
    # sentence paired with a short second one must lose tokens from the first only.
    enc = ours(english, max_length=32, return_tensors=None, padding=False)
    assert sum(len(ids) == 32 for ids in enc["input_ids"]) > 100
    long_text = max(english, key=len)
    short = "A short one."
    ids = ours.encode(long_text, short, max_length=32)
    assert ids == theirs(long_text, short, truncation=True, max_length=32)["input_ids"]
    assert ids[-len(ours.tokenize(short)) - 1 : -1] == ours.convert_tokens_to_ids(ours.tokenize(short))


def test_pair_truncation_at_every_boundary(ours, theirs, english):
    # Our pair path pre-caps each side before longest-first truncation (tokenizers' own path is
    # quadratic); check it around every boundary: odd/even budgets, equal lengths, either side longer.
    by_length: dict[int, str] = {}
    for text in english:
        by_length.setdefault(len(ours.tokenize(text)), text)
    lengths = [n for n in sorted(by_length) if n <= 45]
    assert len(lengths) > 30
    firsts, seconds = [], []
    for n1, n2 in itertools.product(lengths, repeat=2):
        firsts.append(by_length[n1])
        seconds.append(by_length[n2])
    for max_length in (9, 16, 17, 31, 32, 47):  # tiny budgets make the oracle itself crawl
        a = ours(firsts, seconds, max_length=max_length, return_tensors=None, return_word_ids=True)
        b = theirs(firsts, seconds, padding=True, truncation=True, max_length=max_length)
        assert a["input_ids"] == b["input_ids"], max_length
        assert a["token_type_ids"] == b["token_type_ids"], max_length
        assert a["word_ids"] == [b.word_ids(i) for i in range(len(firsts))]
    short = [(f, s) for f, s in zip(firsts, seconds, strict=True) if max(len(f), len(s)) <= 80]
    assert len(short) > 20
    for max_length in (3, 4, 5, 6):  # budgets of 0..3 tokens for the two texts together
        a = ours([f for f, _ in short], [s for _, s in short], max_length=max_length, return_tensors=None)
        b = theirs(
            [f for f, _ in short], [s for _, s in short], padding=True, truncation=True, max_length=max_length
        )
        assert a["input_ids"] == b["input_ids"], max_length


def test_padding_max_length_and_tensors_match(ours, theirs, english, chinese):
    texts = english[:40] + chinese[:40]
    a = ours(texts, padding="max_length", max_length=96, return_special_tokens_mask=True)
    b = theirs(
        texts,
        padding="max_length",
        truncation=True,
        max_length=96,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    for key in ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask"):
        assert a[key].dtype == torch.long
        assert a[key].shape == (80, 96)
        assert torch.equal(a[key], b[key]), key


def test_tokenize_and_decode_match(ours, theirs, english, chinese):
    for text in english[::7] + chinese[::7]:
        assert ours.tokenize(text) == theirs.tokenize(text)
        ids = ours.encode(text)
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=True)
        assert ours.decode(ids, skip_special_tokens=False) == theirs.decode(ids, skip_special_tokens=False)


def test_vocab_txt_alone_gives_same_ids(tmp_path, theirs, english, chinese):
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_dir() / name, tmp_path / name)
    from_folder = Tokenizer.from_pretrained(tmp_path)
    from_file = Tokenizer.from_pretrained(tmp_path / "vocab.txt")
    texts = english[::3] + chinese[::3]
    expected = theirs(texts, padding=True, truncation=True, max_length=128)["input_ids"]
    assert from_folder(texts, max_length=128, return_tensors=None)["input_ids"] == expected
    assert from_file(texts, max_length=128, return_tensors=None)["input_ids"] == expected
    assert from_folder.vocab == Tokenizer.from_pretrained(minilm_dir()).vocab


def test_direct_tokenizer_json_path(ours, english):
    direct = Tokenizer.from_pretrained(minilm_dir() / "tokenizer.json")
    texts = english[:200]
    assert direct(texts, return_tensors=None)["input_ids"] == ours(texts, return_tensors=None)["input_ids"]


def test_minilm_settings_baked_into_tokenizer_json_do_not_leak(ours, english):
    # MiniLM's tokenizer.json fixes padding at 128 and truncation at 128; ours decides per call.
    long_text = max(english, key=len)
    assert len(ours.encode(long_text)) > 128
    assert len(ours(["short"], return_tensors=None)["input_ids"][0]) == 3
    assert ours.model_max_length == 512 and ours.do_lower_case


def test_saved_minilm_loads_in_transformers(tmp_path, ours, english, chinese):
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["truncation"] is None and saved["padding"] is None
    texts = english[:300] + chinese[:300]
    expected = ours(texts, texts[1:] + texts[:1], max_length=128, return_tensors=None)
    for loaded in (
        BertTokenizerFast.from_pretrained(str(tmp_path)),
        AutoTokenizer.from_pretrained(str(tmp_path)),
    ):
        got = loaded(texts, texts[1:] + texts[:1], padding=True, truncation=True, max_length=128)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert got[key] == expected[key], key
