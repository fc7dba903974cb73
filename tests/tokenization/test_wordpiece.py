"""Behaviour of our WordPiece tokenizer: training, options, batching, saving, errors, on real text."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import unicodedata
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertTokenizerFast

from bertology.assets import english_fortune_files, minilm_dir, peoples_daily_sentences, read_fortunes
from bertology.tokenization import Tokenizer, WordPieceTokenizer, train_wordpiece

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def fortunes() -> list[str]:
    return [e for f in english_fortune_files() for e in read_fortunes(f)]


@pytest.fixture(scope="module")
def corpus(fortunes) -> list[str]:
    """Training text: a few thousand English fortunes and some People's Daily lines."""
    chinese = ["".join(words) for words in itertools.islice(peoples_daily_sentences(), 600)]
    return fortunes[:3000] + chinese


@pytest.fixture(scope="module")
def held_out(fortunes) -> list[str]:
    """Real text the tokenizers were not trained on."""
    chinese = ["".join(w) for w in itertools.islice(peoples_daily_sentences(), 600, 700)]
    return fortunes[3000:3200] + chinese


@pytest.fixture(scope="module")
def trained(corpus) -> WordPieceTokenizer:
    return Tokenizer.train(corpus, vocab_size=4000)


@pytest.fixture(scope="module")
def cased(corpus) -> WordPieceTokenizer:
    return Tokenizer.train(corpus, vocab_size=4000, lowercase=False)


# ------------------------------------------------------------------------------------------------ training


def test_special_tokens_first_and_vocab_within_budget(trained):
    assert [trained.convert_ids_to_tokens(i) for i in range(5)] == list(SPECIALS)
    assert (trained.pad_token_id, trained.unk_token_id, trained.cls_token_id) == (0, 1, 2)
    assert (trained.sep_token_id, trained.mask_token_id) == (3, 4)
    assert trained.special_token_ids == {0, 1, 2, 3, 4}
    assert len(trained) == trained.vocab_size == len(trained.vocab) <= 4000
    assert trained.vocab_size > 3900  # the budget was actually used, not just the alphabet
    assert any(t.startswith("##") and len(t) > 3 for t in trained.vocab)  # real continuation pieces


def test_special_tokens_take_ids_in_the_given_order(corpus):
    order = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[EXTRA]")
    tok = Tokenizer.train(corpus[:1500], vocab_size=2500, special_tokens=order)
    assert [tok.convert_ids_to_tokens(i) for i in range(6)] == list(order)
    assert tok.pad_token_id == 3 and tok.cls_token_id == 1
    assert tok.special_token_ids == set(range(6))
    # An extra special token stays one token in raw text and is dropped by decode.
    ids = tok.encode("hello [EXTRA] world")
    assert 5 in ids
    assert "[EXTRA]" not in tok.decode(ids)


def test_training_is_repeatable(corpus):
    # tokenizers alone breaks frequency ties by hash order (huggingface/tokenizers#1794).
    first = Tokenizer.train(corpus, vocab_size=3000)
    for _ in range(3):
        assert Tokenizer.train(corpus, vocab_size=3000).vocab == first.vocab


def test_training_from_files_equals_training_from_iterator(tmp_path, corpus):
    half = len(corpus) // 2
    paths = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for path, lines in zip(paths, (corpus[:half], corpus[half:]), strict=True):
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    from_paths = Tokenizer.train(paths, vocab_size=3000)
    from_strs = train_wordpiece([str(p) for p in paths], vocab_size=3000)
    from_iter = Tokenizer.train(iter(corpus), vocab_size=3000)
    from_gen = Tokenizer.train((line for line in corpus), vocab_size=3000)
    assert from_paths.vocab == from_strs.vocab == from_iter.vocab == from_gen.vocab


def test_cjk_characters_are_one_token_each(trained, held_out):
    vocab = trained.vocab
    total = unknown = 0
    for line in held_out[-100:]:
        chars = CJK.findall(line)
        tokens = trained.tokenize("".join(chars))
        assert len(tokens) == len(chars)
        for char, token in zip(chars, tokens, strict=True):
            assert token == (char if char in vocab else "[UNK]")
        total += len(chars)
        unknown += tokens.count("[UNK]")
    # limit_alphabet=1000 drops the rarest of ~2,000 characters; the common ones must be learned.
    assert total > 1000 and unknown < total * 0.2


def test_without_cjk_splitting_chinese_becomes_word_pieces(corpus, held_out):
    tok = Tokenizer.train(corpus, vocab_size=4000, tokenize_chinese_chars=False)
    phrase = "".join(CJK.findall(held_out[-1]))[:8]
    tokens = tok.tokenize(phrase)
    assert len(tokens) < len(phrase) or any(t.startswith("##") for t in tokens)
    assert tok.tokenize_chinese_chars is False


def test_lower_cases_when_asked_and_not_otherwise(trained, cased, held_out):
    english = [t for t in held_out if t.isascii()][:100]
    assert trained.do_lower_case and not cased.do_lower_case
    assert not any(any(c.isupper() for c in t) for t in trained.vocab if t not in SPECIALS)
    for text in english:
        assert trained.tokenize(text.upper()) == trained.tokenize(text)
    assert "The" in cased.vocab and "the" in cased.vocab
    assert sum(cased.tokenize(t.upper()) != cased.tokenize(t) for t in english) > 90


def test_strips_accents_when_asked(fortunes):
    accented = [t for t in fortunes if re.search("[éèïüö]", t)]
    assert accented
    plain = [
        "".join(c for c in unicodedata.normalize("NFD", t) if unicodedata.category(c) != "Mn")
        for t in accented
    ]
    corpus = fortunes[:1500] + accented
    stripping = Tokenizer.train(corpus, vocab_size=2500, lowercase=False, strip_accents=True)
    keeping = Tokenizer.train(corpus, vocab_size=2500, lowercase=False)  # BERT: cased keeps accents
    lower_default = Tokenizer.train(corpus, vocab_size=2500)  # BERT: lower-casing strips them too
    lower_keeping = Tokenizer.train(corpus, vocab_size=2500, strip_accents=False)
    for text, stripped in zip(accented, plain, strict=True):
        assert stripping.tokenize(text) == stripping.tokenize(stripped)
        assert lower_default.tokenize(text) == lower_default.tokenize(stripped)
        assert keeping.tokenize(text) != keeping.tokenize(stripped)
        assert lower_keeping.tokenize(text) != lower_keeping.tokenize(stripped)
    assert not any(re.search("[éèïüö]", t) for t in stripping.vocab)
    assert any(re.search("[éèïüö]", t) for t in keeping.vocab)


def test_training_rejects_bad_settings(corpus, tmp_path):
    with pytest.raises(ValueError, match="alphabet"):
        Tokenizer.train(corpus, vocab_size=300)  # the People's Daily characters alone need more
    with pytest.raises(ValueError, match="MASK"):
        Tokenizer.train(corpus[:100], vocab_size=1000, special_tokens=("[PAD]", "[UNK]", "[CLS]", "[SEP]"))
    with pytest.raises(ValueError, match="empty"):
        Tokenizer.train([], vocab_size=1000)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        Tokenizer.train([tmp_path / "nope.txt"], vocab_size=1000)


# ------------------------------------------------------------------------------------------------ encoding


def test_empty_strings(trained):
    enc = trained("", return_tensors=None)
    assert enc["input_ids"] == [[trained.cls_token_id, trained.sep_token_id]]
    pair = trained("", "", return_tensors=None)
    assert pair["input_ids"] == [[trained.cls_token_id, trained.sep_token_id, trained.sep_token_id]]
    assert pair["token_type_ids"] == [[0, 0, 1]]
    assert trained.encode("") == [trained.cls_token_id, trained.sep_token_id]
    with pytest.raises(ValueError, match="empty list"):
        trained([])
    with pytest.raises(ValueError, match="pair up"):
        trained(["a", "b"], ["c"])


def test_pairs_get_segment_ids(trained, held_out):
    firsts, seconds = held_out[:20], held_out[1:21]
    enc = trained(
        firsts,
        seconds,
        max_length=64,
        return_tensors=None,
        return_word_ids=True,
        return_special_tokens_mask=True,
    )
    for i, (a, b) in enumerate(zip(firsts, seconds, strict=True)):
        ids, types, mask = enc["input_ids"][i], enc["token_type_ids"][i], enc["attention_mask"][i]
        real = sum(mask)
        seps = [j for j in range(real) if ids[j] == trained.sep_token_id]
        assert ids[0] == trained.cls_token_id and len(seps) == 2 and seps[1] == real - 1
        assert types[: seps[0] + 1] == [0] * (seps[0] + 1)
        assert types[seps[0] + 1 : real] == [1] * (real - seps[0] - 1)
        # Longest-first: neither side is cut while the other is still longer.
        n1, n2 = seps[0] - 1, real - seps[0] - 2
        full1, full2 = len(trained.tokenize(a)), len(trained.tokenize(b))
        assert n1 + n2 <= 61 and (n1 == full1 or n1 >= min(n2, 30)) and (n2 == full2 or n2 >= min(n1, 30))
        words = enc["word_ids"][i]
        special = enc["special_tokens_mask"][i]
        assert [w is None for w in words] == [bool(s) for s in special]
        assert words[1] == 0 and (n2 == 0 or words[seps[0] + 1] == 0)  # each sequence counts from 0


def test_padding_max_length_and_tensors(trained, held_out):
    texts = held_out[:10]
    enc = trained(texts, padding="max_length", max_length=48)
    assert set(enc) == {"input_ids", "token_type_ids", "attention_mask"}
    for key in enc:
        assert enc[key].dtype == torch.long and enc[key].shape == (10, 48)
    assert enc.input_ids is enc["input_ids"]
    lengths = [len(trained.encode(t, max_length=48)) for t in texts]
    assert enc["attention_mask"].sum(dim=1).tolist() == lengths
    for row, n in zip(enc["input_ids"], lengths, strict=True):
        assert (row[n:] == trained.pad_token_id).all()
    longest = trained(texts, max_length=48)
    assert longest["input_ids"].shape == (10, max(lengths))
    assert trained(texts[0])["input_ids"].shape[0] == 1  # a single string is a batch of one


def test_return_tensors_none_and_no_padding(trained, held_out):
    texts = held_out[:5]
    enc = trained(texts, return_tensors=None, padding=False)
    assert isinstance(enc["input_ids"], list) and all(isinstance(r, list) for r in enc["input_ids"])
    assert [len(r) for r in enc["input_ids"]] == [len(trained.encode(t)) for t in texts]
    assert len({len(r) for r in enc["input_ids"]}) > 1
    with pytest.raises(ValueError, match="padding"):
        trained(texts, padding=False)
    with pytest.raises(ValueError, match="padding"):
        trained(texts, padding="sideways")


def test_max_length_is_clamped_to_model_positions(corpus, fortunes):
    tok = Tokenizer.train(corpus[:1500], vocab_size=2500, model_max_length=64)
    long_text = max(fortunes, key=len)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tok(long_text)["input_ids"].shape == (1, 64)  # the default is the model's own limit
    with pytest.warns(UserWarning, match="model_max_length"):
        enc = tok(long_text, max_length=512)
    assert enc["input_ids"].shape == (1, 64)
    with pytest.warns(UserWarning, match="model_max_length"):
        assert len(tok.encode(long_text, max_length=100)) == 64


def test_too_small_max_length_raises(trained):
    with pytest.raises(ValueError, match="special tokens"):
        trained("hello world", max_length=1)
    with pytest.raises(ValueError, match="special tokens"):
        trained("hello", "world", max_length=2)
    assert trained("hello world", return_tensors=None, max_length=2)["input_ids"] == [[2, 3]]
    assert trained.encode("hello", "world", max_length=3) == [2, 3, 3]


def test_no_truncation_keeps_everything(trained, fortunes):
    long_text = max(fortunes, key=len)
    assert len(trained.encode(long_text, truncation=False)) == len(trained.tokenize(long_text)) + 2 > 512


def test_decode_round_trip_on_lower_cased_english(trained, fortunes, held_out):
    # Letters and spaces only: decode re-spaces punctuation ("writing ..." -> "writing..."), as BERT does.
    simple = [" ".join(t.lower().split()) for t in fortunes if re.fullmatch(r"[A-Za-z ]+", t)]
    assert len(simple) >= 10
    for text in simple:
        assert trained.decode(trained.encode(text)) == text
    for text in held_out[:200]:
        ids = trained.encode(text)
        if trained.unk_token_id in ids:
            continue
        # Decoding may respace punctuation, but it must give back the same pieces.
        assert trained.tokenize(trained.decode(ids)) == trained.tokenize(text)
    assert trained.decode(torch.tensor(trained.encode("hello world"))) == "hello world"
    assert trained.decode(trained.encode("hello"), skip_special_tokens=False) == "[CLS] hello [SEP]"


def test_token_id_conversions(trained):
    tokens = trained.tokenize("Whole-word masking needs word ids.")
    ids = trained.convert_tokens_to_ids(tokens)
    assert trained.convert_ids_to_tokens(ids) == tokens
    assert trained.convert_tokens_to_ids("no-such-token-xyz") == trained.unk_token_id
    assert trained.convert_ids_to_tokens(trained.mask_token_id) == "[MASK]"
    with pytest.raises(ValueError, match="outside"):
        trained.convert_ids_to_tokens(trained.vocab_size + 10)
    # Special tokens typed into raw text stay single tokens, as in BERT's fill-mask usage.
    assert trained.tokenize("the [MASK] sat") == ["the", "[MASK]", "sat"]


def test_word_ids_group_pieces_of_a_word(trained):
    enc = trained(
        "unbelievably tokenization", return_tensors=None, return_word_ids=True, return_offsets_mapping=True
    )
    words, offsets = enc["word_ids"][0], enc["offset_mapping"][0]
    assert words[0] is None and words[-1] is None
    text = "unbelievably tokenization"
    for w in (0, 1):
        spans = [offsets[i] for i, x in enumerate(words) if x == w]
        assert text[spans[0][0] : spans[-1][1]] == text.split()[w]


def test_concurrent_calls_do_not_mix_settings(trained, held_out):
    texts = held_out[:50]
    expected = {n: trained(texts, max_length=n, return_tensors=None) for n in (16, 64, 512)}
    jobs = [16, 64, 512] * 20
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: (n, trained(texts, max_length=n, return_tensors=None)), jobs))
    for n, got in results:
        assert got == expected[n]


# ------------------------------------------------------------------------------------------- saving/loading


def test_save_and_load_round_trip(tmp_path, trained, cased, held_out):
    pairs = held_out[1:] + held_out[:1]
    for tok, name in ((trained, "uncased"), (cased, "cased")):
        folder = tmp_path / name
        tok.save_pretrained(folder)
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        assert config["tokenizer_class"] == "BertTokenizer"
        assert config["do_lower_case"] is tok.do_lower_case and config["model_max_length"] == 512
        assert (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:5] == list(SPECIALS)
        expected = tok(held_out, pairs, max_length=128, return_tensors=None)
        reloaded = Tokenizer.from_pretrained(folder)
        assert reloaded.vocab == tok.vocab and reloaded.do_lower_case == tok.do_lower_case
        assert reloaded(held_out, pairs, max_length=128, return_tensors=None) == expected
        vocab_only = tmp_path / f"{name}-vocab"
        vocab_only.mkdir()
        for file in ("vocab.txt", "tokenizer_config.json"):
            shutil.copy(folder / file, vocab_only / file)
        assert (
            Tokenizer.from_pretrained(vocab_only)(held_out, pairs, max_length=128, return_tensors=None)
            == expected
        )
        for loaded in (
            BertTokenizerFast.from_pretrained(str(folder)),
            AutoTokenizer.from_pretrained(str(folder)),
        ):
            got = loaded(held_out, pairs, padding=True, truncation=True, max_length=128)
            for key in ("input_ids", "token_type_ids", "attention_mask"):
                assert got[key] == expected[key], (name, type(loaded).__name__, key)


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Tokenizer.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="tokenizer.json") as info:
        Tokenizer.from_pretrained(tmp_path)
    assert "vocab.txt" in str(info.value) and str(tmp_path) in str(info.value)


def test_vocab_without_a_special_token_is_rejected(tmp_path):
    lines = Path(minilm_dir() / "vocab.txt").read_text(encoding="utf-8").split("\n")
    (tmp_path / "vocab.txt").write_text("\n".join(t for t in lines if t != "[MASK]"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.txt.*\[MASK\]"):
        Tokenizer.from_pretrained(tmp_path)
