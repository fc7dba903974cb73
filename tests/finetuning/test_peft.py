"""LoRA and bottleneck adapters: the math by hand, exact no-ops when fresh, merging, freezing, saving and
loading, several adapters on one encoder, ALBERT's shared layers, and the errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from torch import nn

from bertology import BertConfig, BertModel
from bertology.errors import CheckpointError, ConfigError
from bertology.finetuning.model import HeadConfig, TaskModel
from bertology.finetuning.peft import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    PeftConfig,
    PeftLinear,
    active_adapters,
    adapter_names,
    adapter_state_dict,
    add_adapter,
    delete_adapter,
    freeze_except_adapters,
    load_adapter,
    merge_adapter,
    merge_and_unload,
    save_adapter,
    set_active_adapter,
    unmerge_adapter,
)
from bertology.models import AlbertConfig, AlbertModel, RobertaConfig, RobertaModel, load
from bertology.models.task_heads import BertForSequenceClassification

H, LAYERS = 16, 2
CONFIG = dict(vocab_size=50, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=32,
              max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def bert(seed: int = 0, **overrides) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(BertConfig(**{**CONFIG, **overrides})).eval()


def inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (3, 7), generator=gen)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 4:] = 0
    ids[1, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def hidden(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs()).last_hidden_state


@torch.no_grad()
def randomize(model: nn.Module, name: str, seed: int) -> None:
    """Give adapter `name` nonzero values everywhere (a fresh one is a no-op, which would hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    for tensor in adapter_state_dict(model, name).values():
        tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.3)


# ------------------------------------------------------------------------------------------- the math
def test_lora_forward_by_hand():
    linear = nn.Linear(3, 4)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 0, 2], [0, -1, 1], [3, 1, 0], [0.5, 0.5, 0.5]]))
        linear.bias.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    wrapper = PeftLinear(linear)
    wrapper.add_lora("t", {"full": (0, 4)}, PeftConfig(rank=2, alpha=6.0))  # scaling 3
    wrapper.active = ("t",)
    piece = wrapper.lora["t"]["full"]
    A = [[1.0, 2.0, 0.0], [0.0, -1.0, 1.0]]  # r x in
    B = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-1.0, 0.5]]  # out x r
    with torch.no_grad():
        piece.A.copy_(torch.tensor(A))
        piece.B.copy_(torch.tensor(B))
    x = [0.5, -1.0, 2.0]
    W, b = linear.weight.tolist(), linear.bias.tolist()
    expected = []
    for o in range(4):
        base = sum(W[o][i] * x[i] for i in range(3)) + b[o]
        low = sum(B[o][k] * sum(A[k][i] * x[i] for i in range(3)) for k in range(2))
        expected.append(base + 3.0 * low)
    torch.testing.assert_close(wrapper(torch.tensor([x])), torch.tensor([expected]), atol=1e-6, rtol=0)


def test_lora_on_one_part_of_a_fused_projection_updates_only_its_rows():
    """'attention.v' on a fused qkv Linear: rows of q and k are the base output, v's rows get the update."""
    torch.manual_seed(0)
    model = nn.Module()
    model.attention = nn.Module()
    model.attention.qkv = nn.Linear(2, 6)
    count = add_adapter(model, "t", PeftConfig(rank=1, alpha=2.0, targets=["attention.v"]))
    assert count == 1 * 2 + 2 * 1  # A: r x in, B: rows x r
    piece = model.attention.qkv.lora["t"]["v"]
    assert (piece.start, piece.stop) == (4, 6)
    with torch.no_grad():
        piece.A.copy_(torch.tensor([[1.0, -2.0]]))
        piece.B.copy_(torch.tensor([[0.5], [3.0]]))
    x = [1.0, -1.0]
    a_x = 1.0 * x[0] + (-2.0) * x[1]
    out = model.attention.qkv(torch.tensor([x]))
    base = model.attention.qkv.base(torch.tensor([x]))
    torch.testing.assert_close(out[:, :4], base[:, :4], atol=0, rtol=0)
    torch.testing.assert_close(out[:, 4:], base[:, 4:] + torch.tensor([[2 * 0.5 * a_x, 2 * 3.0 * a_x]]))


def test_bottleneck_by_hand():
    linear = nn.Linear(2, 2)
    wrapper = PeftLinear(linear)
    wrapper.add_bottleneck("t", PeftConfig(kind="adapter", bottleneck=1, activation="relu"))
    wrapper.active = ("t",)
    block = wrapper.bottleneck["t"]
    with torch.no_grad():
        block.down.weight.copy_(torch.tensor([[1.0, -1.0]]))
        block.down.bias.fill_(0.5)
        block.up.weight.copy_(torch.tensor([[2.0], [-1.0]]))
        block.up.bias.copy_(torch.tensor([0.1, 0.0]))
    x = torch.tensor([[0.3, -0.7], [1.0, 4.0]])
    out = wrapper(x)
    for row in range(2):
        h = linear(x[row]).tolist()
        inner = max(0.0, h[0] - h[1] + 0.5)
        expected = [h[0] + 2.0 * inner + 0.1, h[1] - 1.0 * inner]
        torch.testing.assert_close(out[row], torch.tensor(expected), atol=1e-6, rtol=0)


# -------------------------------------------------------------------------------------- on BERT
@pytest.mark.parametrize("kind", ["lora", "adapter"])
def test_fresh_adapter_leaves_outputs_exactly_unchanged(kind):
    model = bert()
    before = hidden(model)
    count = add_adapter(model, "t", PeftConfig(kind=kind, rank=4, bottleneck=8))
    assert count > 0 and adapter_names(model) == ["t"] and active_adapters(model) == ("t",)
    assert torch.equal(hidden(model), before)
    randomize(model, "t", seed=3)
    assert not torch.allclose(hidden(model), before, atol=1e-3)


def test_default_targets_and_parameter_counts():
    r, size = 4, 8
    lora = bert()
    assert add_adapter(lora, "t", PeftConfig(rank=r)) == LAYERS * 2 * (r * H + H * r)  # Wq and Wv
    layer = lora.encoder.layers[0]
    assert set(layer.attention.qkv.lora["t"]) == {"q", "v"} and not isinstance(layer.attention.out, PeftLinear)
    adapter = bert()
    per_block = (H * size + size) + (size * H + H)
    per_norm = 2 * H
    assert add_adapter(adapter, "t", PeftConfig(kind="adapter", bottleneck=size)) == LAYERS * 2 * (per_block + per_norm)
    assert add_adapter(bert(), "t", PeftConfig(kind="adapter", bottleneck=size, norms=[])) == LAYERS * 2 * per_block


def test_merge_unmerge_round_trip():
    model = bert()
    add_adapter(model, "t", PeftConfig(rank=4, targets=["attention.qkv", "attention.out", "ffn.up"]))
    randomize(model, "t", seed=5)
    original = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("base.weight")}
    unmerged = hidden(model)
    merge_adapter(model, "t")
    torch.testing.assert_close(hidden(model), unmerged, atol=1e-5, rtol=0)
    changed = [k for k, v in model.state_dict().items() if k in original and not torch.equal(v, original[k])]
    assert len(changed) == 3 * LAYERS
    unmerge_adapter(model, "t")
    for k, v in model.state_dict().items():
        if k in original:
            torch.testing.assert_close(v, original[k], atol=1e-6, rtol=0)
    torch.testing.assert_close(hidden(model), unmerged, atol=1e-6, rtol=0)
    # switching away from a merged adapter unmerges it, so the bare encoder is really bare
    bare = bert()
    merge_adapter(model, "t")
    set_active_adapter(model, None)
    torch.testing.assert_close(hidden(model), hidden(bare), atol=1e-6, rtol=0)
    add_adapter(model, "b", PeftConfig(kind="adapter"))
    with pytest.raises(ConfigError, match="only LoRA"):
        merge_adapter(model, "b")


def test_merge_and_unload_gives_a_plain_model_with_the_update_folded_in():
    model = bert()
    plain_keys = set(model.state_dict())
    add_adapter(model, "t", PeftConfig(rank=2))
    randomize(model, "t", seed=2)
    with_lora = hidden(model)
    merge_and_unload(model, "t")
    assert set(model.state_dict()) == plain_keys and adapter_names(model) == []
    torch.testing.assert_close(hidden(model), with_lora, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["lora", "adapter"])
def test_freezing_leaves_only_adapter_and_head_trainable(kind):
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**CONFIG).with_labels(3))
    add_adapter(model, "other", PeftConfig(kind=kind))
    add_adapter(model, "t", PeftConfig(kind=kind, rank=2, bottleneck=4))
    counts = freeze_except_adapters(model, "t")
    adapter_ids = {id(t) for t in adapter_state_dict(model, "t").values()}
    head = {"classifier.weight", "classifier.bias"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert head <= trainable
    rest = trainable - head
    assert rest and all(".t." in n for n in rest), rest  # e.g. "...attention.qkv.lora.t.q.A"
    assert counts["adapter"] == sum(model.get_parameter(n).numel() for n in rest)
    assert counts["other_trainable"] == 3 * H + 3
    total = sum(p.numel() for p in model.parameters())
    assert counts["frozen"] == total - counts["adapter"] - counts["other_trainable"]
    assert len(adapter_ids) == len(rest)
    randomize(model, "t", seed=1)  # so that gradients reach every adapter tensor (B = 0 would block A's)
    model.train()
    out = model(**inputs(), labels=torch.tensor([0, 2, 1]))
    out.loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == trainable


def test_save_then_load_into_a_fresh_model_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**CONFIG).with_labels(2)).eval()
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    add_adapter(model, "task", PeftConfig(kind="lora", rank=2, targets=["attention.qkv", "ffn.down"]))
    add_adapter(model, "second", PeftConfig(kind="adapter", bottleneck=4))
    randomize(model, "task", seed=1)
    randomize(model, "second", seed=2)
    set_active_adapter(model, "task")
    with torch.no_grad():
        expected = model(**inputs()).logits
    head = {k: v for k, v in model.classifier.state_dict().items()}
    save_adapter(model, "task", tmp_path / "task", extra=head)
    with safe_open(str(tmp_path / "task" / ADAPTER_WEIGHTS), "pt") as handle:
        keys = set(handle.keys())
    assert keys == set(adapter_state_dict(model, "task")) | {"extra.weight", "extra.bias"}
    assert all(k.endswith(("lora_A", "lora_B")) for k in keys - {"extra.weight", "extra.bias"})
    description = json.loads((tmp_path / "task" / ADAPTER_CONFIG).read_text())
    assert description["name"] == "task" and description["peft"]["rank"] == 2

    torch.manual_seed(1)
    fresh = BertForSequenceClassification(BertConfig(**CONFIG).with_labels(2)).eval()
    fresh.load_state_dict(base_state)
    loaded = load_adapter(fresh, tmp_path / "task")
    assert loaded.name == "task" and set(loaded.extra) == {"weight", "bias"}
    fresh.classifier.load_state_dict(loaded.extra)
    with torch.no_grad():
        assert torch.equal(fresh(**inputs()).logits, expected)


def test_adapter_saved_from_bare_encoder_loads_into_a_head_model(tmp_path):
    encoder = bert()
    add_adapter(encoder, "t", PeftConfig(kind="adapter", bottleneck=4))
    randomize(encoder, "t", seed=4)
    save_adapter(encoder, "t", tmp_path)
    torch.manual_seed(9)
    head_model = BertForSequenceClassification(BertConfig(**CONFIG).with_labels(2)).eval()
    head_model.bert.load_state_dict(bert().state_dict())  # the same base weights as `encoder`'s
    load_adapter(head_model, tmp_path, "renamed")
    assert adapter_names(head_model) == ["renamed"]
    assert torch.equal(hidden(head_model.bert), hidden(encoder))


def test_two_adapters_on_one_encoder_and_switching(tmp_path):
    model = bert()
    bare = hidden(model)
    add_adapter(model, "a", PeftConfig(kind="lora", rank=2))
    randomize(model, "a", seed=1)
    out_a = hidden(model)
    add_adapter(model, "b", PeftConfig(kind="adapter", bottleneck=4))
    randomize(model, "b", seed=2)
    out_b = hidden(model)
    assert adapter_names(model) == ["a", "b"] and active_adapters(model) == ("b",)
    assert not torch.allclose(out_a, out_b, atol=1e-3)
    set_active_adapter(model, "a")
    assert torch.equal(hidden(model), out_a)
    set_active_adapter(model, ["a", "b"])  # stacked: differs from both
    both = hidden(model)
    assert not torch.allclose(both, out_a, atol=1e-3) and not torch.allclose(both, out_b, atol=1e-3)
    set_active_adapter(model, None)
    assert torch.equal(hidden(model), bare)
    delete_adapter(model, "b")
    delete_adapter(model, "a")
    assert adapter_names(model) == [] and not any(isinstance(m, PeftLinear) for m in model.modules())
    assert set(model.state_dict()) == set(bert().state_dict())
    with pytest.raises(ConfigError, match="no adapter named"):
        set_active_adapter(model, "a")


# ------------------------------------------------------------------------------------- families
ALBERT = dict(vocab_size=50, hidden_size=H, embedding_size=8, num_hidden_layers=3, num_attention_heads=2,
              intermediate_size=32, max_position_embeddings=32)


def test_albert_shared_layer_is_wrapped_once():
    r, size = 2, 4
    torch.manual_seed(0)
    model = AlbertModel(AlbertConfig(**ALBERT)).eval()  # one layer applied three times
    before = hidden(model)
    count = add_adapter(model, "t", PeftConfig(rank=r))
    assert count == 2 * (r * H + H * r)  # q and v of the single shared layer
    assert len({id(m) for m in model.modules() if isinstance(m, PeftLinear)}) == 1
    assert torch.equal(hidden(model), before)
    randomize(model, "t", seed=1)
    assert not torch.allclose(hidden(model), before, atol=1e-3)

    torch.manual_seed(0)
    partly = AlbertModel(AlbertConfig(**ALBERT, sharing="attention")).eval()  # attention shared, ffn not
    per_block = (H * size + size) + (size * H + H)
    count = add_adapter(partly, "t", PeftConfig(kind="adapter", bottleneck=size, norms=[]))
    assert count == per_block * (1 + 3)  # attention.out once, ffn.down in each of the 3 layers
    layers = partly.encoder.layers
    assert all(layer.attention.out is layers[0].attention.out for layer in layers)
    assert isinstance(layers[0].attention.out, PeftLinear)
    assert sum(p.numel() for p in partly.parameters()) == \
        sum(p.numel() for p in AlbertModel(AlbertConfig(**ALBERT, sharing="attention")).parameters()) + count


def test_roberta(tmp_path):
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=50, hidden_size=H, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=40)
    model = RobertaModel(config).eval()
    before = hidden(model)
    add_adapter(model, "t", PeftConfig(rank=2))
    assert torch.equal(hidden(model), before)
    randomize(model, "t", seed=1)
    after = hidden(model)
    save_adapter(model, "t", tmp_path)
    torch.manual_seed(0)
    fresh = RobertaModel(config).eval()
    load_adapter(fresh, tmp_path)
    assert torch.equal(hidden(fresh), after)


def test_task_model_saves_and_reloads_adapters_only(tmp_path):
    bert().save_pretrained(tmp_path / "base")
    encoder = load(tmp_path / "base")
    model = TaskModel(encoder, {"t": HeadConfig(labels=["a", "b"], dropout=0.0)}).eval()
    model.base_path = str(tmp_path / "base")
    add_adapter(model.encoder, "t", PeftConfig(kind="adapter", bottleneck=4))
    freeze_except_adapters(model.encoder, "t")
    randomize(model.encoder, "t", seed=1)
    model.save_encoder = False
    expected = model(**inputs()).outputs["logits"]
    model.save_pretrained(tmp_path / "run")
    assert not (tmp_path / "run" / "encoder").exists()
    again = TaskModel.from_pretrained(tmp_path / "run").eval()
    assert torch.equal(again(**inputs()).outputs["logits"], expected)


# ---------------------------------------------------------------------------------------- errors
def test_config_validation_names_the_field():
    for bad, field in ((dict(kind="prefix"), "kind"), (dict(rank=0), "rank"), (dict(alpha=-1), "alpha"),
                       (dict(dropout=1.0), "dropout"), (dict(bottleneck=2.5), "bottleneck"),
                       (dict(activation="nope"), "activation"), (dict(targets=[]), "targets"),
                       (dict(targets=["("]), "targets")):
        with pytest.raises(ConfigError, match=f"'{field}'"):
            PeftConfig(**bad)
    with pytest.raises(ConfigError, match="unknown field .rnak.; did you mean .rank."):
        PeftConfig.from_dict({"rnak": 4})
    config = PeftConfig.from_dict({"kind": "adapter", "targets": ["ffn.down"]})
    assert PeftConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_target_matching_nothing_is_an_error_listing_linear_names():
    model = bert()
    with pytest.raises(ConfigError, match=r"attention\.query.*encoder\.layers\.\*\.attention\.qkv"):
        add_adapter(model, "t", PeftConfig(targets=["attention.out", "attention.query"]))
    assert adapter_names(model) == [] and not any(isinstance(m, PeftLinear) for m in model.modules())
    with pytest.raises(ConfigError, match="'norms'.*attention_norm"):
        add_adapter(model, "t", PeftConfig(kind="adapter", norms=["layer_norm"]))
    with pytest.raises(ConfigError, match="'targets'"):  # bottlenecks wrap whole projections, not a fused part
        add_adapter(model, "t", PeftConfig(kind="adapter", targets=["attention.q"]))
    add_adapter(model, "t")
    with pytest.raises(ConfigError, match="already has an adapter"):
        add_adapter(model, "t")


def test_loading_into_a_mismatched_model_errors_and_leaves_it_unchanged(tmp_path):
    model = bert()
    add_adapter(model, "t", PeftConfig(rank=2))
    save_adapter(model, "t", tmp_path / "t")

    wider = bert(hidden_size=24, num_attention_heads=2)
    with pytest.raises(CheckpointError, match="hidden_size"):
        load_adapter(wider, tmp_path / "t")
    assert adapter_names(wider) == []

    # same reported shape, but the tensors are not what the model expects
    (tmp_path / "bad").mkdir()
    description = json.loads((tmp_path / "t" / ADAPTER_CONFIG).read_text())
    description["peft"]["rank"] = 3
    (tmp_path / "bad" / ADAPTER_CONFIG).write_text(json.dumps(description))
    (tmp_path / "bad" / ADAPTER_WEIGHTS).write_bytes((tmp_path / "t" / ADAPTER_WEIGHTS).read_bytes())
    other = bert()
    add_adapter(other, "keep", PeftConfig(kind="adapter"))
    with pytest.raises(CheckpointError, match="has shape"):
        load_adapter(other, tmp_path / "bad")
    assert adapter_names(other) == ["keep"] and active_adapters(other) == ("keep",)

    existing = bert()
    add_adapter(existing, "t", PeftConfig(rank=4))
    with pytest.raises(CheckpointError, match="another config"):
        load_adapter(existing, tmp_path / "t")
    with pytest.raises(CheckpointError, match="no adapter_config.json"):
        load_adapter(bert(), tmp_path / "missing")
