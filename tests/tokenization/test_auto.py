"""`Tokenizer`, the auto class: the right class for every folder or file, and the old WordPiece uses of the
name (train, construction, isinstance, the wordpiece module's import) still working."""

from __future__ import annotations

import json
import shutil

import pytest
import tokenizers

import bertology
from bertology.assets import minilm_dir
from bertology.tokenization import (
    BaseTokenizer,
    ByteLevelBPETokenizer,
    ChineseBertTokenizer,
    Tokenizer,
    WordPieceTokenizer,
    load_tokenizer,
    tokenizer_class_for,
)


def test_minilm_folder_and_files_are_wordpiece():
    for path in (minilm_dir(), minilm_dir() / "vocab.txt", minilm_dir() / "tokenizer.json"):
        assert tokenizer_class_for(path) is WordPieceTokenizer
        tok = Tokenizer.from_pretrained(path)
        assert type(tok) is WordPieceTokenizer, path
        assert tok(["hello world"], return_tensors=None)["input_ids"] == [[101, 7592, 2088, 102]]
    assert bertology.Tokenizer is Tokenizer and type(load_tokenizer(minilm_dir())) is WordPieceTokenizer


def test_train_and_construction_still_give_wordpiece(tiny_tokenizer):
    trained = Tokenizer.train(["a tiny corpus", "another tiny line"], vocab_size=60, min_frequency=1)
    assert type(trained) is WordPieceTokenizer
    backend = tokenizers.Tokenizer.from_str(tiny_tokenizer.backend.to_str())
    built = Tokenizer(backend, model_max_length=64)
    assert type(built) is WordPieceTokenizer and built.vocab == tiny_tokenizer.vocab
    assert built.model_max_length == 64


def test_every_tokenizer_is_a_tokenizer(tiny_tokenizer):
    chinese = ChineseBertTokenizer.from_wordpiece(tiny_tokenizer)
    for tok in (tiny_tokenizer, chinese):
        assert isinstance(tok, Tokenizer) and isinstance(tok, BaseTokenizer)
    assert issubclass(ByteLevelBPETokenizer, Tokenizer) and issubclass(ChineseBertTokenizer, Tokenizer)
    assert not isinstance("text", Tokenizer) and not issubclass(str, Tokenizer)


def test_old_wordpiece_module_name_warns_and_gives_the_class():
    from bertology.tokenization import wordpiece

    with pytest.warns(DeprecationWarning, match="WordPieceTokenizer"):
        assert wordpiece.Tokenizer is WordPieceTokenizer
    with pytest.raises(AttributeError):
        wordpiece.NoSuchName  # noqa: B018


def test_bertology_class_decides_and_must_be_known(tmp_path):
    shutil.copy(minilm_dir() / "vocab.txt", tmp_path / "vocab.txt")
    config = {"tokenizer_class": "BertTokenizer", "bertology_class": "ChineseBertTokenizer"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert type(Tokenizer.from_pretrained(tmp_path)) is ChineseBertTokenizer
    config["bertology_class"] = "SentencePieceTokenizer"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="SentencePieceTokenizer"):
        Tokenizer.from_pretrained(tmp_path)
    # tokenizer_class may name one of our classes too
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "ChineseBertTokenizer"}), encoding="utf-8"
    )
    assert type(Tokenizer.from_pretrained(tmp_path)) is ChineseBertTokenizer


def test_missing_or_empty_folders_say_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Tokenizer.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="vocab.txt") as info:
        Tokenizer.from_pretrained(tmp_path)
    assert "tokenizer.json" in str(info.value) and "merges.txt" in str(info.value)
