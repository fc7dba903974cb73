"""ChineseBERT wiring: fusion embedding inside the shared encoder, pinyin through unpadding, save and load."""

from __future__ import annotations

import pytest
import torch

from bertology import ChineseBertTokenizer, load
from bertology.models.chinesebert import ChineseBertConfig, ChineseBertForMaskedLM, ChineseBertModel


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer) -> ChineseBertTokenizer:
    return ChineseBertTokenizer.from_wordpiece(tiny_tokenizer)


def _model(tokenizer, tmp_path, make_tiny_config):
    cfg = make_tiny_config(ChineseBertConfig, vocab_size=tokenizer.vocab_size, max_position_embeddings=64,
                           glyph_size=16, pinyin_embedding_dim=16)
    torch.manual_seed(0)
    return ChineseBertModel.for_tokenizer(cfg, tokenizer, cache_dir=tmp_path / "glyphs")


def _batch(tokenizer, texts):
    enc = tokenizer(texts, return_tensors="pt", max_length=64)
    return enc, enc["pinyin_ids"]


def test_pinyin_changes_the_output_and_unpadding_changes_nothing(tokenizer, tmp_path, make_tiny_config):
    model = _model(tokenizer, tmp_path, make_tiny_config).eval()
    texts = ["重庆银行行长发表讲话。", "长大以后。"]
    enc, pinyin = _batch(tokenizer, texts)
    assert pinyin.shape == (*enc["input_ids"].shape, 8) and pinyin[0, 1].any()
    with torch.no_grad():
        padded = model(enc["input_ids"], enc["attention_mask"], pinyin_ids=pinyin, unpad=False).last_hidden_state
        packed = model(enc["input_ids"], enc["attention_mask"], pinyin_ids=pinyin, unpad=True).last_hidden_state
        blank = model(enc["input_ids"], enc["attention_mask"], pinyin_ids=torch.zeros_like(pinyin)).last_hidden_state
    real = enc["attention_mask"].bool()
    torch.testing.assert_close(packed[real], padded[real], atol=1e-5, rtol=0)
    assert (blank[real] - padded[real]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="pinyin_ids"):
        model(enc["input_ids"], enc["attention_mask"])


def test_glyph_table_is_saved_with_the_weights(tokenizer, tmp_path, make_tiny_config):
    model = _model(tokenizer, tmp_path, make_tiny_config).eval()
    assert not model.embeddings.glyph.glyphs.requires_grad and model.embeddings.glyph.glyphs.any()
    assert model.config.glyph_fonts and len(model.config.glyph_fonts) == model.embeddings.glyph.n_fonts
    model.save_pretrained(tmp_path / "saved")
    again = load(tmp_path / "saved")
    assert type(again) is ChineseBertModel
    assert torch.equal(again.embeddings.glyph.glyphs, model.embeddings.glyph.glyphs)
    enc, pinyin = _batch(tokenizer, ["人民日报社论。"])
    with torch.no_grad():
        torch.testing.assert_close(again(enc["input_ids"], enc["attention_mask"], pinyin_ids=pinyin).last_hidden_state,
                                   model(enc["input_ids"], enc["attention_mask"], pinyin_ids=pinyin).last_hidden_state)


def test_masked_lm_head_is_tied_to_the_character_table(tokenizer, tmp_path, make_tiny_config):
    encoder = _model(tokenizer, tmp_path, make_tiny_config)
    mlm = ChineseBertForMaskedLM(encoder.config)
    assert mlm.mlm_head.decoder.weight is mlm.bert.embeddings.word.weight
