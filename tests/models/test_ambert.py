"""AMBERT: one encoder for both granularities, coarse sequences aligned with fine ones, the fine-tuning loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bertology import load
from bertology.data.coarse import CLS, MASK, PAD, SEP, UNK, AmbertCollator, CoarseVocabulary, words
from bertology.data.collate import PretrainingCollator
from bertology.data.maskers import MaskingConfig, WholeWordMasker
from bertology.errors import ConfigError
from bertology.models.ambert import AmbertConfig, AmbertModel, agreement_loss
from bertology.models.outputs import EncoderOutput
from bertology.tokenization import AmbertTokenizer, Tokenizer, save_for_model


@pytest.fixture
def cfg(make_tiny_config) -> AmbertConfig:
    """The shared tiny sizes (a fine vocabulary of 50) with a coarse vocabulary of 30."""
    return make_tiny_config(AmbertConfig, coarse_vocab_size=30)


def test_both_granularities_share_every_encoder_parameter(cfg):
    model = AmbertModel(cfg)
    fine = dict(model.fine.encoder.named_parameters())
    coarse = dict(model.coarse.encoder.named_parameters())
    assert fine.keys() == coarse.keys() and all(fine[k] is coarse[k] for k in fine)
    assert model.coarse.pooler is model.fine.pooler
    assert model.fine.embeddings.word.weight.shape[0] == 50 and model.coarse.embeddings.word.weight.shape[0] == 30
    encoder = sum(p.numel() for p in model.fine.encoder.parameters())
    embeddings = sum(p.numel() for p in model.fine.embeddings.parameters()) + \
        sum(p.numel() for p in model.coarse.embeddings.parameters())
    pooler = sum(p.numel() for p in model.fine.pooler.parameters())
    assert model.num_parameters() == encoder + embeddings + pooler  # the encoder counted once


def test_save_and_load_keep_the_sharing(tmp_path, cfg):
    torch.manual_seed(0)
    model = AmbertModel(cfg).eval()
    model.save_pretrained(tmp_path)
    again = load(tmp_path)
    assert type(again) is AmbertModel and again.coarse.encoder is again.fine.encoder
    ids = torch.randint(5, 50, (2, 9))
    coarse = torch.randint(5, 30, (2, 5))
    with torch.no_grad():
        a = model(ids, coarse_ids=coarse)
        b = again(ids, coarse_ids=coarse)
    assert isinstance(a, EncoderOutput) and isinstance(a.coarse, EncoderOutput)  # one output type for all
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state)
    torch.testing.assert_close(a.coarse.last_hidden_state, b.coarse.last_hidden_state)
    assert a.last_hidden_state.shape == (2, 9, cfg.hidden_size) and a.coarse.last_hidden_state.shape[1] == 5
    with torch.no_grad():
        fine_only = model(ids)
    assert fine_only.coarse is None
    torch.testing.assert_close(fine_only.last_hidden_state, a.last_hidden_state)
    with pytest.raises(ConfigError, match="coarse_vocab_size"):
        AmbertConfig(coarse_vocab_size=0)


def test_coarse_sequences_align_with_whole_words():
    ids = np.array([2, 10, 11, 12, 13, 14, 3])
    starts = np.array([1, 1, 0, 1, 0, 0, 1], bool)
    assert words(ids, starts) == [(2,), (10, 11), (12, 13, 14), (3,)]
    vocab = CoarseVocabulary([(10, 11), (12, 13, 14)])
    masker = WholeWordMasker(MaskingConfig(strategy="whole_word", rate=0.4), mask_token_id=4, unk_token_id=1,
                             vocab_size=50, special_ids={0, 1, 2, 3, 4})
    collate = AmbertCollator(PretrainingCollator(masker, pad_token_id=0, seed=3), vocab, mask_token_id=4)
    example = {"index": 0, "input_ids": ids, "token_type_ids": np.zeros(7, np.int64),
               "maskable": np.array([0, 1, 1, 1, 1, 1, 0], bool), "word_starts": starts}
    seen_masked = 0
    for epoch in range(20):
        batch = collate([example], epoch=epoch)
        coarse, labels = batch["coarse_ids"][0], batch["coarse_labels"][0]
        assert coarse[0] == CLS and coarse[3] == SEP and batch["coarse_attention_mask"][0].sum() == 4
        fine_hidden = batch["labels"][0, :7] != -100
        for w, (a, b) in enumerate([(1, 3), (3, 6)], start=1):
            masked = bool(fine_hidden[a:b].any())
            assert masked == bool(fine_hidden[a:b].all())  # whole words
            assert (labels[w] != -100) == masked and (not masked or labels[w] == vocab.lookup(tuple(ids[a:b])))
            if masked and batch["input_ids"][0, a] == 4:
                assert coarse[w] == MASK
                seen_masked += 1
            if not masked:
                assert coarse[w] == vocab.lookup(tuple(ids[a:b]))
    assert seen_masked > 0
    assert CoarseVocabulary([(9,)]).lookup((8,)) == UNK


def test_agreement_loss_by_hand():
    g = torch.Generator().manual_seed(0)
    f, c, m = (torch.randn(4, 3, generator=g) for _ in range(3))
    y = torch.tensor([0, 2, 1, 1])
    expected = sum(-F.log_softmax(x, -1)[torch.arange(4), y].mean() for x in (f, c, m))
    expected = expected + 0.5 * ((f.softmax(-1) - c.softmax(-1)) ** 2).sum(-1).mean()
    assert agreement_loss(f, c, m, y, weight=0.5).item() == pytest.approx(expected.item(), abs=1e-6)


def test_a_model_folder_with_its_tokenizer_runs_on_the_tokenizers_batch(tmp_path, make_tiny_config, tiny_tokenizer):
    vocab = CoarseVocabulary([tuple(tiny_tokenizer.encode(w)[1:-1]) for w in ("中国", "人民", "经济")])
    cfg = make_tiny_config(AmbertConfig, vocab_size=tiny_tokenizer.vocab_size, coarse_vocab_size=len(vocab))
    torch.manual_seed(0)
    AmbertModel(cfg).save_pretrained(tmp_path / "model")
    vocab.save(tmp_path / "coarse_vocab.json")
    save_for_model(tiny_tokenizer, tmp_path / "model", extras=tmp_path)  # what a pretraining run's export does
    model, tokenizer = load(tmp_path / "model").eval(), Tokenizer.from_pretrained(tmp_path / "model")
    assert type(model) is AmbertModel and type(tokenizer) is AmbertTokenizer
    batch = tokenizer(["中国人民", "经济发展很快"], ["人民", "中国"])
    assert set(AmbertModel.token_inputs) <= set(batch)
    with torch.no_grad():
        out = model(**batch)
    assert out.coarse.last_hidden_state.shape == (*batch["coarse_ids"].shape, cfg.hidden_size)
    assert batch["coarse_ids"][0].tolist() == [CLS, 5, 6, SEP, 6, SEP, PAD]  # jieba: 中国|人民, padded
