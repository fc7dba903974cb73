"""The encoder's per-query (batch, seq, seq) attention mask: it reproduces the 2-D padding path when it is the
padding mask broadcast, and a causal mask equals running each prefix alone."""

from __future__ import annotations

import pytest
import torch

from bertology import BertConfig
from bertology.models.attention import Padding
from bertology.models.bert import BertModel

CFG = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _model(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(CFG).eval()


def _inputs(seed: int = 0, batch: int = 3, seq: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, CFG.vocab_size, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    if batch > 2:
        mask[1, 7:] = 0
        mask[2, 4:] = 0
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    return ids.masked_fill(mask == 0, 0), mask, types * mask


@pytest.mark.parametrize("with_maps", [False, True])  # SDPA path, and the explicit (probabilities) path
@torch.no_grad()
def test_broadcast_padding_mask_equals_the_2d_path(with_maps: bool):
    model = _model()
    ids, mask, types = _inputs()
    seq = ids.shape[1]
    square = mask[:, None, :].expand(-1, seq, -1)  # every query sees the real keys, as the 2-D mask says
    flat = model(ids, mask, types, unpad=False, output_attentions=with_maps, output_hidden_states=True)
    ours = model(ids, square, types, output_attentions=with_maps, output_hidden_states=True)
    assert torch.allclose(ours.last_hidden_state, flat.last_hidden_state, atol=1e-6, rtol=0)
    for a, b in zip(ours.hidden_states, flat.hidden_states, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    if with_maps:
        for a, b in zip(ours.attentions, flat.attentions, strict=True):
            assert torch.allclose(a, b, atol=1e-6, rtol=0)
    packed = model(ids, mask, types, unpad=True)  # the packed default: equal at real tokens
    real = mask.bool()
    assert torch.allclose(model(ids, square, types, unpad=True).last_hidden_state[real],
                          packed.last_hidden_state[real], atol=1e-6, rtol=0)


@torch.no_grad()
def test_causal_mask_equals_each_prefix_run_alone():
    """Layer by layer: under a causal mask, position t's output of a layer is that layer run alone (no mask)
    on the previous layer's outputs at positions 0..t. With one layer this is the whole model on the prefix."""
    model = _model(1)
    ids, _, types = _inputs(seed=3, batch=2, seq=9)
    batch, seq = ids.shape
    causal = torch.tril(torch.ones(seq, seq, dtype=torch.long)).expand(batch, -1, -1)
    out = model(ids, causal, types, output_hidden_states=True)
    hidden = model.embed(ids, model.position_ids_for(ids), types)
    assert torch.allclose(out.hidden_states[0], hidden, atol=1e-6, rtol=0)
    for depth, layer in enumerate(model.encoder.layers, start=1):
        hidden = torch.stack([layer(hidden[:, :t + 1], Padding.from_mask(None, batch, t + 1, None))[0][:, t]
                              for t in range(seq)], dim=1)
        assert torch.allclose(out.hidden_states[depth], hidden, atol=1e-6, rtol=0), depth
    single = _model(2)
    single.encoder.layers = single.encoder.layers[:1]
    single.encoder.order = [0]
    whole = single(ids, causal, types).last_hidden_state
    for t in range(seq):
        alone = single(ids[:, :t + 1], None, types[:, :t + 1]).last_hidden_state[:, t]
        assert torch.allclose(whole[:, t], alone, atol=1e-6, rtol=0), t


@torch.no_grad()
def test_square_mask_never_packs_and_rows_without_keys_do_not_give_nan():
    ids, mask, types = _inputs()
    seq = ids.shape[1]
    square = mask[:, :, None] * mask[:, None, :]  # padding queries may attend nothing
    padding = Padding.from_mask(square, ids.shape[0], seq, unpad=True)
    assert not padding.packed and padding.keep is None
    assert padding.sdpa_mask().shape == (3, 1, seq, seq)
    assert padding.square[2, 6].all() and torch.equal(padding.square[2, 1], mask[2].bool())
    out = _model()(ids, square, types).last_hidden_state
    assert torch.isfinite(out).all()


def test_square_mask_of_the_wrong_shape_is_refused():
    ids, _, _ = _inputs()
    with pytest.raises(ValueError, match="attention_mask has shape"):
        _model()(ids, torch.ones(3, 10, 9))
