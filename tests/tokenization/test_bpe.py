"""Our RoBERTa byte-level BPE tokenizer: trained on real text, it must give transformers' ids and offsets."""

from __future__ import annotations

import itertools
import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, RobertaTokenizerFast

from bertology.assets import (
    chinese_fortune_files,
    english_fortune_files,
    minilm_dir,
    peoples_daily_sentences,
    read_fortunes,
)
from bertology.tokenization import ByteLevelBPETokenizer, Tokenizer, WordPieceTokenizer, load_tokenizer

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
VOCAB = 2000
BATCH = 100


@pytest.fixture(scope="module")
def fortunes() -> list[str]:
    return [e for f in english_fortune_files() for e in read_fortunes(f)]


@pytest.fixture(scope="module")
def chinese_fortunes() -> list[list[str]]:
    # transformers' own pair truncation is quadratic in length, so leave out the few long essays.
    return [[e for e in read_fortunes(f) if len(e) <= 1500] for f in chinese_fortune_files()]


@pytest.fixture(scope="module")
def corpus(fortunes, chinese_fortunes) -> list[str]:
    """Training text: 3,000 English fortunes, 400 People's Daily lines (words joined), Chinese fortunes."""
    daily = ["".join(words) for words in itertools.islice(peoples_daily_sentences(), 400)]
    poems = [e for entries in chinese_fortunes for e in entries[:60]]
    return fortunes[:3000] + daily + poems


@pytest.fixture(scope="module")
def english(fortunes) -> list[str]:
    """Held-out English: fortunes the tokenizer was not trained on."""
    texts = fortunes[4000:5100]
    assert len(texts) >= 1000
    return texts


@pytest.fixture(scope="module")
def chinese(chinese_fortunes) -> list[str]:
    """Held-out Chinese: later People's Daily lines and Chinese fortunes."""
    texts = ["".join(words) for words in itertools.islice(peoples_daily_sentences(), 1000, 1450)]
    texts += [e for entries in chinese_fortunes for e in entries[60:90]]
    assert len(texts) >= 500
    return texts


@pytest.fixture(scope="module")
def trained(corpus) -> ByteLevelBPETokenizer:
    return ByteLevelBPETokenizer.train(corpus, vocab_size=VOCAB)


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory) -> Path:
    return trained.save_pretrained(tmp_path_factory.mktemp("bbpe") / "tokenizer")


@pytest.fixture(scope="module")
def vocab_merges_only(saved, tmp_path_factory) -> Path:
    """The folder without tokenizer.json: what transformers rebuilds RoBERTa from."""
    folder = tmp_path_factory.mktemp("bbpe-vocab")
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(saved / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def oracles(saved, vocab_merges_only) -> dict[str, RobertaTokenizerFast]:
    return {
        "folder": RobertaTokenizerFast.from_pretrained(str(saved)),
        "vocab_merges": RobertaTokenizerFast.from_pretrained(str(vocab_merges_only)),
    }


def _batches(texts: list[str], pairs: bool):
    for start in range(0, len(texts) - 1, BATCH):
        chunk = texts[start : start + BATCH + 1]
        yield (chunk[:-1], chunk[1:]) if pairs else (chunk[:-1], None)


# ------------------------------------------------------------------------------------------------ training


def test_special_ids_vocab_and_mask_token(trained):
    assert [trained.convert_ids_to_tokens(i) for i in range(5)] == list(SPECIALS)
    assert (trained.cls_token_id, trained.pad_token_id, trained.sep_token_id) == (0, 1, 2)
    assert (trained.unk_token_id, trained.mask_token_id) == (3, 4)
    assert (trained.bos_token_id, trained.eos_token_id) == (0, 2)
    assert trained.special_token_ids == {0, 1, 2, 3, 4}
    assert len(trained) == trained.vocab_size == len(trained.vocab) == VOCAB
    assert not trained.add_prefix_space and trained.trim_offsets and trained.model_max_length == 512
    # Every byte symbol is in the vocabulary, right after the special tokens.
    from tokenizers.pre_tokenizers import ByteLevel

    assert set(ByteLevel.alphabet()) <= set(trained.vocab)
    assert any(t.startswith("Ġ") and len(t) > 4 for t in trained.vocab)  # real word-initial merges
    mask = trained.backend.get_added_tokens_decoder()[4]
    assert mask.content == "<mask>" and mask.lstrip and not mask.rstrip and mask.special


def test_training_is_deterministic(corpus, trained, tmp_path):
    again = ByteLevelBPETokenizer.train(corpus, vocab_size=VOCAB)
    assert again.vocab == trained.vocab and again.merges == trained.merges
    # Order-independent too (ties never fall to hash or input order), and files train like texts.
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(reversed(corpus)) + "\n", encoding="utf-8")
    from_file = ByteLevelBPETokenizer.train(path, vocab_size=VOCAB)
    assert from_file.vocab == trained.vocab and from_file.merges == trained.merges


def test_training_rejects_bad_settings(corpus, tmp_path):
    with pytest.raises(ValueError, match="byte alphabet"):
        ByteLevelBPETokenizer.train(corpus[:100], vocab_size=261)
    with pytest.raises(ValueError, match="<mask>"):
        ByteLevelBPETokenizer.train(corpus[:100], vocab_size=500, special_tokens=SPECIALS[:4])
    with pytest.raises(ValueError, match="duplicates"):
        ByteLevelBPETokenizer.train(corpus[:100], vocab_size=500, special_tokens=SPECIALS + ("<s>",))
    with pytest.raises(ValueError, match="empty"):
        ByteLevelBPETokenizer.train(["", ""], vocab_size=500)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        ByteLevelBPETokenizer.train([tmp_path / "nope.txt"], vocab_size=500)
    with pytest.raises(TypeError, match="str"):
        ByteLevelBPETokenizer.train(["fine", 3], vocab_size=500)


def test_extra_special_tokens_stay_atomic_and_survive_saving(corpus, tmp_path):
    tok = ByteLevelBPETokenizer.train(corpus[:800], vocab_size=600, special_tokens=SPECIALS + ("<sep2>",))
    assert tok.convert_tokens_to_ids("<sep2>") == 5 and tok.special_token_ids == set(range(6))
    text = "one<sep2>two"
    ids = tok.encode(text)
    assert 5 in ids and tok.decode(ids) == "onetwo"
    tok.save_pretrained(tmp_path)
    assert ByteLevelBPETokenizer.from_pretrained(tmp_path).encode(text) == ids
    assert RobertaTokenizerFast.from_pretrained(str(tmp_path))(text)["input_ids"] == ids


# ------------------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("oracle", ["folder", "vocab_merges"])
@pytest.mark.parametrize("language", ["english", "chinese"])
@pytest.mark.parametrize("pairs", [False, True], ids=["single", "pair"])
@pytest.mark.parametrize("max_length", [32, 128])
def test_ids_and_offsets_match_transformers(request, trained, oracles, oracle, language, pairs, max_length):
    texts = request.getfixturevalue(language)
    theirs = oracles[oracle]
    cut = 0
    for first, second in _batches(texts, pairs):
        a = trained(
            first,
            second,
            max_length=max_length,
            return_tensors=None,
            return_offsets_mapping=True,
            return_word_ids=True,
        )
        b = theirs(
            first,
            second,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_offsets_mapping=True,
            return_token_type_ids=True,
        )
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            assert a[key] == b[key], key
        assert a["offset_mapping"] == [[tuple(o) for o in row] for row in b["offset_mapping"]]
        assert a["word_ids"] == [b.word_ids(i) for i in range(len(first))]
        assert all(t == 0 for row in a["token_type_ids"] for t in row)  # RoBERTa has one segment
        cut += sum(len(ids) == max_length and ids[-1] != trained.pad_token_id for ids in a["input_ids"])
    assert cut > 10  # truncation really happened, so the comparison covers it


def test_padding_max_length_tensors_and_special_mask_match(trained, oracles, english, chinese):
    texts = english[:40] + chinese[:40]
    a = trained(texts, padding="max_length", max_length=96, return_special_tokens_mask=True)
    b = oracles["folder"](
        texts,
        padding="max_length",
        truncation=True,
        max_length=96,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    assert set(a) == {"input_ids", "token_type_ids", "attention_mask", "special_tokens_mask"}
    assert "token_type_ids" not in b  # transformers leaves them out for RoBERTa unless asked
    for key in ("input_ids", "attention_mask", "special_tokens_mask"):
        assert a[key].dtype == torch.long and a[key].shape == (80, 96)
        assert torch.equal(a[key], b[key]), key
    assert not a["token_type_ids"].any()
    assert (a["input_ids"][a["attention_mask"] == 0] == 1).all()  # padded with <pad>


def test_tiny_budgets_match_transformers(trained, oracles, english):
    theirs = oracles["folder"]
    firsts, seconds = english[:60], english[60:120]
    for max_length in (4, 5, 6, 9, 17):  # a RoBERTa pair needs four special tokens
        a = trained(firsts, seconds, max_length=max_length, return_tensors=None)
        b = theirs(firsts, seconds, padding=True, truncation=True, max_length=max_length)
        assert a["input_ids"] == b["input_ids"], max_length
    assert trained.encode("hello", "world", max_length=4) == [0, 2, 2, 2]
    with pytest.raises(ValueError, match="4 special tokens"):
        trained("hello", "world", max_length=3)
    with pytest.raises(ValueError, match="special tokens"):
        trained("hello", max_length=1)


def test_tokenize_decode_and_mask_match_transformers(trained, oracles, english, chinese):
    theirs = oracles["vocab_merges"]
    for text in english[::20] + chinese[::20]:
        assert trained.tokenize(text) == theirs.tokenize(text)
        ids = trained.encode(text)
        assert trained.decode(ids) == theirs.decode(ids, skip_special_tokens=True)
        assert trained.decode(ids, skip_special_tokens=False) == theirs.decode(ids, skip_special_tokens=False)
    # <mask> swallows the space before it, as in RoBERTa's fill-mask usage.
    text = "The cat <mask> on the mat."
    ids = trained.encode(text)
    assert ids == theirs(text)["input_ids"]
    at = ids.index(trained.mask_token_id)
    assert trained.decode(ids[1:at]) == "The cat"  # no lone "Ġ" token left before <mask>
    assert trained.decode(ids[at + 1 : -1]) == " on the mat."


def test_byte_level_never_unknown_and_round_trips(trained, oracles):
    rng = random.Random(0)
    pools = [(0x20, 0x7E), (0xA0, 0x24F), (0x4E00, 0x9FFF), (0x20000, 0x2A6DF), (0x1F300, 0x1FAFF)]
    randoms = []
    for _ in range(200):
        chars = []
        for _ in range(rng.randint(1, 30)):
            lo, hi = rng.choice(pools)
            chars.append(chr(rng.randint(lo, hi)))
        randoms.append("".join(chars))
    fixed = [
        "emoji 🤖🎉👩‍👩‍👧‍👦 flags 🇨🇳🇬🇧 skin 👍🏽",
        "rare CJK 𠀀𪚥龘齉 and Ext-B 𡃁𠮷",
        "  leading, trailing and   inner spaces  ",
        "tabs\tnew\nlines\r\n and NUL\x00 bell\x07",
        "combining e\u0301 a\u0308, zero-width\u200bjoiner\u200d, RTL שלום مرحبا",
        "private use \ue000\U000f0000, BOM \ufeff, replacement \ufffd",
        "",
    ]
    theirs = oracles["folder"]
    for text in fixed + randoms:
        ids = trained.encode(text, truncation=False)
        assert trained.unk_token_id not in ids, text
        assert trained.decode(ids) == text
        assert ids == theirs(text)["input_ids"]


# ------------------------------------------------------------------------------------------- saving/loading


def test_saved_folder_layout_and_config(saved, trained):
    names = sorted(p.name for p in saved.iterdir())
    assert names == [
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    config = json.loads((saved / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "RobertaTokenizer"
    assert config["add_prefix_space"] is False and config["trim_offsets"] is True
    assert config["model_max_length"] == 512
    assert (config["cls_token"], config["sep_token"], config["mask_token"]) == ("<s>", "</s>", "<mask>")
    assert config["added_tokens_decoder"]["4"]["lstrip"] is True
    special_map = json.loads((saved / "special_tokens_map.json").read_text(encoding="utf-8"))
    assert special_map["pad_token"] == "<pad>" and special_map["mask_token"]["lstrip"] is True
    vocab = json.loads((saved / "vocab.json").read_text(encoding="utf-8"))
    assert vocab == trained.vocab
    merges = (saved / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert merges[0] == "#version: 0.2" and merges[-1] == ""
    assert [tuple(m.split(" ")) for m in merges[1:-1]] == trained.merges


def test_reload_in_every_form_gives_same_ids(saved, vocab_merges_only, trained, english, chinese):
    texts = english[:150] + chinese[:150]
    pairs = texts[1:] + texts[:1]
    expected = trained(texts, pairs, max_length=128, return_tensors=None, return_offsets_mapping=True)
    loaded = [
        ByteLevelBPETokenizer.from_pretrained(saved),
        ByteLevelBPETokenizer.from_pretrained(saved / "tokenizer.json"),
        ByteLevelBPETokenizer.from_pretrained(vocab_merges_only),
        ByteLevelBPETokenizer.from_pretrained(vocab_merges_only / "merges.txt"),
    ]
    for tok in loaded:
        assert tok.vocab == trained.vocab and tok.merges == trained.merges
        assert tok.backend.get_added_tokens_decoder()[tok.mask_token_id].lstrip
        assert tok(texts, pairs, max_length=128, return_tensors=None, return_offsets_mapping=True) == expected
    auto = AutoTokenizer.from_pretrained(str(saved))
    assert type(auto).__name__ == "RobertaTokenizer"
    got = auto(texts, pairs, padding=True, truncation=True, max_length=128)
    assert got["input_ids"] == expected["input_ids"]
    assert got["attention_mask"] == expected["attention_mask"]


def test_from_pretrained_errors_name_the_file(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ByteLevelBPETokenizer.from_pretrained(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="tokenizer.json") as info:
        ByteLevelBPETokenizer.from_pretrained(empty)
    assert "vocab.json" in str(info.value) and "merges.txt" in str(info.value)

    vocab_only = tmp_path / "vocab-only"
    vocab_only.mkdir()
    shutil.copy(saved / "vocab.json", vocab_only / "vocab.json")
    with pytest.raises(FileNotFoundError, match=r"merges\.txt"):
        ByteLevelBPETokenizer.from_pretrained(vocab_only)
    merges_only = tmp_path / "merges-only"
    merges_only.mkdir()
    shutil.copy(saved / "merges.txt", merges_only / "merges.txt")
    with pytest.raises(FileNotFoundError, match=r"vocab\.json"):
        ByteLevelBPETokenizer.from_pretrained(merges_only)

    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(saved / "merges.txt", broken / "merges.txt")
    (broken / "vocab.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.json"):
        ByteLevelBPETokenizer.from_pretrained(broken)
    vocab = json.loads((saved / "vocab.json").read_text(encoding="utf-8"))
    (broken / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with open(broken / "merges.txt", "a", encoding="utf-8") as handle:
        handle.write("one two three\n")
    with pytest.raises(ValueError, match=r"merges\.txt, line \d+"):
        ByteLevelBPETokenizer.from_pretrained(broken)
    (broken / "merges.txt").write_text("#version: 0.2\nnot-a-token Ġt\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"merges\.txt: cannot build a BPE"):
        ByteLevelBPETokenizer.from_pretrained(broken)
    del vocab["<mask>"]
    shutil.copy(saved / "merges.txt", broken / "merges.txt")
    (broken / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.json.*<mask>"):
        ByteLevelBPETokenizer.from_pretrained(broken)

    (broken / "tokenizer.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        ByteLevelBPETokenizer.from_pretrained(broken)
    with pytest.raises(ValueError, match=r"tokenizer\.json.*WordPiece"):
        ByteLevelBPETokenizer.from_pretrained(minilm_dir() / "tokenizer.json")


def test_load_tokenizer_picks_the_class(saved, vocab_merges_only, tmp_path):
    assert type(load_tokenizer(saved)) is ByteLevelBPETokenizer
    assert type(Tokenizer.from_pretrained(saved)) is ByteLevelBPETokenizer  # load_tokenizer is its alias
    assert type(Tokenizer.from_pretrained(saved / "merges.txt")) is ByteLevelBPETokenizer
    assert type(load_tokenizer(minilm_dir())) is WordPieceTokenizer
    bare = tmp_path / "bare"  # no tokenizer_config.json: decided by the files
    bare.mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(vocab_merges_only / name, bare / name)
    assert type(load_tokenizer(bare)) is ByteLevelBPETokenizer
    wordpiece = tmp_path / "wordpiece"
    wordpiece.mkdir()
    shutil.copy(minilm_dir() / "vocab.txt", wordpiece / "vocab.txt")
    assert type(load_tokenizer(wordpiece)) is WordPieceTokenizer
    fast = tmp_path / "fast"
    shutil.copytree(vocab_merges_only, fast)
    config = json.loads((fast / "tokenizer_config.json").read_text(encoding="utf-8"))
    (fast / "tokenizer_config.json").write_text(
        json.dumps(dict(config, tokenizer_class="RobertaTokenizerFast")), encoding="utf-8"
    )
    assert type(load_tokenizer(fast)) is ByteLevelBPETokenizer
    (fast / "tokenizer_config.json").write_text(
        json.dumps(dict(config, tokenizer_class="T5Tokenizer")), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="T5Tokenizer"):
        load_tokenizer(fast)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_tokenizer(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        load_tokenizer(tmp_path / "empty")
