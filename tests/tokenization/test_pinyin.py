"""Pinyin ids for ChineseBERT: heteronyms read in context, tones, ü, padding, and tokenizer offsets."""

from __future__ import annotations

import numpy as np
import pytest

from bertology.tokenization.pinyin import PINYIN_VOCAB, PinyinEncoder, sentence_pinyin


@pytest.fixture(scope="module")
def encoder() -> PinyinEncoder:
    return PinyinEncoder()


def _per_char(encoder: PinyinEncoder, text: str) -> list[str]:
    """Encode with one token per character and decode each row."""
    ids = encoder.encode(text, [(i, i + 1) for i in range(len(text))])
    return [encoder.decode_ids(row) for row in ids]


@pytest.mark.parametrize(("text", "expected"), [
    ("重庆银行行长", ["chong2", "qing4", "yin2", "hang2", "hang2", "zhang3"]),
    ("长大", ["zhang3", "da4"]),
    ("长度", ["chang2", "du4"]),
    ("音乐", ["yin1", "yue4"]),
    ("快乐", ["kuai4", "le4"]),
    ("我的", ["wo3", "de5"]),  # neutral tone is 5
    ("女", ["nv3"]),  # ü is written v
    ("绿色", ["lv4", "se4"]),
])
def test_readings_in_context(encoder, text, expected):
    assert _per_char(encoder, text) == expected


def test_ids_layout_padding_and_non_chinese(encoder):
    assert encoder.vocab == PINYIN_VOCAB and encoder.vocab_size == 32
    assert encoder.vocab["[PAD]"] == 0 and encoder.vocab["1"] == 1 and encoder.vocab["a"] == 6
    assert encoder.vocab["z"] == 31 and encoder.vocab["v"] == 6 + ord("v") - ord("a")
    text = "行a，1 中"
    ids = encoder.encode(text, [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 0)])
    assert ids.shape == (8, 8) and ids.dtype == np.int64
    v = encoder.vocab
    np.testing.assert_array_equal(ids[1], [v["x"], v["i"], v["n"], v["g"], v["2"], 0, 0, 0])
    np.testing.assert_array_equal(ids[6], [v["z"], v["h"], v["o"], v["n"], v["g"], v["1"], 0, 0])
    assert not ids[[0, 2, 3, 4, 5, 7]].any(), "special tokens, Latin, punctuation, digits, space: zeros"
    assert encoder.decode_ids(ids[6]) == "zhong1" and encoder.decode_ids(ids[0]) == ""


def test_multi_character_token_takes_its_first_chinese_character(encoder):
    text = "ok中文"
    ids = encoder.encode(text, np.array([[0, 4], [0, 2], [3, 4]]))
    assert [encoder.decode_ids(r) for r in ids] == ["zhong1", "", "wen2"]
    with pytest.raises(ValueError, match="outside the text"):
        encoder.encode(text, [(2, 9)])


def test_sentence_pinyin_is_aligned_to_characters():
    text = "我 的\n书 ok 嗎！"
    readings = sentence_pinyin(text)
    assert len(readings) == len(text)
    assert readings == ["wo3", None, "de5", None, "shu1", None, None, None, None, "ma5", None]


def test_offsets_from_a_real_tokenizer(encoder, tiny_tokenizer):
    tokenizer = tiny_tokenizer
    text = "重庆银行行长说：１９９８年经济增长了，朝阳区的音乐会很快乐。"
    # The readings by hand, character by character (None: not a Chinese character).
    by_hand = ["chong2", "qing4", "yin2", "hang2", "hang2", "zhang3", "shuo1", None, None, None, None,
               None, "nian2", "jing1", "ji4", "zeng1", "zhang3", "le5", None, "chao2", "yang2", "qu1",
               "de5", "yin1", "yue4", "hui4", "hen3", "kuai4", "le4", None]
    assert len(by_hand) == len(text)
    batch = tokenizer([text, "行长"], return_offsets_mapping=True, return_tensors=None)
    ids, offsets = batch["input_ids"][0], batch["offset_mapping"][0]
    pinyin = encoder.encode(text, offsets)
    assert pinyin.shape == (len(ids), 8)
    vocab = {i: t for t, i in tokenizer.vocab.items()}
    chinese = 0
    for token_id, (start, end), row in zip(ids, offsets, pinyin, strict=True):
        got = encoder.decode_ids(row)
        if end - start == 1 and by_hand[start] is not None:
            chinese += 1
            assert vocab[token_id] in (text[start], "[UNK]"), "the offsets point at the token's character"
            assert got == by_hand[start], f"{text[start]} at {start}: {got} != {by_hand[start]}"
        else:
            assert got == "", f"token {vocab[token_id]!r} ({start}, {end}) is not Chinese but got {got!r}"
    assert chinese == sum(r is not None for r in by_hand)

    padded = encoder.encode_batch([text, "行长"], batch["offset_mapping"])
    assert padded.shape == (2, len(ids), 8)
    np.testing.assert_array_equal(padded[0], pinyin)
    assert [encoder.decode_ids(r) for r in padded[1, :4]] == ["", "hang2", "zhang3", ""]
    assert not padded[1, 4:].any(), "padding positions are zeros"
