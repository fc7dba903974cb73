"""Distillation losses against hand computations: each value is recomputed here with explicit Python loops
over examples, positions, heads and units (not with the vectorised code under test)."""

from __future__ import annotations

import math

import pytest
import torch

from bertology import BertConfig, BertModel
from bertology.compression.distillation import (
    DISTILLATION_LOSSES,
    AttentionLoss,
    AttentionLossOptions,
    CosineLoss,
    CosineLossOptions,
    DistilBertSoftLoss,
    DistilBertSoftOptions,
    EmbeddingLoss,
    EmbeddingLossOptions,
    HiddenLoss,
    HiddenLossOptions,
    PredictionLoss,
    PredictionLossOptions,
    Views,
    build_losses,
    combined,
    for_stage,
    layer_map,
)
from bertology.errors import ConfigError
from bertology.utils.typed import Where


def config(layers: int = 2, hidden: int = 8, heads: int | None = None, vocab: int = 11) -> BertConfig:
    """A config for its sizes only (the losses read widths, depths, head counts and the vocabulary)."""
    heads = heads if heads is not None else (2 if hidden % 2 == 0 else 1)
    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=2 * hidden, max_position_embeddings=16)


#: two sequences of length 4: the first has 3 real tokens, the second 2
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])


def hidden_states(layers: int, width: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 4, width, generator=g) for _ in range(layers + 1))


def scores(layers: int, heads: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, heads, 4, 4, generator=g) for _ in range(layers))


def real(mask: torch.Tensor) -> list[tuple[int, int]]:
    return [(b, s) for b in range(mask.shape[0]) for s in range(mask.shape[1]) if mask[b, s]]


def project(weight: torch.Tensor, x: list[float]) -> list[float]:
    """x W^T with loops: out_j = sum_k W[j][k] x_k."""
    w = weight.tolist()
    return [sum(w[j][k] * x[k] for k in range(len(x))) for j in range(len(w))]


def hand_mse_tokens(weight: torch.Tensor, hs: torch.Tensor, ht: torch.Tensor, mask: torch.Tensor) -> float:
    total, count = 0.0, 0
    for b, s in real(mask):
        p = project(weight, hs[b, s].tolist())
        t = ht[b, s].tolist()
        for j in range(len(t)):
            total += (p[j] - t[j]) ** 2
            count += 1
    return total / count


def randomize(module: torch.nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()


# ------------------------------------------------------------------------------------------------ embedding
def test_embedding_loss_by_hand() -> None:
    s_cfg, t_cfg = config(hidden=3), config(hidden=5)
    loss = EmbeddingLoss(EmbeddingLossOptions(), s_cfg, t_cfg)
    randomize(loss, 0)
    hs, ht = hidden_states(2, 3, 1), hidden_states(2, 5, 2)
    value = loss(Views(hidden_states=hs), Views(hidden_states=ht), {"attention_mask": MASK})
    assert value.dtype == torch.float32 and value.dim() == 0
    assert value.item() == pytest.approx(hand_mse_tokens(loss.projection.weight, hs[0], ht[0], MASK), rel=1e-5)
    # padding does not count: other values there leave the loss as it was
    hs2, ht2 = [h.clone() for h in hs], [h.clone() for h in ht]
    hs2[0][0, 3], ht2[0][1, 2:] = 100.0, -50.0
    again = loss(Views(hidden_states=tuple(hs2)), Views(hidden_states=tuple(ht2)), {"attention_mask": MASK})
    assert again.item() == pytest.approx(value.item(), rel=1e-6)


def test_projection_starts_norm_preserving() -> None:
    same = EmbeddingLoss(EmbeddingLossOptions(), config(hidden=4), config(hidden=4))
    assert torch.equal(same.projection.weight, torch.eye(4))
    torch.manual_seed(0)
    wider = EmbeddingLoss(EmbeddingLossOptions(), config(hidden=4), config(hidden=6))
    w = wider.projection.weight
    assert w.shape == (6, 4) and w.requires_grad
    assert torch.allclose(w.T @ w, torch.eye(4), atol=1e-5)  # orthonormal columns
    assert wider.projection.bias is None


# ------------------------------------------------------------------------------------------------ hidden
@pytest.mark.parametrize("shared", [True, False])
def test_hidden_loss_by_hand(shared: bool) -> None:
    s_cfg, t_cfg = config(layers=2, hidden=3), config(layers=4, hidden=5)
    lm = layer_map([3, 1], 2, 4)
    options = HiddenLossOptions(shared=shared, layer_weights=[0.5, 2.0])
    loss = HiddenLoss(options, s_cfg, t_cfg, lm)
    assert len(loss.projections) == (1 if shared else 2)
    assert (loss.projection(1) is loss.projection(2)) == shared
    randomize(loss, 3)
    hs, ht = hidden_states(2, 3, 4), hidden_states(4, 5, 5)
    value = loss(Views(hidden_states=hs), Views(hidden_states=ht), {"attention_mask": MASK})
    expected = 0.0
    for m, n, lam in [(1, 3, 0.5), (2, 1, 2.0)]:  # g(1) = 3, g(2) = 1
        weight = loss.projections[0 if shared else m - 1].weight
        expected += lam * hand_mse_tokens(weight, hs[m], ht[n], MASK)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_hidden_shared_projection_gets_every_layers_gradient() -> None:
    s_cfg, t_cfg = config(layers=2, hidden=3), config(layers=2, hidden=5)
    hs, ht = hidden_states(2, 3, 6), hidden_states(2, 5, 7)
    batch = {"attention_mask": MASK}
    torch.manual_seed(0)
    shared = HiddenLoss(HiddenLossOptions(shared=True), s_cfg, t_cfg, layer_map("bottom", 2, 2))
    torch.manual_seed(0)
    separate = HiddenLoss(HiddenLossOptions(shared=False), s_cfg, t_cfg, layer_map("bottom", 2, 2))
    with torch.no_grad():
        separate.projections[1].weight.copy_(separate.projections[0].weight)
    shared(Views(hidden_states=hs), Views(hidden_states=ht), batch).backward()
    separate(Views(hidden_states=hs), Views(hidden_states=ht), batch).backward()
    # the same start: the shared matrix's gradient is the sum of the per-layer ones
    per_layer = separate.projections[0].weight.grad + separate.projections[1].weight.grad
    assert torch.allclose(shared.projections[0].weight.grad, per_layer, atol=1e-6)
    assert separate.projections[0].weight.grad.abs().sum() > 0 and separate.projections[1].weight.grad.abs().sum() > 0


def test_layer_weights_must_fit_the_student() -> None:
    with pytest.raises(ConfigError, match="'layer_weights' has 3 entries but the student has 2 mapped layers"):
        HiddenLoss(HiddenLossOptions(layer_weights=[1.0, 1.0, 1.0]), config(layers=2), config(layers=4))


def test_layer_map_must_fit_the_configs() -> None:
    with pytest.raises(ConfigError, match="3-layer student and a 6-layer teacher, but the configs have 2 and 4"):
        HiddenLoss(HiddenLossOptions(), config(layers=2), config(layers=4), layer_map("uniform", 3, 6))


def test_default_map_is_uniform() -> None:
    loss = HiddenLoss(HiddenLossOptions(), config(layers=2), config(layers=4))
    assert loss.map.intermediate == [(1, 2), (2, 4)]


# ------------------------------------------------------------------------------------------------ attention
def hand_attention(ss: torch.Tensor, st: torch.Tensor, mask: torch.Tensor, mean_heads: bool) -> float:
    """(1/h) sum_i MSE_i, each MSE over the (query, key) pairs of the batch with both real."""
    a_s, a_t = ss.tolist(), st.tolist()
    heads_s, heads_t = len(a_s[0]), len(a_t[0])
    if mean_heads:
        a_s = [[[[sum(a_s[b][i][q][k] for i in range(heads_s)) / heads_s for k in range(4)] for q in range(4)]]
               for b in range(2)]
        a_t = [[[[sum(a_t[b][i][q][k] for i in range(heads_t)) / heads_t for k in range(4)] for q in range(4)]]
               for b in range(2)]
    heads = len(a_s[0])
    per_head = []
    for i in range(heads):
        total, count = 0.0, 0
        for b in range(2):
            for q in range(4):
                for k in range(4):
                    if mask[b, q] and mask[b, k]:
                        total += (a_s[b][i][q][k] - a_t[b][i][q][k]) ** 2
                        count += 1
        per_head.append(total / count)
    return sum(per_head) / heads


def test_attention_loss_by_hand_excludes_padding() -> None:
    s_cfg, t_cfg = config(layers=2, heads=2), config(layers=4, heads=2)
    lm = layer_map("uniform", 2, 4)  # g(1) = 2, g(2) = 4
    loss = AttentionLoss(AttentionLossOptions(layer_weights=[1.0, 3.0]), s_cfg, t_cfg, lm)
    ss, st = scores(2, 2, 8), scores(4, 2, 9)
    batch = {"attention_mask": MASK}
    value = loss(Views(attention_scores=ss), Views(attention_scores=st), batch)
    expected = hand_attention(ss[0], st[1], MASK, False) + 3.0 * hand_attention(ss[1], st[3], MASK, False)
    assert value.item() == pytest.approx(expected, rel=1e-5)

    # scores where the query or the key is padding change nothing, even infinite ones (what a mask adds)
    ss2 = tuple(s.clone() for s in ss)
    st2 = tuple(s.clone() for s in st)
    for t in (*ss2, *st2):
        t[0, :, 3, :] = 1e4
        t[0, :, :, 3] = -float("inf")
        t[1, :, 2:, :] = torch.randn(2, 2, 4)
        t[1, :, :, 2:] = -1e9
    ss2 = tuple(s.requires_grad_() for s in ss2)
    again = loss(Views(attention_scores=ss2), Views(attention_scores=st2), batch)
    assert again.item() == pytest.approx(value.item(), rel=1e-6)
    again.backward()
    assert all(torch.isfinite(s.grad).all() for s in ss2)
    assert ss2[0].grad[0, :, 3].abs().sum() == 0 and ss2[0].grad[0, :, :, 3].abs().sum() == 0

    # counting padded pairs (as zeroed scores would) gives another value
    full = loss(Views(attention_scores=ss), Views(attention_scores=st), {"attention_mask": torch.ones(2, 4)})
    assert full.item() != pytest.approx(value.item(), rel=1e-3)


def test_attention_head_mismatch_refused() -> None:
    with pytest.raises(ConfigError, match="student has 2 attention heads and the teacher 4; use heads: mean"):
        AttentionLoss(AttentionLossOptions(heads="match"), config(heads=2), config(layers=4, heads=4))


def test_attention_mean_over_heads_by_hand() -> None:
    s_cfg, t_cfg = config(layers=2, heads=2), config(layers=2, heads=4)
    loss = AttentionLoss(AttentionLossOptions(heads="mean"), s_cfg, t_cfg, layer_map("top", 2, 2))
    ss, st = scores(2, 2, 10), scores(2, 4, 11)
    value = loss(Views(attention_scores=ss), Views(attention_scores=st), {"attention_mask": MASK})
    expected = sum(hand_attention(ss[i], st[i], MASK, True) for i in range(2))
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_attention_heads_option_checked_at_parse() -> None:
    where = Where("run.yaml", ("distill",))
    with pytest.raises(ConfigError, match=r"^run.yaml: distill.attention: field 'heads' must be one of .*'mean'\?"):
        build_losses({"attention": {"heads": "meen"}}, config(), config(), where=where)


# ------------------------------------------------------------------------------------------------ prediction
def hand_soft_ce(zs: list[list[float]], zt: list[list[float]], t: float) -> float:
    total = 0.0
    for row_s, row_t in zip(zs, zt, strict=True):
        norm_t = sum(math.exp(v / t) for v in row_t)
        log_norm_s = math.log(sum(math.exp(v / t) for v in row_s))
        total += -sum(math.exp(vt / t) / norm_t * (vs / t - log_norm_s) for vs, vt in zip(row_s, row_t, strict=True))
    return total / len(zs)


def test_prediction_loss_temperature_by_hand() -> None:
    torch.manual_seed(12)
    zs, zt = torch.randn(3, 5), torch.randn(3, 5) * 3
    views = Views(logits=zs), Views(logits=zt)
    cfg = config(vocab=11)
    at2 = PredictionLoss(PredictionLossOptions(temperature=2.0), cfg, cfg)(*views, {})
    assert at2.item() == pytest.approx(hand_soft_ce(zs.tolist(), zt.tolist(), 2.0), rel=1e-5)
    at1 = PredictionLoss(PredictionLossOptions(), cfg, cfg)(*views, {})
    assert at1.item() == pytest.approx(hand_soft_ce(zs.tolist(), zt.tolist(), 1.0), rel=1e-5)
    assert at1.item() != pytest.approx(at2.item(), rel=1e-3)
    scaled = PredictionLoss(PredictionLossOptions(temperature=2.0, scale_by_t_squared=True), cfg, cfg)(*views, {})
    assert scaled.item() == pytest.approx(4 * at2.item(), rel=1e-6)


def test_prediction_loss_token_level_counts_real_positions() -> None:
    torch.manual_seed(13)
    zs, zt = torch.randn(2, 4, 5), torch.randn(2, 4, 5)
    cfg = config()
    loss = PredictionLoss(PredictionLossOptions(temperature=1.5), cfg, cfg)
    value = loss(Views(logits=zs), Views(logits=zt), {"attention_mask": MASK})
    rows = real(MASK)
    expected = hand_soft_ce([zs[b, s].tolist() for b, s in rows], [zt[b, s].tolist() for b, s in rows], 1.5)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    positions = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0]])
    at = loss(Views(logits=zs), Views(logits=zt), {"attention_mask": MASK, "positions": positions})
    expected = hand_soft_ce([zs[0, 1].tolist(), zs[1, 0].tolist()], [zt[0, 1].tolist(), zt[1, 0].tolist()], 1.5)
    assert at.item() == pytest.approx(expected, rel=1e-5)


def test_vocab_mismatch_refused_for_soft_targets_over_the_vocabulary() -> None:
    with pytest.raises(ConfigError, match="the student's vocabulary has 11 tokens and the teacher's 13"):
        build_losses({"distilbert_soft": None}, config(vocab=11), config(vocab=13))
    # a task's prediction loss compares label sets, not vocabularies: a pruned student's is smaller
    assert "prediction" in build_losses({"prediction": None}, config(vocab=11), config(vocab=13))


def test_logit_width_mismatch_refused() -> None:
    cfg = config()
    loss = PredictionLoss(PredictionLossOptions(), cfg, cfg)
    with pytest.raises(ValueError, match="the student's logits have 3, the teacher's 4"):
        loss(Views(logits=torch.zeros(2, 3)), Views(logits=torch.zeros(2, 4)), {})


# ------------------------------------------------------------------------------------------------ DistilBERT
def test_distilbert_soft_by_hand() -> None:
    torch.manual_seed(14)
    zs, zt = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    cfg = config(vocab=6)
    loss = DistilBertSoftLoss(DistilBertSoftOptions(), cfg, cfg)  # T = 2
    positions = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0]])
    value = loss(Views(logits=zs), Views(logits=zt), {"attention_mask": MASK, "positions": positions})
    t, total, picked = 2.0, 0.0, [(0, 1), (0, 2), (1, 0)]
    for b, s in picked:
        ps = [math.exp(v / t) for v in zs[b, s].tolist()]
        pt = [math.exp(v / t) for v in zt[b, s].tolist()]
        ps, pt = [p / sum(ps) for p in ps], [p / sum(pt) for p in pt]
        total += sum(q * math.log(q / p) for p, q in zip(ps, pt, strict=True))
    assert value.item() == pytest.approx(total / len(picked) * t * t, rel=1e-5)
    # without positions it reads the real tokens; a perfect student scores 0
    same = loss(Views(logits=zt), Views(logits=zt), {"attention_mask": MASK})
    assert same.item() == pytest.approx(0.0, abs=1e-6)


def test_cosine_by_hand() -> None:
    cfg = config(hidden=5)
    loss = CosineLoss(CosineLossOptions(), cfg, cfg)
    hs, ht = hidden_states(2, 5, 15), hidden_states(2, 5, 16)
    value = loss(Views(hidden_states=hs), Views(hidden_states=ht), {"attention_mask": MASK})
    total = 0.0
    for b, s in real(MASK):
        u, v = hs[-1][b, s].tolist(), ht[-1][b, s].tolist()
        dot = sum(x * y for x, y in zip(u, v, strict=True))
        total += 1 - dot / (math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v)))
    assert value.item() == pytest.approx(total / len(real(MASK)), rel=1e-5)


def test_cosine_width_mismatch_refused() -> None:
    with pytest.raises(ConfigError, match="student's hidden_size is 8 and the teacher's 16"):
        CosineLoss(CosineLossOptions(), config(hidden=8), config(hidden=16))


# ------------------------------------------------------------------------------------------------ wiring
def test_missing_outputs_named() -> None:
    cfg = config()
    loss = AttentionLoss(AttentionLossOptions(), cfg, cfg)
    with pytest.raises(ValueError, match="needs the student's attention_scores; .*output_attention_scores=True"):
        loss(Views(hidden_states=hidden_states(2, 8, 0)), Views(attention_scores=scores(2, 2, 0)), {})
    hidden = HiddenLoss(HiddenLossOptions(), cfg, cfg)
    with pytest.raises(ValueError, match="needs the teacher's hidden_states"):
        hidden(Views(hidden_states=hidden_states(2, 8, 0)), Views(), {})
    with pytest.raises(ValueError, match="expected 3 hidden states from the teacher"):
        hidden(Views(hidden_states=hidden_states(2, 8, 0)), Views(hidden_states=hidden_states(1, 8, 0)), {})


def test_build_losses_names_and_suggests() -> None:
    cfg = config()
    with pytest.raises(ConfigError, match=r"unknown distillation loss 'hiden'; did you mean 'hidden'\?"):
        build_losses({"hiden": {}}, cfg, cfg)
    with pytest.raises(ConfigError, match=r"run.yaml: losses.hidden: unknown field 'shard'; did you mean 'shared'"):
        build_losses({"hidden": {"shard": False}}, cfg, cfg, where=Where("run.yaml", ("losses",)))
    with pytest.raises(ConfigError, match="field 'weight' must be >= 0"):
        build_losses({"cosine": {"weight": -1}}, cfg, cfg)
    assert set(DISTILLATION_LOSSES) >= {"embedding", "hidden", "attention", "prediction", "distilbert_soft",
                                        "cosine"}


def test_stages_and_combined_total() -> None:
    cfg = config()
    losses = build_losses({"embedding": None, "hidden": {"weight": 2.0}, "attention": {}, "prediction": {},
                           "cosine": {"weight": 0.5}}, cfg, cfg, layer_map("bottom", 2, 2))
    assert {n: m.stage for n, m in losses.items()} == {"embedding": "intermediate", "hidden": "intermediate",
                                                        "attention": "intermediate", "prediction": "prediction",
                                                        "cosine": "any"}
    assert set(for_stage(losses, "intermediate")) == {"embedding", "hidden", "attention", "cosine"}
    assert set(for_stage(losses, "prediction")) == {"prediction", "cosine"}
    torch.manual_seed(17)
    student = Views(hidden_states=hidden_states(2, 8, 1), attention_scores=scores(2, 2, 2), logits=torch.randn(2, 11))
    teacher = Views(hidden_states=hidden_states(2, 8, 3), attention_scores=scores(2, 2, 4), logits=torch.randn(2, 11))
    batch = {"attention_mask": MASK}
    total, parts = combined(losses, student, teacher, batch, stage="intermediate")
    assert set(parts) == {"embedding", "hidden", "attention", "cosine"}
    weights = {"embedding": 1.0, "hidden": 2.0, "attention": 1.0, "cosine": 0.5}
    assert total.item() == pytest.approx(sum(weights[n] * parts[n].item() for n in parts), rel=1e-6)
    assert total.requires_grad and not any(p.requires_grad for p in parts.values())
    everything, parts = combined(losses, student, teacher, batch)
    assert set(parts) == set(losses)


def test_tiny_teacher_and_student_end_to_end() -> None:
    torch.manual_seed(0)
    teacher = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                   intermediate_size=64, max_position_embeddings=16)).eval()
    student = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=16))
    input_ids = torch.randint(1, 50, (3, 7))
    attention_mask = torch.ones(3, 7, dtype=torch.long)
    attention_mask[1, 5:] = 0
    attention_mask[2, 3:] = 0
    input_ids[attention_mask == 0] = 0
    lm = layer_map("uniform", 2, 4)
    losses = build_losses({"embedding": {}, "attention": {"heads": "mean"}, "hidden": {"shared": True}},
                          student.config, teacher.config, lm)
    with torch.no_grad():
        t_out = teacher(input_ids, attention_mask, output_hidden_states=True, output_attention_scores=True)
    s_out = student(input_ids, attention_mask, output_hidden_states=True, output_attention_scores=True)
    total, parts = combined(losses, Views.of(s_out), Views.of(t_out), {"attention_mask": attention_mask},
                            stage="intermediate")
    assert set(parts) == {"embedding", "attention", "hidden"}
    assert all(torch.isfinite(p) and p > 0 for p in parts.values())
    total.backward()
    for name, p in student.named_parameters():
        if name.startswith("pooler."):  # the pooler is not distilled here
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert losses["hidden"].projection(1).weight.grad.abs().sum() > 0
    assert losses["embedding"].projection.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
