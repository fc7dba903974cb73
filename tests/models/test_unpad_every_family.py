"""The default call packs a padded batch's real tokens: for every family its outputs at real positions equal
the padded path's, padded positions are zeros, and full batches and attention maps take the padded path."""

from __future__ import annotations

import pytest
import torch

from bertology.models import AlbertConfig, AmbertConfig, ChineseBertConfig, RobertaConfig
from bertology.models.attention import UNPAD_MIN_SHARE, Padding
from bertology.models.family import FAMILIES
from bertology.tokenization import ChineseBertTokenizer

BATCH, SEQ = 4, 12
LENGTHS = [12, 9, 5, 2]  # one full row, three padded ones


def _mask(lengths=LENGTHS) -> torch.Tensor:
    return (torch.arange(SEQ)[None, :] < torch.tensor(lengths)[:, None]).long()


def _build(family: str, make_tiny_config, tiny_tokenizer, tmp_path):
    """(model, inputs) for one family: its encoder with the tiny sizes and a padded batch of its inputs."""
    gen = torch.Generator().manual_seed(3)
    mask = _mask()
    encoder_class = FAMILIES[family].encoder_class
    extra: dict[str, torch.Tensor] = {}
    if family == "chinesebert":
        tokenizer = ChineseBertTokenizer.from_wordpiece(tiny_tokenizer)
        cfg = make_tiny_config(ChineseBertConfig, vocab_size=tokenizer.vocab_size, glyph_size=16,
                               pinyin_embedding_dim=16)
        model = encoder_class.for_tokenizer(cfg, tokenizer, cache_dir=tmp_path / "glyphs")
        extra["pinyin_ids"] = torch.randint(0, 20, (BATCH, SEQ, 8), generator=gen)
    else:
        config_class = {"bert": None, "albert": AlbertConfig, "roberta": RobertaConfig, "ambert": AmbertConfig}[family]
        changes = {"coarse_vocab_size": 30} if family == "ambert" else {}
        cfg = make_tiny_config(config_class, **changes) if config_class else make_tiny_config()
        model = encoder_class(cfg)
        if family == "ambert":
            coarse_mask = _mask([7, 5, 3, 1])
            extra = {"coarse_ids": torch.randint(4, 30, (BATCH, SEQ), generator=gen) * coarse_mask,
                     "coarse_attention_mask": coarse_mask, "coarse_token_type_ids": torch.zeros(BATCH, SEQ).long()}
    low = 3 if family == "roberta" else 1  # RoBERTa's pad id is 1
    ids = torch.randint(low, cfg.vocab_size, (BATCH, SEQ), generator=gen) * mask
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), **extra}
    torch.manual_seed(0)
    for p in model.parameters():  # away from the initialisation, so a misplaced token would show
        p.data.add_(torch.randn(p.shape) * 0.05)
    return model.eval(), inputs


def test_every_family_is_covered():
    assert set(FAMILIES) == {"bert", "albert", "roberta", "chinesebert", "ambert"}, \
        "a new family: add it to _build so its packed path is checked"


@pytest.mark.parametrize("family", ["bert", "albert", "roberta", "chinesebert", "ambert"])
@torch.no_grad()
def test_packed_equals_padded_at_real_tokens(family, make_tiny_config, tiny_tokenizer, tmp_path):
    model, inputs = _build(family, make_tiny_config, tiny_tokenizer, tmp_path)
    padded = model(**inputs, unpad=False, output_hidden_states=True)
    packed = model(**inputs, output_hidden_states=True)  # the default call
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(packed.last_hidden_state[real], padded.last_hidden_state[real], atol=1e-5, rtol=0)
    assert torch.count_nonzero(packed.last_hidden_state[~real]) == 0, "the default call did not pack"
    assert torch.count_nonzero(padded.last_hidden_state[~real]) > 0
    for i, (a, b) in enumerate(zip(packed.hidden_states, padded.hidden_states, strict=True)):
        torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0, msg=f"hidden state {i}")
    if padded.pooler_output is not None:
        torch.testing.assert_close(packed.pooler_output, padded.pooler_output, atol=1e-5, rtol=0)
    if family == "ambert":  # the word side is packed with its own mask
        coarse = inputs["coarse_attention_mask"].bool()
        torch.testing.assert_close(packed.coarse.last_hidden_state[coarse], padded.coarse.last_hidden_state[coarse],
                                   atol=1e-5, rtol=0)
    # attention maps keep the padded path (they come padded anyway)
    maps = model(**inputs, output_attentions=True)
    torch.testing.assert_close(maps.last_hidden_state, padded.last_hidden_state, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["bert", "ambert"])
def test_packed_gradients_equal_padded_ones(family, make_tiny_config, tiny_tokenizer, tmp_path):
    model, inputs = _build(family, make_tiny_config, tiny_tokenizer, tmp_path)
    real = inputs["attention_mask"].bool()
    grads = []
    for unpad in (False, None):
        model.zero_grad()
        model(**inputs, unpad=unpad).last_hidden_state[real].pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4, msg=name)


def test_the_padding_share_decides():
    full = torch.ones(4, 100, dtype=torch.long)
    assert not Padding.from_mask(full, 4, 100, None).packed
    nearly = full.clone()
    nearly[0, -1] = 0  # 0.25% padding: below the share that pays
    assert 1 / 400 < UNPAD_MIN_SHARE and not Padding.from_mask(nearly, 4, 100, None).packed
    assert Padding.from_mask(nearly, 4, 100, True).packed  # asked for: always
    half = full.clone()
    half[:, 50:] = 0
    assert Padding.from_mask(half, 4, 100, None).packed
    assert not Padding.from_mask(half, 4, 100, False).packed


def test_a_model_can_keep_the_padding(make_tiny_config):
    from bertology import BertModel

    model = BertModel(make_tiny_config(), unpad_inputs=False).eval()
    mask = _mask()
    ids = torch.randint(1, 50, (BATCH, SEQ)) * mask
    with torch.no_grad():
        out = model(ids, mask).last_hidden_state
    assert torch.count_nonzero(out[~mask.bool()]) > 0
