"""FGM / PGD / Mixout: hand-computed perturbations, exact restores, the ball constraint, mixout's formula."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bertology.finetuning.regularizers import FGM, PGD, MixoutLinear, apply_mixout, mixout


def _embedding() -> nn.Embedding:
    emb = nn.Embedding(3, 2)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    return emb


def test_fgm_attack_by_hand_and_exact_restore() -> None:
    emb = _embedding()
    original = emb.weight.detach().clone()
    # loss = sum(c * W) has gradient c; ||c|| = sqrt(9 + 16) = 5.
    c = torch.tensor([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    (emb.weight * c).sum().backward()
    fgm = FGM(emb, epsilon=0.5)
    assert fgm.attack()
    expected = original + torch.tensor([[0.3, 0.0], [0.0, 0.4], [0.0, 0.0]])  # 0.5 * c / 5
    torch.testing.assert_close(emb.weight.detach(), expected)
    fgm.restore()
    assert torch.equal(emb.weight.detach(), original)
    assert emb.weight.grad is not None and torch.equal(emb.weight.grad, c)  # the gradient is untouched


@pytest.mark.parametrize("grad", [None, torch.zeros(3, 2), torch.full((3, 2), math.nan)])
def test_fgm_skips_unusable_gradients(grad: torch.Tensor | None) -> None:
    emb = _embedding()
    original = emb.weight.detach().clone()
    emb.weight.grad = grad
    fgm = FGM(emb, epsilon=1.0)
    assert not fgm.attack()
    assert torch.equal(emb.weight.detach(), original)
    fgm.restore()  # a no-op
    assert torch.equal(emb.weight.detach(), original)


def test_fgm_full_step_sequence_on_a_model() -> None:
    torch.manual_seed(0)
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 1)
    ids = torch.tensor([1, 2, 3])
    fgm = FGM(emb, epsilon=1.0)
    original = emb.weight.detach().clone()
    head(emb(ids)).pow(2).sum().backward()
    clean_grad = emb.weight.grad.clone()
    assert fgm.attack()
    delta = emb.weight.detach() - original
    torch.testing.assert_close(torch.linalg.vector_norm(delta), torch.tensor(1.0))
    assert torch.count_nonzero(delta[[0, 4, 5, 6, 7, 8, 9]]) == 0  # only looked-up rows move
    head(emb(ids)).pow(2).sum().backward()
    fgm.restore()
    assert torch.equal(emb.weight.detach(), original)
    assert not torch.equal(emb.weight.grad, clean_grad)  # the adversarial gradient was accumulated


def test_pgd_stays_in_the_ball_and_restores_exactly() -> None:
    torch.manual_seed(0)
    emb = nn.Embedding(6, 3)
    head = nn.Linear(3, 1)
    ids = torch.tensor([0, 2, 5])
    original = emb.weight.detach().clone()
    eps = 0.5
    pgd = PGD(emb, epsilon=eps, alpha=0.3, steps=4, params=[*emb.parameters(), *head.parameters()])

    def loss() -> torch.Tensor:
        return head(emb(ids)).pow(2).sum()

    loss().backward()
    pgd.backup_grad()
    clean = [p.grad.clone() for p in pgd.params]
    norms = []
    for t in range(pgd.steps):
        assert pgd.attack(first=(t == 0))
        norms.append(torch.linalg.vector_norm(emb.weight.detach() - original).item())
        if t != pgd.steps - 1:
            emb.zero_grad()
            head.zero_grad()
        else:
            pgd.restore_grad()
            assert all(torch.equal(p.grad, g) for p, g in zip(pgd.params, clean, strict=True))
        loss().backward()
    assert all(n <= eps + 1e-6 for n in norms)
    assert norms[0] == pytest.approx(0.3, abs=1e-6)  # first step is alpha, inside the ball
    assert norms[-1] == pytest.approx(eps, abs=1e-6)  # 4 * 0.3 > 0.5: the projection was active
    pgd.restore()
    assert torch.equal(emb.weight.detach(), original)


def test_pgd_projection_by_hand() -> None:
    emb = _embedding()
    original = emb.weight.detach().clone()
    pgd = PGD(emb, epsilon=0.5, alpha=0.4, steps=2)
    emb.weight.grad = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    assert pgd.attack(first=True)
    torch.testing.assert_close(
        emb.weight.detach() - original, torch.tensor([[0.4, 0.0], [0.0, 0.0], [0.0, 0.0]])
    )
    emb.weight.grad = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert pgd.attack()
    # r = (0.4, 0.4) in two coordinates, ||r|| = 0.4 * sqrt(2) > 0.5, scaled to 0.5.
    s = 0.5 / math.sqrt(2)
    torch.testing.assert_close(emb.weight.detach() - original, torch.tensor([[s, 0.0], [0.0, s], [0.0, 0.0]]))
    pgd.restore()
    assert torch.equal(emb.weight.detach(), original)


def test_pgd_requires_first_attack() -> None:
    emb = _embedding()
    emb.weight.grad = torch.ones(3, 2)
    with pytest.raises(RuntimeError, match="first=True"):
        PGD(emb).attack()


def _mixout_layer(p: float) -> tuple[MixoutLinear, nn.Linear]:
    gen = torch.Generator().manual_seed(1)
    plain = nn.Linear(3, 4)
    target = torch.randn(4, 3, generator=gen)  # differs from the weight, so mixing is visible
    reference = nn.Linear(3, 4)
    reference.load_state_dict(plain.state_dict())
    return MixoutLinear(plain, target, p), reference


def test_mixout_training_output_matches_hand_computation_with_the_same_mask() -> None:
    p = 0.4
    layer, _ = _mixout_layer(p)
    layer.train()
    layer.generator = torch.Generator().manual_seed(123)
    x = torch.randn(2, 3)
    out = layer(x)
    mask = torch.bernoulli(torch.full((4, 3), p), generator=torch.Generator().manual_seed(123))
    w, u = layer.weight.detach(), layer.target
    w_mix = (mask * u + (1 - mask) * w - p * u) / (1 - p)
    torch.testing.assert_close(out, x @ w_mix.T + layer.bias.detach())
    # The gradient reaches w only through the entries that were kept, scaled by 1 / (1 - p).
    x_grad = torch.ones(2, 4)
    out.backward(x_grad)
    torch.testing.assert_close(layer.weight.grad, (1 - mask) / (1 - p) * (x_grad.T @ x))


def test_mixout_eval_and_p_zero_are_the_plain_linear() -> None:
    x = torch.randn(5, 3)
    layer, reference = _mixout_layer(0.7)
    layer.eval()
    assert torch.equal(layer(x), reference(x))
    layer0, reference0 = _mixout_layer(0.0)
    layer0.train()
    assert torch.equal(layer0(x), reference0(x))


def test_mixout_towards_the_current_weight_is_the_identity() -> None:
    # With u = w the formula gives (w - p w) / (1 - p) = w whatever the mask: training starts unchanged.
    w = torch.randn(4, 3)
    torch.testing.assert_close(mixout(w, w.clone(), 0.5, training=True), w)


def test_mixout_mean_of_training_outputs_is_the_eval_output() -> None:
    # E[w_mix] = w. Per-draw output std here is ~1; with 20000 draws the standard error is ~0.01,
    # so a tolerance of 0.05 is about five standard errors.
    torch.manual_seed(0)
    layer, _ = _mixout_layer(0.3)
    x = torch.randn(1, 3)
    layer.eval()
    expected = layer(x).detach()
    layer.train()
    n = 20000
    with torch.no_grad():
        weights = torch.stack([mixout(layer.weight, layer.target, 0.3) for _ in range(n)])
        outputs = torch.einsum("noi,bi->nbo", weights, x) + layer.bias
        single = layer(x)
    assert single.shape == expected.shape
    torch.testing.assert_close(outputs.mean(0), expected, atol=0.05, rtol=0)


def test_mixout_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        MixoutLinear(nn.Linear(2, 2), None, 1.0)
    with pytest.raises(ValueError, match="shape"):
        MixoutLinear(nn.Linear(2, 2), torch.zeros(3, 2), 0.1)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4))
        self.norm = nn.LayerNorm(4)
        self.classifier = nn.Linear(4, 2)


def test_apply_mixout_counts_and_replaces_linears() -> None:
    model = _Tiny()
    keys = list(model.state_dict())
    params = [id(p) for p in model.parameters()]
    assert apply_mixout(model, 0.2) == 3
    assert all(isinstance(m, MixoutLinear) for m in (model.encoder[0], model.encoder[2], model.classifier))
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert list(model.state_dict()) == keys  # checkpoints still load
    assert [id(p) for p in model.parameters()] == params  # an existing optimizer still works
    torch.testing.assert_close(model.encoder[0].target, model.encoder[0].weight.detach())
    assert apply_mixout(model, 0.2) == 0  # already wrapped


def test_apply_mixout_skip_pattern_and_target_state() -> None:
    model = _Tiny()
    pretrained = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    assert apply_mixout(model, 0.1, target_state=pretrained, skip=r"^classifier") == 2
    assert type(model.classifier) is nn.Linear
    assert torch.equal(model.encoder[2].target, torch.zeros(4, 4))
    with pytest.raises(KeyError, match="classifier.weight"):
        apply_mixout(model, 0.1, target_state={})
