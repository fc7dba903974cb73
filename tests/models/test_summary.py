"""FLOPs and parameter counts, by hand."""

from bertology import BertConfig, BertForMaskedLM, BertModel
from bertology.models.summary import forward_flops_per_token, parameters_by_component


def test_flops_formula_by_hand():
    cfg = BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=16)
    # per layer: qkv 3*8*8 + out 8*8 + ffn 2*8*16 = 512 MACs; attention 2*S*H = 2*10*8 = 160 MACs
    assert forward_flops_per_token(cfg, seq_len=10) == 2 * 2 * (512 + 160)
    assert forward_flops_per_token(cfg, 10, mlm_head=True) == 2 * 2 * 672 + 2 * (64 + 800)


def test_parameter_groups_sum_to_total_and_tied_weights_count_once():
    cfg = BertConfig.preset("tiny", vocab_size=500)
    for model in (BertModel(cfg), BertForMaskedLM(cfg)):
        groups = parameters_by_component(model)
        assert sum(groups.values()) == model.num_parameters()
    groups = parameters_by_component(BertForMaskedLM(cfg))
    # the MLM head adds transform + norm + bias, not a second vocab x hidden matrix
    assert groups["mlm_head"] == 128 * 128 + 128 + 2 * 128 + 500


def test_flops_follow_pruned_heads_and_neurons():
    """Each layer counts the heads and feed-forward width it keeps (head pruning, neuron pruning)."""
    cfg = BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
    pruned = cfg.replace(pruned_heads={0: [1]}, intermediate_sizes=[16, 4])
    h, d, s = 8, 4, 10
    layer = lambda inner, inter: 2 * (3 * h * inner + inner * h + 2 * h * inter) + 2 * 2 * s * inner  # noqa: E731
    assert forward_flops_per_token(cfg, s) == 2 * layer(8, 16)
    assert forward_flops_per_token(pruned, s) == layer(d, 16) + layer(8, 4)
