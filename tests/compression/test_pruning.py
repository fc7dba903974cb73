"""Structured pruning that shrinks the matrices: importance by hand, pruned == masked, save/load at the new
size (ours and transformers'), neurons, layers, and the errors that name the layer."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from bertology import BertConfig, BertModel
from bertology.compression.pruning import (
    HeadImportance,
    drop_layers,
    head_importance,
    heads_left,
    layers_to_keep,
    mask_heads,
    mask_neurons,
    neuron_importance,
    normalize_per_layer,
    padded_copy,
    plan_head_pruning,
    plan_neuron_pruning,
    prune_heads,
    prune_neurons,
    random_head_importance,
)
from bertology.compression.report import count_parameters
from bertology.errors import ConfigError
from bertology.finetuning.model import HeadConfig, TaskModel


def _config(**changes) -> BertConfig:
    base = dict(vocab_size=60, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=32)
    return BertConfig(**{**base, **changes})


def _bert(seed: int = 0, **changes) -> BertModel:
    torch.manual_seed(seed)
    model = BertModel(_config(**changes)).eval()
    with torch.no_grad():  # non-zero biases, so a pruned head's bias slice matters
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.1)
    return model


def _inputs(batch: int = 3, seq: int = 10, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 60, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    return ids, mask


def _task_model(seed: int = 0) -> TaskModel:
    encoder = _bert(seed)
    torch.manual_seed(seed + 1)
    return TaskModel(encoder, {"cls": HeadConfig(kind="classification", labels=["a", "b", "c"])}).eval()


def _batches(n: int = 3) -> list[dict]:
    out = []
    for i in range(n):
        ids, mask = _inputs(seed=10 + i)
        out.append({"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 2, 1]), "task": "cls"})
    return out


PLAN = {0: [1, 3], 1: [0, 1, 2, 3], 2: [2]}


# --------------------------------------------------------------------------------------- importance
def test_head_importance_equals_autograd_of_the_gated_forward_by_hand():
    model = _task_model()
    batches = _batches(2)
    got = head_importance(model, batches, normalize=False)
    # by hand: scale each head's slice of attention.out's input by a leaf gate, differentiate the loss
    expected = torch.zeros(3, 4)
    for batch in batches:
        gates = [torch.ones(4, requires_grad=True) for _ in range(3)]
        handles = []
        for layer, gate in zip(model.encoder.encoder.layers, gates, strict=True):
            def hook(module, args, gate=gate):
                x = args[0]
                return (torch.cat([x[..., h * 8:(h + 1) * 8] * gate[h] for h in range(4)], dim=-1),)
            handles.append(layer.attention.out.register_forward_pre_hook(hook))
        loss = model(**batch).losses["loss"]
        for handle in handles:
            handle.remove()
        expected += torch.stack(torch.autograd.grad(loss, gates)).abs()
    expected /= len(batches)
    torch.testing.assert_close(got.scores, expected, rtol=1e-5, atol=1e-7)
    normed = head_importance(model, batches)
    torch.testing.assert_close(normed.scores, expected / expected.norm(dim=1, keepdim=True), rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for p in model.parameters()), "importance must not leave gradients on the model"


def test_importance_table_heatmap_and_random_baseline(tmp_path):
    model = _task_model()
    importance = head_importance(model, _batches(1))
    table = importance.format()
    assert "h3" in table and len(table.splitlines()) == 2 + 3
    written = importance.write(tmp_path)
    assert "| layer | heads |" in (tmp_path / "head_importance.md").read_text()
    assert HeadImportance.from_dict(importance.to_dict()).scores.shape == (3, 4)
    pytest.importorskip("matplotlib")
    assert written["heatmap"].read_bytes()[:4] == b"\x89PNG"
    rand = random_head_importance(model, seed=3)
    assert rand.method == "random" and torch.allclose(rand.scores.norm(dim=1), torch.ones(3))
    assert torch.equal(rand.scores, random_head_importance(model, seed=3).scores)


def test_normalisation_skips_pruned_heads():
    scores = torch.tensor([[3.0, float("nan"), 4.0], [float("nan")] * 3])
    out = normalize_per_layer(scores)
    assert torch.allclose(out[0, [0, 2]], torch.tensor([0.6, 0.8])) and torch.isnan(out[1]).all()


# ---------------------------------------------------------------------------------- pruned == masked
@pytest.mark.parametrize("unpad", [None, False])
def test_pruned_bert_equals_masked_bert(unpad):
    model = _bert()
    ids, mask = _inputs()
    with torch.no_grad(), mask_heads(model, PLAN):
        masked = model(ids, mask, unpad=unpad)
    before = count_parameters(model)
    prune_heads(model, PLAN)
    with torch.no_grad():
        pruned = model(ids, mask, unpad=unpad)
    keep = mask.bool()
    torch.testing.assert_close(pruned.last_hidden_state[keep], masked.last_hidden_state[keep], atol=1e-5, rtol=0)
    torch.testing.assert_close(pruned.pooler_output, masked.pooler_output, atol=1e-5, rtol=0)
    layers = model.encoder.layers
    assert [la.attention.num_heads for la in layers] == [2, 0, 3]
    assert tuple(layers[0].attention.qkv.weight.shape) == (3 * 2 * 8, 32)
    assert tuple(layers[2].attention.out.weight.shape) == (32, 3 * 8)
    assert count_parameters(model) == before - 7 * (4 * 8 * 32 + 3 * 8)
    assert model.config.pruned_heads == PLAN


def test_attention_maps_of_a_layer_without_heads_are_empty():
    model = _bert()
    prune_heads(model, {1: [0, 1, 2, 3]})
    ids, mask = _inputs()
    out = model(ids, mask, output_attentions=True)
    assert out.attentions[1].shape == (3, 0, 10, 10) and out.attentions[0].shape == (3, 4, 10, 10)


def test_pruning_is_cumulative_in_the_original_numbering():
    model = _bert()
    ids, mask = _inputs()
    with torch.no_grad(), mask_heads(model, {0: [0, 2, 3]}):
        masked = model(ids, mask).last_hidden_state
    prune_heads(model, {0: [2]})
    assert heads_left(model)[0] == [0, 1, 3]
    prune_heads(model, {0: [0, 3]})
    assert model.config.pruned_heads == {0: [0, 2, 3]} and heads_left(model)[0] == [1]
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask).last_hidden_state, masked, atol=1e-5, rtol=0)


def test_pruned_task_model_equals_masked_and_saves_and_loads_at_its_new_size(tmp_path):
    model = _task_model()
    batch = _batches(1)[0]
    with torch.no_grad(), mask_heads(model, PLAN):
        masked = model(**batch).outputs["logits"]
    prune_heads(model, PLAN)
    with torch.no_grad():
        pruned = model(**batch).outputs["logits"]
    torch.testing.assert_close(pruned, masked, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path / "m")
    loaded = TaskModel.from_pretrained(tmp_path / "m").eval()
    assert count_parameters(loaded) == count_parameters(model) < count_parameters(_task_model())
    assert [la.attention.qkv.weight.shape[0] for la in loaded.encoder.encoder.layers] == [48, 0, 72]
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).outputs["logits"], pruned, atol=1e-6, rtol=0)


def test_transformers_reads_a_head_pruned_bert_folder(tmp_path):
    """Our folder is transformers' layout for pruned heads: `pruned_heads` in config.json and query/key/value/
    output.dense sliced as its `prune_heads` slices them. transformers 4.x builds those shapes from the config;
    5.x dropped head pruning, so here its modules are sliced the same way before the strict load. The padded
    copy (zeros where heads were) loads in any version with from_pretrained."""
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file

    model = _bert()
    prune_heads(model, PLAN)
    model.save_pretrained(tmp_path / "pruned")
    ids, mask = _inputs()
    with torch.no_grad():
        ours = model(ids, mask, unpad=False).last_hidden_state
    saved = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert saved["pruned_heads"] == {"0": [1, 3], "1": [0, 1, 2, 3], "2": [2]}
    theirs = transformers.BertModel(transformers.BertConfig(**{k: v for k, v in saved.items()
                                                               if k != "pruned_heads"}), add_pooling_layer=True)
    for layer, heads in saved["pruned_heads"].items():
        block = theirs.encoder.layer[int(layer)].attention
        keep = torch.tensor([h * 8 + i for h in range(4) if h not in heads for i in range(8)], dtype=torch.long)
        for name in ("query", "key", "value"):
            setattr(block.self, name, _slice(getattr(block.self, name), keep, 0))
        block.self.num_attention_heads = 4 - len(heads)
        block.self.all_head_size = block.self.num_attention_heads * 8
        block.output.dense = _slice(block.output.dense, keep, 1)
    missing, unexpected = theirs.load_state_dict(load_file(str(tmp_path / "pruned" / "model.safetensors")),
                                                 strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    theirs.eval()
    with torch.no_grad():
        out = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
    keep_tokens = mask.bool()
    torch.testing.assert_close(out[keep_tokens], ours[keep_tokens], atol=1e-5, rtol=0)

    padded_copy(model).save_pretrained(tmp_path / "padded")
    dense = transformers.BertModel.from_pretrained(tmp_path / "padded").eval()
    with torch.no_grad():
        out = dense(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(out[keep_tokens], ours[keep_tokens], atol=1e-5, rtol=0)


def _slice(linear: torch.nn.Linear, index: torch.Tensor, dim: int) -> torch.nn.Linear:
    weight = linear.weight.detach().index_select(dim, index)
    bias = linear.bias.detach() if dim == 1 else linear.bias.detach().index_select(0, index)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        new = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        new.weight.copy_(weight)
        new.bias.copy_(bias)
    return new


# ------------------------------------------------------------------------------------------- plans
def test_plans_pick_the_least_important_heads():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.2], [0.3, 0.8, 0.05, 0.6], [0.7, 0.4, 0.35, 0.95]])
    importance = HeadImportance(scores)
    assert plan_head_pruning(importance, 3) == {0: [1, 3], 1: [2]}
    assert plan_head_pruning(importance, 0.25) == {0: [1, 3], 1: [2]}
    assert plan_head_pruning(importance, 1, per_layer=True) == {0: [1], 1: [2], 2: [2]}
    assert plan_head_pruning(importance, 3, min_heads=3) == {0: [1], 1: [2], 2: [2]}


def test_pruning_more_heads_than_a_layer_has_names_the_layer():
    importance = HeadImportance(torch.rand(3, 4))
    with pytest.raises(ConfigError, match="layer 0 has 4 heads; cannot prune 5"):
        plan_head_pruning(importance, 5, per_layer=True)
    model = _bert()
    prune_heads(model, {2: [0, 1]})
    with pytest.raises(ConfigError, match="layer 2 has 2 heads; cannot prune 3"):
        prune_heads(model, {2: [0, 1, 2]})
    with pytest.raises(ConfigError, match=r"layer 2 has no heads \[1\]"):
        prune_heads(model, {2: [1]})
    with pytest.raises(ConfigError, match="layer 7"):
        prune_heads(model, {7: [0]})
    with pytest.raises(ConfigError, match="cannot prune 13 heads"):
        plan_head_pruning(importance, 13)


def test_albert_is_refused_with_a_clear_message():
    from bertology.models.albert import AlbertConfig, AlbertModel

    model = AlbertModel(AlbertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=48, embedding_size=16))
    with pytest.raises(ConfigError, match="share parameters across depth"):
        prune_heads(model, {0: [1]})
    with pytest.raises(ConfigError, match="ALBERT shares its layers"):
        AlbertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, pruned_heads={0: [1]})


def test_config_checks_the_pruning_fields():
    with pytest.raises(ConfigError, match="'pruned_heads' names layer 5"):
        _config(pruned_heads={5: [0]})
    with pytest.raises(ConfigError, match="distinct indices in 0..3"):
        _config(pruned_heads={"0": [4]})
    with pytest.raises(ConfigError, match="one width >= 0 per layer"):
        _config(intermediate_sizes=[4, 4])
    config = BertConfig.from_dict({**_config().to_dict(), "pruned_heads": {"1": [3, 0]}})
    assert config.pruned_heads == {1: [0, 3]} and config.heads_of(1) == [1, 2]
    assert "pruned_heads" not in _config().to_dict() and "intermediate_sizes" not in _config().to_dict()


# ----------------------------------------------------------------------------------------- neurons
def test_neuron_pruning_equals_zeroed_neurons_and_saves_at_its_new_size(tmp_path):
    model = _bert()
    scores = neuron_importance(model, method="magnitude")
    plan = plan_neuron_pruning(scores, 0.25)
    assert [len(v) for v in plan.values()] == [12, 12, 12]
    plan[1] = list(range(48))[:47]  # a layer left with one neuron
    ids, mask = _inputs()
    with torch.no_grad(), mask_neurons(model, plan):
        zeroed = model(ids, mask).last_hidden_state
    prune_neurons(model, plan)
    assert model.config.intermediate_sizes == [36, 1, 36]
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask).last_hidden_state, zeroed, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path / "n")
    loaded = BertModel.from_pretrained(tmp_path / "n")
    assert loaded.encoder.layers[1].ffn.up.weight.shape == (1, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask).last_hidden_state, zeroed, atol=1e-5, rtol=0)
        torch.testing.assert_close(padded_copy(loaded)(ids, mask).last_hidden_state, zeroed, atol=1e-5, rtol=0)


def test_gradient_neuron_importance_and_its_errors():
    model = _task_model()
    scores = neuron_importance(model, _batches(1))
    assert [s.shape for s in scores] == [(48,)] * 3 and all((s >= 0).all() for s in scores)
    with pytest.raises(ConfigError, match="layer 0 has 48 feed-forward neurons; cannot prune \\[48\\]"):
        prune_neurons(model, {0: [48]})
    with pytest.raises(ConfigError, match="needs batches"):
        neuron_importance(model)


# ------------------------------------------------------------------------------------------ layers
def test_layer_specs():
    assert layers_to_keep("top:1", 4) == [0, 1, 2]
    assert layers_to_keep("bottom:2", 4) == [2, 3]
    assert layers_to_keep("every-other", 5) == [0, 2, 4]
    assert layers_to_keep("1,3", 4) == [0, 2]
    for bad, message in (("top:4", "has 4 layers"), ("0,1,2,3", "every layer"), ("7", "do not exist"),
                         ("middle", "use top:N")):
        with pytest.raises(ConfigError, match=message):
            layers_to_keep(bad, 4)


def test_dropping_layers_of_a_pruned_task_model_keeps_its_layers_and_head():
    model = _task_model()
    prune_heads(model, {2: [0]})
    prune_neurons(model, {0: [1, 2]})
    smaller = drop_layers(model, "1")
    assert smaller.encoder.config.num_hidden_layers == 2
    assert smaller.encoder.config.pruned_heads == {1: [0]} and smaller.encoder.config.intermediate_sizes == [46, 48]
    assert model.encoder.config.num_hidden_layers == 3, "the original is left as it was"
    batch = _batches(1)[0]
    # the same as running the kept layers of the original by hand
    enc = model.encoder
    with torch.no_grad():
        hidden = enc(batch["input_ids"], batch["attention_mask"], unpad=False, output_hidden_states=True)
        from bertology.models.attention import Padding

        padding = Padding.from_mask(batch["attention_mask"], 3, 10, False)
        x = hidden.hidden_states[0]
        for i in (0, 2):
            x = enc.encoder.layers[i](x, padding)[0]
        expected = model.heads["cls"].linear(enc.pooler(x))
        got = smaller(**batch).outputs["logits"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    plain = drop_layers(_bert(), "every-other")
    assert plain.config.num_hidden_layers == 2
