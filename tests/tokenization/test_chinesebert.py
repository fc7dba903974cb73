"""ChineseBERT's tokenizer: its pinyin ids are exactly those the corpus preparation records for pretraining,
aligned with the ids through truncation, padding and pairs, and its folder loads back as itself."""

from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from bertology import assets
from bertology.data.prepare import prepare_corpus
from bertology.data.sentences import has_cjk as corpus_has_cjk
from bertology.data.shards import TokenCorpus
from bertology.tokenization import ChineseBertTokenizer, Tokenizer, WordPieceTokenizer
from bertology.tokenization.pinyin import PinyinEncoder, has_cjk

# One sentence a line (one document each): heteronyms that need their word (行, 长, 乐, 朝), Latin, digits,
# full-width digits, the neutral tone, and lines without a CJK ideograph (〇 alone is read by pypinyin but
# is no CJK ideograph to the preparation, which then records no pinyin).
SENTENCES = [
    "重庆银行行长发表讲话。",
    "长大以后他要去朝阳区的音乐学院。",
    "我们很快乐，OK 的话 1998 年见！",
    "他说：１９９８年经济增长了。",
    "行长说：银行很好。他们都长大了！",  # two sentences to the preparation, one text to the tokenizer
    "〇 ok",
    "Plain English, no pinyin at all.",
]


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer) -> ChineseBertTokenizer:
    return ChineseBertTokenizer.from_wordpiece(tiny_tokenizer)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """SENTENCES and 30 People's Daily lines the tokenizer was not trained on."""
    return SENTENCES + ["".join(w) for w in islice(assets.peoples_daily_sentences(), 1000, 1030)]


@pytest.fixture(scope="module")
def corpus(tokenizer, texts, tmp_path_factory) -> TokenCorpus:
    """`texts`, one document a line, prepared for ChineseBERT pretraining (pinyin recorded)."""
    folder = tmp_path_factory.mktemp("pinyin-corpus")
    (folder / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    prepare_corpus([folder / "in.txt"], folder / "corpus", tokenizer, chinese_words=None, record_pinyin=True,
                   workers=1, doc_per_line=True, progress=False)
    return TokenCorpus(folder / "corpus")


def test_pinyin_ids_equal_what_the_corpus_preparation_records(tokenizer, corpus, texts):
    batch = tokenizer(texts, return_tensors=None, padding=False)
    sentences = 0
    at = 0
    for text, ids, pinyin in zip(texts, batch["input_ids"], batch["pinyin_ids"], strict=True):
        # The preparation may split a line into sentences (no special tokens); their tokens, in order,
        # are the line's tokens between [CLS] and [SEP], and so must their pinyin be.
        recorded_ids, recorded_pinyin = [], []
        while sum(len(x) for x in recorded_ids) < len(ids) - 2:
            recorded_ids.append(corpus.sentence(at))
            recorded_pinyin.append(corpus.pinyin(at))
            at += 1
        assert np.concatenate(recorded_ids).tolist() == ids[1:-1], text
        np.testing.assert_array_equal(np.concatenate(recorded_pinyin), np.asarray(pinyin[1:-1]), err_msg=text)
        assert pinyin[0] == pinyin[-1] == [0] * 8, "[CLS] and [SEP] read no pinyin, as in pretraining"
        sentences += len(recorded_ids)
    assert at == corpus.num_sentences and sentences > len(texts)  # some lines held several sentences
    by_text = dict(zip(texts, batch["pinyin_ids"], strict=True))
    assert np.asarray(by_text["重庆银行行长发表讲话。"]).any()
    assert not np.asarray(by_text["〇 ok"]).any() and not np.asarray(by_text[SENTENCES[-1]]).any()


def test_pinyin_follows_ids_through_truncation_padding_and_pairs(tokenizer):
    encoder = PinyinEncoder()
    first, second = "重庆银行行长发表讲话。", "人们行走在路上，ok。"
    full = tokenizer([first], [second], return_tensors=None, return_offsets_mapping=True)
    ids, types = full["input_ids"][0], full["token_type_ids"][0]
    offsets, pinyin = full["offset_mapping"][0], np.asarray(full["pinyin_ids"][0])
    sep = ids.index(tokenizer.sep_token_id)
    # each segment reads its own text, through its own offsets
    np.testing.assert_array_equal(pinyin[1:sep], encoder.encode(first, offsets[1:sep]))
    np.testing.assert_array_equal(pinyin[sep + 1:-1], encoder.encode(second, offsets[sep + 1:-1]))
    assert [encoder.decode_ids(r) for r in pinyin[sep + 3:sep + 5]] == ["xing2", "zou3"]
    assert types[sep + 1] == 1 and not pinyin[[0, sep, -1]].any()

    batch = tokenizer([first, "长大"], [second, "音乐"], max_length=12, padding="max_length")
    assert batch["pinyin_ids"].shape == (2, 12, 8) and batch["pinyin_ids"].dtype == torch.long
    for row in range(2):
        real = batch["attention_mask"][row].bool()
        special = torch.isin(batch["input_ids"][row], torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id]))
        assert not batch["pinyin_ids"][row][~real | special].any(), "padding and special tokens read nothing"
        assert batch["pinyin_ids"][row][real & ~special].any(dim=-1).all(), "every Chinese token reads its pinyin"
    # truncation keeps each kept token's reading (read from the whole text, so in context)
    short = tokenizer([first], [second], max_length=12, return_tensors=None)
    kept = [i for i, t in enumerate(short["input_ids"][0]) if t not in (tokenizer.cls_token_id, tokenizer.sep_token_id)]
    first_kept = [k for k in kept if short["token_type_ids"][0][k] == 0]
    np.testing.assert_array_equal(np.asarray(short["pinyin_ids"][0])[first_kept], pinyin[1:1 + len(first_kept)])
    assert [encoder.decode_ids(r) for r in np.asarray(short["pinyin_ids"][0])[[4, 5]]] == ["hang2", "hang2"]


def test_ids_and_everything_else_are_the_wordpiece_tokenizers(tokenizer, tiny_tokenizer):
    texts = SENTENCES[:4]
    ours = tokenizer(texts, texts[::-1], return_offsets_mapping=True, return_special_tokens_mask=True)
    plain = tiny_tokenizer(texts, texts[::-1], return_offsets_mapping=True, return_special_tokens_mask=True)
    assert set(ours) == set(plain) | {"pinyin_ids"}
    for key, value in plain.items():
        assert torch.equal(ours[key], value), key
    assert tokenizer.encode(texts[0]) == tiny_tokenizer.encode(texts[0])
    assert tokenizer.vocab == tiny_tokenizer.vocab and tokenizer.pinyin_vocab_size == 32
    assert "pinyin_ids" not in tiny_tokenizer(texts)


def test_saved_folder_loads_as_chinesebert_here_and_as_bert_in_transformers(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["bertology_class"] == "ChineseBertTokenizer" and config["tokenizer_class"] == "BertTokenizer"
    for path in (tmp_path, tmp_path / "vocab.txt", tmp_path / "tokenizer.json"):
        again = Tokenizer.from_pretrained(path)
        assert type(again) is ChineseBertTokenizer, path
        assert again(SENTENCES, return_tensors=None) == tokenizer(SENTENCES, return_tensors=None)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    assert hf(SENTENCES, padding=True)["input_ids"] == tokenizer(SENTENCES, return_tensors=None)["input_ids"]
    assert type(ChineseBertTokenizer.from_pretrained(tmp_path)) is ChineseBertTokenizer


def test_a_chinesebert_model_folder_gets_pinyin_even_with_a_plain_wordpiece_tokenizer(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    assert type(Tokenizer.from_pretrained(tmp_path)) is WordPieceTokenizer
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "chinesebert"}), encoding="utf-8")
    assert type(Tokenizer.from_pretrained(tmp_path)) is ChineseBertTokenizer
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    assert type(Tokenizer.from_pretrained(tmp_path)) is WordPieceTokenizer


def test_trained_and_converted_tokenizers_agree(tiny_tokenizer):
    lines = ["".join(w) for w in islice(assets.peoples_daily_sentences(), 400)]
    trained = ChineseBertTokenizer.train(iter(lines), vocab_size=2500, limit_alphabet=2500, min_frequency=1)
    assert type(trained) is ChineseBertTokenizer and trained.vocab == tiny_tokenizer.vocab
    assert repr(trained).startswith(f"ChineseBertTokenizer(vocab_size={tiny_tokenizer.vocab_size},")


def test_cjk_test_is_the_corpus_preparations():
    from bertology.data.sentences import _CJK
    from bertology.tokenization.pinyin import _CJK as ours

    assert ours.pattern == _CJK.pattern
    for text in ("中", "〇", "ok", "한국어", "カタカナ", "\U00020000", "\U0002f80a", ""):
        assert has_cjk(text) == corpus_has_cjk(text), text
