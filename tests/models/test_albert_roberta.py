"""ALBERT (factorized embeddings, cross-layer sharing) and RoBERTa against transformers, both directions."""

from __future__ import annotations

import logging

import pytest
import torch
import transformers

from bertology import (
    AlbertConfig,
    AlbertForMaskedLM,
    AlbertForPreTraining,
    AlbertModel,
    BertConfig,
    BertModel,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaModel,
    load,
)
from bertology.errors import ConfigError


def _noise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def _inputs(vocab, seq=19, pad=0, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (3, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0
    mask[2, 5:] = 0
    ids = ids.masked_fill(mask == 0, pad)
    return ids, mask


ALBERT_CASES = [
    dict(sharing="all", num_hidden_groups=1, hidden_act="gelu_new"),
    dict(sharing="all", num_hidden_groups=2, hidden_act="gelu"),
    dict(sharing="none", hidden_act="relu"),
    dict(sharing="attention", hidden_act="gelu_new"),
    dict(sharing="ffn", hidden_act="gelu_new"),
]


@pytest.mark.parametrize("case", ALBERT_CASES, ids=lambda c: f"{c['sharing']}-{c.get('num_hidden_groups', 'L')}")
def test_albert_ours_to_transformers(tmp_path, case):
    torch.manual_seed(0)
    cfg = AlbertConfig(vocab_size=97, hidden_size=48, embedding_size=24, num_hidden_layers=4, num_attention_heads=4,
                       intermediate_size=70, max_position_embeddings=40, **case)
    ours = _noise(AlbertForPreTraining(cfg)).eval()
    ours.save_pretrained(tmp_path)
    ref = transformers.AlbertForPreTraining.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ids, mask = _inputs(97)
    types = torch.zeros_like(ids)
    types[:, 9:] = 1
    with torch.no_grad():
        a = ours(ids, mask, types, output_hidden_states=True, output_attentions=True)
        b = ref(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True, output_attentions=True)
    torch.testing.assert_close(a.prediction_logits, b.prediction_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.seq_relationship_logits, b.sop_logits, atol=1e-5, rtol=0)
    assert len(a.hidden_states) == len(b.hidden_states) == 5
    for x, y in zip(a.hidden_states, b.hidden_states, strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    for x, y in zip(a.attentions, b.attentions, strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    again = load(tmp_path)
    assert type(again) is AlbertForPreTraining and again.config.sharing == cfg.sharing
    with torch.no_grad():
        real = mask.bool()  # the default call packs real tokens (attention maps were asked for above)
        torch.testing.assert_close(again(ids, mask, types).prediction_logits[real], a.prediction_logits[real],
                                   atol=1e-5, rtol=0)


def test_albert_transformers_to_ours(tmp_path, caplog):
    torch.manual_seed(0)
    hf_cfg = transformers.AlbertConfig(vocab_size=80, hidden_size=64, embedding_size=16, num_hidden_layers=6,
                                       num_attention_heads=4, intermediate_size=96, max_position_embeddings=32,
                                       num_hidden_groups=3)
    ref = _noise(transformers.AlbertForMaskedLM(hf_cfg)).eval()
    ref.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bertology"):
        ours = AlbertForMaskedLM.from_pretrained(tmp_path, strict=True)
        encoder = AlbertModel.from_pretrained(tmp_path)  # the bare encoder from a head model's folder
    assert len(ours.bert.encoder.layers) == 3 and ours.bert.encoder.order == [0, 0, 1, 1, 2, 2]
    ids, mask = _inputs(80, seq=30)
    real = mask.bool()  # the default call packs real tokens; transformers' padded positions are not compared
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, mask).logits[real], ref(ids, attention_mask=mask).logits[real],
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(encoder(ids, mask).last_hidden_state[real],
                                   ref.albert(ids, attention_mask=mask).last_hidden_state[real], atol=1e-5, rtol=0)
        torch.testing.assert_close(encoder(ids, mask, unpad=False).last_hidden_state,
                                   ref.albert(ids, attention_mask=mask).last_hidden_state, atol=1e-5, rtol=0)


def test_albert_parameter_counts_follow_the_sharing_policy():
    base = dict(vocab_size=30000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072)
    bert = BertModel(BertConfig(**base)).num_parameters()
    shared = AlbertModel(AlbertConfig(**base, embedding_size=128)).num_parameters()
    unshared = AlbertModel(AlbertConfig(**base, embedding_size=128, sharing="none")).num_parameters()
    layer = 4 * 768 * 768 + 4 * 768 + 2 * 768 * 3072 + 3072 + 768 + 4 * 768  # qkv+out, ffn, two LayerNorms
    embed_bert = 30000 * 768 + 512 * 768 + 2 * 768 + 2 * 768
    embed_albert = 30000 * 128 + 512 * 128 + 2 * 128 + 2 * 128 + 128 * 768 + 768
    pooler = 768 * 768 + 768
    assert bert == embed_bert + 12 * layer + pooler
    assert shared == embed_albert + layer + pooler  # one layer's parameters, used 12 times
    assert unshared == embed_albert + 12 * layer + pooler
    attention = AlbertModel(AlbertConfig(**base, embedding_size=128, sharing="attention")).num_parameters()
    assert shared < attention < unshared


def test_albert_config_errors():
    with pytest.raises(ConfigError, match="sharing"):
        AlbertConfig(sharing="some")
    with pytest.raises(ConfigError, match="inner_group_num"):
        AlbertConfig(inner_group_num=2)
    with pytest.raises(ConfigError, match="embedding_size"):
        AlbertConfig(embedding_size=0)


@pytest.mark.parametrize("layers,hidden,heads", [(1, 32, 2), (3, 48, 4)])
def test_roberta_both_directions(tmp_path, layers, hidden, heads):
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=90, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden + 5, max_position_embeddings=40)
    ours = _noise(RobertaForMaskedLM(cfg)).eval()
    ours.save_pretrained(tmp_path / "ours")
    ref = transformers.RobertaForMaskedLM.from_pretrained(tmp_path / "ours").eval()
    ids, mask = _inputs(90, seq=38, pad=1)
    real = mask.bool()  # the default call packs real tokens; transformers' padded positions are not compared
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, mask).logits[real], ref(ids, attention_mask=mask).logits[real],
                                   atol=1e-5, rtol=0)
    hf_model = _noise(transformers.RobertaForMaskedLM(transformers.RobertaConfig(
        vocab_size=90, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden + 5, max_position_embeddings=40)), seed=3).eval()
    hf_model.save_pretrained(tmp_path / "theirs")
    back = RobertaForMaskedLM.from_pretrained(tmp_path / "theirs", strict=True)
    encoder = load(tmp_path / "theirs")
    with torch.no_grad():
        torch.testing.assert_close(back(ids, mask).logits[real], hf_model(ids, attention_mask=mask).logits[real],
                                   atol=1e-5, rtol=0)
    assert type(encoder) is RobertaForMaskedLM
    bare = RobertaModel.from_pretrained(tmp_path / "theirs")
    with torch.no_grad():
        torch.testing.assert_close(bare(ids, mask).last_hidden_state[real],
                                   hf_model.roberta(ids, attention_mask=mask).last_hidden_state[real], atol=1e-5, rtol=0)
        torch.testing.assert_close(bare(ids, mask, unpad=False).last_hidden_state,
                                   hf_model.roberta(ids, attention_mask=mask).last_hidden_state, atol=1e-5, rtol=0)


def test_roberta_positions_start_after_padding_and_limit_length(make_tiny_config):
    model = RobertaModel(make_tiny_config(RobertaConfig, max_position_embeddings=20))
    ids = torch.tensor([[0, 7, 8, 2, 1, 1]])
    assert model.position_ids_for(ids).tolist() == [[2, 3, 4, 5, 1, 1]]
    assert model.max_sequence_length == 18
    with pytest.raises(ValueError, match="max_length=18"):
        model(torch.full((1, 19), 5))
