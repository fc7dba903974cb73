"""LayerSelector / ScalarMix: hand-computed mixes, the right tensors per strategy, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from bertology.finetuning.layers import STRATEGIES, LayerSelector, ScalarMix

L, B, S, H = 5, 2, 3, 4


def _states(num_layers: int = L, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, S, H, generator=gen) for _ in range(num_layers + 1))


def test_scalar_mix_matches_hand_computation() -> None:
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.scalar_parameters.copy_(torch.tensor([1.0, 2.0, 0.5]))
        mix.gamma.fill_(1.5)
    h = [torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), -4.0)]
    exps = [math.exp(1.0), math.exp(2.0), math.exp(0.5)]
    s = [e / sum(exps) for e in exps]
    expected = 1.5 * (s[0] * 1.0 + s[1] * 2.0 + s[2] * -4.0)
    out = mix(h)
    assert out.shape == (1, 2, 2)
    torch.testing.assert_close(out, torch.full((1, 2, 2), expected))
    torch.testing.assert_close(mix.weights(), torch.tensor(s))


def test_scalar_mix_random_tensors_match_weighted_sum() -> None:
    states = _states(2, seed=1)
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.scalar_parameters.copy_(torch.tensor([-1.0, 0.0, 3.0]))
        mix.gamma.fill_(0.7)
    w = torch.softmax(torch.tensor([-1.0, 0.0, 3.0]), 0)
    expected = 0.7 * (w[0] * states[0] + w[1] * states[1] + w[2] * states[2])
    torch.testing.assert_close(mix(states), expected)


def test_scalar_mix_zero_init_is_the_mean() -> None:
    mix = ScalarMix(L + 1)
    assert torch.equal(mix.scalar_parameters.detach(), torch.zeros(L + 1))
    assert mix.gamma.item() == 1.0
    states = _states()
    torch.testing.assert_close(mix(states), torch.stack(states).mean(0))


def test_scalar_mix_gradients_reach_weights_and_gamma() -> None:
    mix = ScalarMix(3)
    states = _states(2, seed=2)
    (mix(states) * torch.randn(B, S, H)).sum().backward()
    assert mix.scalar_parameters.grad is not None and mix.gamma.grad is not None
    assert mix.scalar_parameters.grad.abs().sum() > 0
    assert mix.gamma.grad.abs() > 0


def test_scalar_mix_layer_norm_normalises_each_layer() -> None:
    mix = ScalarMix(2, do_layer_norm=True)
    a, b = torch.randn(B, S, H) * 10 + 3, torch.randn(B, S, H) * 0.1 - 2
    norm = [(t - t.mean()) / t.var(unbiased=False).add(1e-12).sqrt() for t in (a, b)]
    torch.testing.assert_close(mix([a, b]), 0.5 * norm[0] + 0.5 * norm[1])
    # with a mask, padded positions do not enter the statistics
    mask = torch.ones(B, S, dtype=torch.long)
    mask[1, -1] = 0
    a_pad = a.clone()
    a_pad[1, -1] = 1e6
    out = mix([a_pad, b], mask)
    out_ref = mix([a, b], mask)
    keep = mask.bool()
    torch.testing.assert_close(out[keep], out_ref[keep])


def test_scalar_mix_wrong_number_of_tensors() -> None:
    with pytest.raises(ValueError, match="3 layers"):
        ScalarMix(3)(_states(3))


@pytest.mark.parametrize("strategy, layer, index", [
    ("embeddings", None, 0), ("top", None, L), ("layer", 2, 2), ("layer", 0, 0),
    ("layer", L, L), ("layer", -1, L), ("layer", -(L + 1), 0),
])
def test_selection_strategies_pick_the_right_tensor(strategy: str, layer: int | None, index: int) -> None:
    states = _states()
    sel = LayerSelector(strategy, L, layer=layer)
    out = sel(states)
    assert out is states[index]
    assert sel.output_size(H) == H == out.shape[-1]


def test_concat_last_four() -> None:
    states = _states()
    sel = LayerSelector("concat_last_four", L)
    out = sel(states)
    assert out.shape == (B, S, 4 * H) and sel.output_size(H) == 4 * H
    for k, idx in enumerate(range(L - 3, L + 1)):
        assert torch.equal(out[..., k * H:(k + 1) * H], states[idx])


def test_scalar_mix_strategy_mixes_all_layers() -> None:
    states = _states()
    sel = LayerSelector("scalar_mix", L)
    assert sel.scalar_mix is not None and sel.scalar_mix.num_layers == L + 1
    assert sel.output_size(H) == H
    torch.testing.assert_close(sel(states), torch.stack(states).mean(0))
    assert {n for n, _ in sel.named_parameters()} == {"scalar_mix.scalar_parameters", "scalar_mix.gamma"}
    with torch.no_grad():
        sel.scalar_mix.scalar_parameters.copy_(torch.arange(L + 1, dtype=torch.float))
    w = torch.softmax(torch.arange(L + 1, dtype=torch.float), 0)
    torch.testing.assert_close(sel(states), sum(w[j] * states[j] for j in range(L + 1)))


def test_non_mix_strategies_have_no_parameters() -> None:
    for strategy in ("embeddings", "top", "concat_last_four"):
        assert list(LayerSelector(strategy, L).parameters()) == []


def test_bad_strategy_raises() -> None:
    with pytest.raises(ValueError, match="'middle'"):
        LayerSelector("middle", L)
    assert "scalar_mix" in STRATEGIES


@pytest.mark.parametrize("layer", [L + 1, -(L + 2), 100])
def test_bad_layer_raises(layer: int) -> None:
    with pytest.raises(ValueError, match=f"layer {layer}"):
        LayerSelector("layer", L, layer=layer)


def test_layer_strategy_needs_index_and_others_reject_it() -> None:
    with pytest.raises(ValueError, match="'layer'"):
        LayerSelector("layer", L)
    with pytest.raises(ValueError, match="'top'"):
        LayerSelector("top", L, layer=2)


def test_concat_last_four_needs_four_layers() -> None:
    with pytest.raises(ValueError, match="concat_last_four"):
        LayerSelector("concat_last_four", 3)


def test_wrong_number_of_hidden_states_raises() -> None:
    with pytest.raises(ValueError, match="output_hidden_states=True"):
        LayerSelector("top", L)(_states(L - 1))
    with pytest.raises(ValueError, match="'top'"):
        LayerSelector("top", L)(None)  # type: ignore[arg-type]


def test_works_on_a_tiny_bert() -> None:
    from bertology.models.bert import BertModel
    from bertology.models.config import BertConfig

    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16)
    model = BertModel(config).eval()
    ids = torch.randint(1, 50, (2, 5))
    out = model(ids, output_hidden_states=True)
    assert len(out.hidden_states) == 5
    sel = LayerSelector("concat_last_four", config.num_hidden_layers)
    feats = sel(out.hidden_states)
    assert feats.shape == (2, 5, sel.output_size(config.hidden_size))
    torch.testing.assert_close(feats[..., -8:], out.hidden_states[-1])
