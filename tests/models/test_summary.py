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
