"""FGM, PGD, FreeLB and SMART as training-loop callbacks: each step's formula by hand on small tensors,
and the gradient the real Trainer hands to the optimizer, recomputed by hand from those formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bertology.errors import ConfigError
from bertology.finetuning.adversarial import (
    FGMCallback,
    FreeLBCallback,
    PGDCallback,
    SMARTCallback,
    freelb_ascent,
    freelb_init,
    prediction_divergence,
    smart_ascent,
    symmetric_kl,
    word_embedding,
)
from bertology.finetuning.regularization import build_adversarial
from bertology.training import TrainConfig
from bertology.training.callbacks import Callback
from bertology.training.protocol import StepOutput
from bertology.training.trainer import Trainer

# ----------------------------------------------------------------------------------- the formulas by hand


def test_symmetric_kl_by_hand() -> None:
    p_logits = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), 0.0]])  # p = (1/4, 3/4), (2/3, 1/3)
    q_logits = torch.tensor([[0.0, 0.0], [0.0, math.log(2.0)]])  # q = (1/2, 1/2), (1/3, 2/3)
    p = [(0.25, 0.75), (2 / 3, 1 / 3)]
    q = [(0.5, 0.5), (1 / 3, 2 / 3)]
    by_hand = sum(pi * math.log(pi / qi) + qi * math.log(qi / pi)
                  for pr, qr in zip(p, q, strict=True) for pi, qi in zip(pr, qr, strict=True)) / 2
    assert symmetric_kl(p_logits, q_logits).item() == pytest.approx(by_hand, rel=1e-6)
    assert symmetric_kl(q_logits, p_logits).item() == pytest.approx(by_hand, rel=1e-6)
    assert symmetric_kl(p_logits, p_logits).item() == pytest.approx(0.0, abs=1e-7)


def test_symmetric_kl_gradient_reaches_each_side_through_its_own_term() -> None:
    p = torch.tensor([[0.3, -0.2, 1.0]], requires_grad=True)
    q = torch.tensor([[0.1, 0.4, -0.5]], requires_grad=True)
    symmetric_kl(p, q).backward()
    # d/dq of KL(p_const || q) = softmax(q) - softmax(p); likewise for p with the roles swapped
    torch.testing.assert_close(q.grad, F.softmax(q, -1).detach() - F.softmax(p, -1).detach())
    torch.testing.assert_close(p.grad, F.softmax(p, -1).detach() - F.softmax(q, -1).detach())


def test_freelb_ascent_by_hand() -> None:
    mask = torch.tensor([[[1.0], [1.0], [0.0]]])  # two real tokens, one pad
    delta = torch.zeros(1, 3, 2)
    grad = torch.tensor([[[3.0, 0.0], [0.0, 4.0], [9.0, 9.0]]])  # the pad's gradient is ignored
    step = freelb_ascent(delta, grad, mask, adv_lr=0.5, max_norm=0.0)
    torch.testing.assert_close(step, torch.tensor([[[0.3, 0.0], [0.0, 0.4], [0.0, 0.0]]]))  # 0.5 * g / 5
    # a second step of the same size doubles it; max_norm 0.6 then shrinks the norm-1.0 delta to 0.6
    bounded = freelb_ascent(step, grad, mask, adv_lr=0.5, max_norm=0.6)
    torch.testing.assert_close(bounded, torch.tensor([[[0.36, 0.0], [0.0, 0.48], [0.0, 0.0]]]))
    # a delta inside the bound is left alone
    torch.testing.assert_close(freelb_ascent(step, grad, mask, adv_lr=0.5, max_norm=5.0), 2 * step)


def test_freelb_ascent_normalises_each_example_separately() -> None:
    mask = torch.ones(2, 1, 1)
    grad = torch.tensor([[[1.0]], [[100.0]]])
    step = freelb_ascent(torch.zeros(2, 1, 1), grad, mask, adv_lr=0.1, max_norm=0.0)
    torch.testing.assert_close(step, torch.full((2, 1, 1), 0.1))


def test_freelb_init_by_hand() -> None:
    mask = torch.tensor([[[1.0], [1.0], [0.0]], [[1.0], [0.0], [0.0]]])
    assert torch.equal(freelb_init(mask, 4, 0.0), torch.zeros(2, 3, 4))
    generator = torch.Generator().manual_seed(3)
    delta = freelb_init(mask, 4, 2.0, generator)
    uniform = torch.rand((2, 3, 4), generator=torch.Generator().manual_seed(3)) * 2 - 1
    scale = torch.tensor([2.0 / math.sqrt(2 * 4), 2.0 / math.sqrt(1 * 4)]).view(2, 1, 1)
    torch.testing.assert_close(delta, uniform * mask * scale)
    assert torch.count_nonzero(delta[0, 2]) == 0 and torch.count_nonzero(delta[1, 1:]) == 0


def test_smart_ascent_by_hand() -> None:
    noise = torch.tensor([[[0.0, 0.5e-5, -0.5e-5]]])
    grad = torch.tensor([[[2.0, -4.0, 1.0]]])  # ||g||_inf = 4 for this token
    step = smart_ascent(noise, grad, step_size=1e-5, epsilon=1e-5)
    expected = torch.tensor([[[0.5e-5, 0.5e-5 - 1e-5, -0.5e-5 + 0.25e-5]]]).clamp(-1e-5, 1e-5)
    torch.testing.assert_close(step, expected)
    big = smart_ascent(noise, grad, step_size=1.0, epsilon=1e-5)  # projected back into the box
    assert big.abs().max().item() == pytest.approx(1e-5)


# ----------------------------------------------------------------------------- a tiny model and the loop


class Tiny(nn.Module):
    """Word embedding, mean over real tokens, linear classifier: small enough to recompute by hand."""

    def __init__(self, seed: int = 0, outputs: int = 3) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embeddings = nn.Module()
        self.embeddings.word = nn.Embedding(7, 4, padding_idx=0)
        self.classifier = nn.Linear(4, outputs)

    def logits(self, input_ids: torch.Tensor, embedded: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embeddings.word(input_ids) if embedded is None else embedded
        mask = (input_ids != 0).float().unsqueeze(-1)
        return self.classifier((x * mask).sum(1) / mask.sum(1))

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        logits = self.logits(input_ids)
        loss = F.mse_loss(logits.squeeze(-1), labels.float()) if logits.shape[-1] == 1 else \
            F.cross_entropy(logits, labels)
        return StepOutput({"loss": loss}, outputs={"logits": logits})


IDS = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 1, 2, 5]])
LABELS = torch.tensor([0, 2, 1])


class Record(Callback):
    """Keeps the gradient the optimizer is about to use (and the loss terms of the step)."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}
        self.losses: dict[str, float] = {}

    def extra_losses(self, trainer, batch, out):
        self.losses = {k: float(v.detach()) for k, v in out.losses.items()}
        return {}

    def before_optimizer_step(self, trainer) -> None:
        self.grads = {n: p.grad.detach().clone() for n, p in trainer.raw.named_parameters() if p.grad is not None}


def one_step(model: nn.Module, callback: Callback, tmp_path, labels: torch.Tensor = LABELS, **config) -> Record:
    record = Record()
    data = [{"input_ids": IDS[i], "labels": labels[i]} for i in range(len(IDS))]
    train = TrainConfig(max_steps=1, batch_size=len(data), shuffle=False, drop_last=False, max_grad_norm=None,
                        bf16=False, progress=False, plot=False, log_every=0, save_every=0, **config)
    collate = lambda items: {k: torch.stack([it[k] for it in items]) for k in items[0]}  # noqa: E731
    Trainer(model, data, train, tmp_path / "run", collate=collate, callbacks=[callback, record]).train()
    return record


def grads_at(model: Tiny, weight: torch.Tensor | None = None, delta: torch.Tensor | None = None) -> dict:
    """The parameter gradients of the loss with the embedding weights replaced or its outputs shifted."""
    model.zero_grad(set_to_none=True)
    if weight is not None:
        with torch.no_grad():
            model.embeddings.word.weight.copy_(weight)
    embedded = model.embeddings.word(IDS) + (0 if delta is None else delta)
    F.cross_entropy(model.logits(IDS, embedded), LABELS).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def add(*grads: dict, scale: float = 1.0) -> dict:
    return {n: scale * sum(g[n] for g in grads) for n in grads[0]}


def assert_grads(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name in actual:
        torch.testing.assert_close(actual[name], expected[name], msg=name)


def test_fgm_callback_adds_the_gradient_at_the_perturbed_weights(tmp_path) -> None:
    reference = Tiny()
    w0 = reference.embeddings.word.weight.detach().clone()
    clean = grads_at(reference)
    g = clean["embeddings.word.weight"]
    attacked = grads_at(reference, weight=w0 + 0.5 * g / g.norm())

    model, callback = Tiny(), FGMCallback(epsilon=0.5)
    record = one_step(model, callback, tmp_path, learning_rate=1e-9)
    assert_grads(record.grads, add(clean, attacked))
    assert callback.attacks == 1 and callback.skipped == 0
    assert torch.allclose(model.embeddings.word.weight, w0, atol=1e-7)  # restored, then a ~zero update


def test_pgd_callback_adds_the_gradient_of_the_last_projected_step(tmp_path) -> None:
    reference = Tiny()
    w0 = reference.embeddings.word.weight.detach().clone()
    clean = grads_at(reference)
    w, g = w0.clone(), clean["embeddings.word.weight"]
    for _ in range(2):  # steps 1 and 2 move and project; step 3's pass is the one that counts
        w = w + 0.4 * g / g.norm()
        r = w - w0
        w = w0 + r * min(1.0, 0.5 / r.norm().item())
        g = grads_at(reference, weight=w)["embeddings.word.weight"]
    w = w + 0.4 * g / g.norm()
    r = w - w0
    w = w0 + r * min(1.0, 0.5 / r.norm().item())
    last = grads_at(reference, weight=w)

    model, callback = Tiny(), PGDCallback(epsilon=0.5, alpha=0.4, steps=3)
    record = one_step(model, callback, tmp_path, learning_rate=1e-9)
    assert_grads(record.grads, add(clean, last))
    assert callback.attacks == 1


def test_freelb_callback_averages_the_gradient_over_its_ascent_steps(tmp_path) -> None:
    reference = Tiny()
    mask = (IDS != 0).float().unsqueeze(-1)
    delta = torch.zeros(3, 4, 4, requires_grad=True)
    per_step = []
    for _ in range(3):
        reference.zero_grad(set_to_none=True)
        embedded = reference.embeddings.word(IDS) + delta
        F.cross_entropy(reference.logits(IDS, embedded), LABELS).backward()
        per_step.append({n: p.grad.detach().clone() for n, p in reference.named_parameters()})
        grad = delta.grad * mask
        norm = grad.flatten(1).norm(dim=1).view(-1, 1, 1)
        delta = ((delta.detach() + 0.2 * grad / norm) * mask).requires_grad_()
    expected = add(*per_step, scale=1 / 3)

    record = one_step(Tiny(), FreeLBCallback(adv_steps=3, adv_lr=0.2), tmp_path)
    assert_grads(record.grads, expected)


def test_freelb_random_start_and_norm_bound_by_hand(tmp_path) -> None:
    reference = Tiny()
    mask = (IDS != 0).float().unsqueeze(-1)
    uniform = torch.rand((3, 4, 4), generator=torch.Generator().manual_seed(0)) * 2 - 1
    lengths = mask.sum(dim=(1, 2))
    delta = (uniform * mask * (1.0 / (lengths * 4).sqrt()).view(-1, 1, 1)).requires_grad_()
    per_step = []
    for _ in range(2):
        reference.zero_grad(set_to_none=True)
        F.cross_entropy(reference.logits(IDS, reference.embeddings.word(IDS) + delta), LABELS).backward()
        per_step.append({n: p.grad.detach().clone() for n, p in reference.named_parameters()})
        grad = delta.grad * mask
        step = (delta.detach() + 0.5 * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1)) * mask
        size = step.flatten(1).norm(dim=1).view(-1, 1, 1)
        delta = torch.where(size > 0.3, step * 0.3 / size, step).requires_grad_()
    record = one_step(Tiny(), FreeLBCallback(adv_steps=2, adv_lr=0.5, init_mag=1.0, max_norm=0.3), tmp_path)
    assert_grads(record.grads, add(*per_step, scale=1 / 2))


def test_freelb_with_gradient_accumulation_averages_only_its_own_micro_batch(tmp_path) -> None:
    """Two micro-batches of one example each: each is averaged over its steps, then they are summed."""
    reference = Tiny()
    expected = None
    for i in range(2):
        ids, labels = IDS[i:i + 1], LABELS[i:i + 1]
        mask = (ids != 0).float().unsqueeze(-1)
        delta = torch.zeros(1, 4, 4, requires_grad=True)
        for _ in range(2):
            reference.zero_grad(set_to_none=True)
            loss = F.cross_entropy(reference.logits(ids, reference.embeddings.word(ids) + delta), labels)
            (loss / 2 / 2).backward()  # / accumulation / steps
            step = {n: p.grad.detach().clone() for n, p in reference.named_parameters()}
            expected = step if expected is None else add(expected, step)
            grad = delta.grad * mask
            delta = ((delta.detach() + 0.2 * grad / grad.norm()) * mask).requires_grad_()

    record = Record()
    data = [{"input_ids": IDS[i], "labels": LABELS[i]} for i in range(2)]
    train = TrainConfig(max_steps=1, batch_size=1, gradient_accumulation=2, shuffle=False, max_grad_norm=None,
                        bf16=False, progress=False, plot=False, log_every=0)
    collate = lambda items: {k: torch.stack([it[k] for it in items]) for k in items[0]}  # noqa: E731
    Trainer(Tiny(), data, train, tmp_path / "run", collate=collate,
            callbacks=[FreeLBCallback(adv_steps=2, adv_lr=0.2), record]).train()
    assert_grads(record.grads, expected)


def test_smart_loss_is_the_symmetric_kl_at_the_noise_it_computes(tmp_path) -> None:
    reference = Tiny()
    with torch.no_grad():
        clean = reference.logits(IDS)
    mask = (IDS != 0).float().unsqueeze(-1)
    # the callback's own generator (seed 0) draws the starting noise
    noise = (torch.randn((3, 4, 4), generator=torch.Generator().manual_seed(0)) * 0.1).clamp(-0.1, 0.1) * mask
    noise.requires_grad_()
    probe = symmetric_kl(reference.logits(IDS, reference.embeddings.word(IDS) + noise), clean)
    (grad,) = torch.autograd.grad(probe, noise)
    top = grad.abs().amax(-1, keepdim=True).clamp(min=1e-12)  # a pad's gradient is zero
    noise = (noise.detach() + 0.05 * grad / top).clamp(-0.1, 0.1) * mask
    with torch.no_grad():
        perturbed = reference.logits(IDS, reference.embeddings.word(IDS) + noise)
    expected = 2.0 * symmetric_kl(perturbed, clean).item()

    callback = SMARTCallback(weight=2.0, epsilon=0.1, step_size=0.05, noise_std=0.1, steps=1)
    record = one_step(Tiny(), callback, tmp_path)
    assert record.losses["smart"] == pytest.approx(expected, rel=1e-5)
    assert expected > 0
    clean_loss = F.cross_entropy(clean, LABELS).item()
    assert record.losses["loss"] == pytest.approx(clean_loss, rel=1e-6)  # the noise is gone from the clean pass
    # the gradient flows through both the clean and the perturbed predictions
    reference.zero_grad(set_to_none=True)
    clean = reference.logits(IDS)
    perturbed = reference.logits(IDS, reference.embeddings.word(IDS) + noise)
    (F.cross_entropy(clean, LABELS) + 2.0 * symmetric_kl(perturbed, clean)).backward()
    assert_grads(record.grads, {n: p.grad for n, p in reference.named_parameters()})


def test_smart_uses_mse_for_regression(tmp_path) -> None:
    callback = SMARTCallback(weight=1.0, epsilon=0.1, step_size=0.05, noise_std=0.05, steps=0)
    reference = Tiny(outputs=1)
    mask = (IDS != 0).float().unsqueeze(-1)
    noise = (torch.randn((3, 4, 4), generator=torch.Generator().manual_seed(0)) * 0.05).clamp(-0.1, 0.1) * mask
    with torch.no_grad():
        clean = reference.logits(IDS)
        perturbed = reference.logits(IDS, reference.embeddings.word(IDS) + noise)
    record = one_step(Tiny(outputs=1), callback, tmp_path, labels=torch.tensor([0.5, -1.0, 2.0]))
    assert record.losses["smart"] == pytest.approx(F.mse_loss(perturbed, clean).item(), rel=1e-5)


def test_perturbation_hooks_leave_evaluation_and_later_runs_alone(tmp_path) -> None:
    model = Tiny()
    callback = FreeLBCallback(adv_steps=2, init_mag=5.0)
    callback.on_train_start(type("T", (), {"raw": model})())  # installed: a training forward is perturbed
    model.train()
    clean = Tiny().logits(IDS)
    assert not torch.allclose(model.logits(IDS), clean)
    model.eval()
    torch.testing.assert_close(model.logits(IDS), clean)  # evaluation never is
    callback.on_train_end(None)  # type: ignore[arg-type]
    model.train()
    torch.testing.assert_close(model.logits(IDS), clean)
    one_step(model, FreeLBCallback(adv_steps=2, init_mag=5.0), tmp_path)
    assert not model.embeddings.word._forward_hooks  # removed when the run ended


def test_hooks_are_removed_when_a_later_callback_fails_to_start(tmp_path) -> None:
    class Broken(Callback):
        def on_train_start(self, trainer) -> None:
            raise RuntimeError("broken callback")

    model = Tiny()
    data = [{"input_ids": IDS[i], "labels": LABELS[i]} for i in range(3)]
    train = TrainConfig(max_steps=1, batch_size=3, bf16=False, progress=False, plot=False, log_every=0)
    collate = lambda items: {k: torch.stack([it[k] for it in items]) for k in items[0]}  # noqa: E731
    with pytest.raises(RuntimeError, match="broken"):
        Trainer(model, data, train, tmp_path / "run", collate=collate,
                callbacks=[SMARTCallback(), Broken()]).train()
    assert not model.embeddings.word._forward_hooks


def test_fgm_with_gradient_accumulation_attacks_along_each_micro_batch_gradient(tmp_path) -> None:
    reference = Tiny()
    w0 = reference.embeddings.word.weight.detach().clone()
    expected = None
    for i in range(2):
        ids, labels = IDS[i:i + 1], LABELS[i:i + 1]

        def grads(weight: torch.Tensor, ids: torch.Tensor = ids, labels: torch.Tensor = labels) -> dict:
            reference.zero_grad(set_to_none=True)
            with torch.no_grad():
                reference.embeddings.word.weight.copy_(weight)
            (F.cross_entropy(reference.logits(ids), labels) / 2).backward()
            return {n: p.grad.detach().clone() for n, p in reference.named_parameters()}

        clean = grads(w0)
        g = clean["embeddings.word.weight"]
        both = add(clean, grads(w0 + 0.5 * g / g.norm()))
        expected = both if expected is None else add(expected, both)

    record = Record()
    data = [{"input_ids": IDS[i], "labels": LABELS[i]} for i in range(2)]
    train = TrainConfig(max_steps=1, batch_size=1, gradient_accumulation=2, shuffle=False, max_grad_norm=None,
                        bf16=False, progress=False, plot=False, log_every=0)
    collate = lambda items: {k: torch.stack([it[k] for it in items]) for k in items[0]}  # noqa: E731
    callback = FGMCallback(epsilon=0.5)
    Trainer(Tiny(), data, train, tmp_path / "run", collate=collate, callbacks=[callback, record]).train()
    assert_grads(record.grads, expected)
    assert callback.attacks == 2


def test_fgm_waits_for_gradual_unfreezing_to_thaw_the_embeddings(tmp_path) -> None:
    from bertology.finetuning.schedules import GradualUnfreezing

    model = Tiny()
    model.embeddings.word.weight.requires_grad_(False)
    callback = FGMCallback()
    trainer = type("T", (), {"raw": model, "callbacks": [GradualUnfreezing(), callback], "fsdp": False})()
    callback.on_train_start(trainer)  # no error: the embeddings thaw later
    assert callback.micro_batch_gradient() is None  # while frozen, each micro-batch is skipped


# ---------------------------------------------------------------------------- divergences per head kind


def test_divergence_for_tagging_ignores_padding_and_for_qa_compares_position_distributions() -> None:
    clean = torch.tensor([[[0.0, 1.0], [2.0, 0.0], [9.0, -9.0]]])  # (batch 1, seq 3, 2)
    moved = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [-9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])
    tagging = prediction_divergence("tagging", clean, moved, mask)
    # two real tokens: the first moved, the second did not; the pad's huge change is ignored
    by_hand = symmetric_kl(moved[0, :1], clean[0, :1]).item() / 2
    assert tagging.item() == pytest.approx(by_hand, rel=1e-6)
    qa = prediction_divergence("qa", clean, moved, mask)
    starts = symmetric_kl(moved[0, :2, 0].unsqueeze(0), clean[0, :2, 0].unsqueeze(0))
    ends = symmetric_kl(moved[0, :2, 1].unsqueeze(0), clean[0, :2, 1].unsqueeze(0))
    assert qa.item() == pytest.approx(((starts + ends) / 2).item(), rel=1e-4)


def test_divergence_for_multi_label_is_a_bernoulli_kl_per_label() -> None:
    p, q = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[math.log(3.0), 0.0]])  # sigmoid: 1/2, 3/4
    a, b = [0.5, 0.75], [0.75, 0.5]

    def bern(x: float, y: float) -> float:
        return x * math.log(x / y) + (1 - x) * math.log((1 - x) / (1 - y))

    by_hand = sum(bern(x, y) + bern(y, x) for x, y in zip(a, b, strict=True))
    value = prediction_divergence("classification", p, q, multi_label=True)
    assert value.item() == pytest.approx(by_hand, rel=1e-6)
    assert prediction_divergence("regression", p, q).item() == pytest.approx(F.mse_loss(q, p).item())


# ------------------------------------------------------------------------------------- config and errors


def test_registry_builds_by_name_and_names_bad_options() -> None:
    assert isinstance(build_adversarial("fgm", epsilon=0.5), FGMCallback)
    assert isinstance(build_adversarial("pgd", steps=2), PGDCallback)
    assert isinstance(build_adversarial("freelb", adv_steps=2), FreeLBCallback)
    assert isinstance(build_adversarial("smart", weight=1.0), SMARTCallback)
    with pytest.raises(ConfigError, match="unknown method 'vat'.*fgm"):
        build_adversarial("vat")
    with pytest.raises(ConfigError, match="adversarial pgd: unknown field 'stepz'; did you mean 'steps'"):
        build_adversarial("pgd", stepz=3)
    with pytest.raises(ConfigError, match="'steps'"):
        build_adversarial("pgd", steps=0)
    with pytest.raises(ConfigError, match="epsilon"):
        build_adversarial("fgm", epsilon=-1.0)


def test_weight_attacks_refuse_a_frozen_embedding(tmp_path) -> None:
    model = Tiny()
    model.embeddings.word.weight.requires_grad_(False)
    with pytest.raises(ConfigError, match="frozen.*freelb or smart"):
        one_step(model, FGMCallback(), tmp_path)
    record = one_step(model, FreeLBCallback(adv_steps=2), tmp_path / "b")  # perturbs outputs: works frozen
    assert "classifier.weight" in record.grads and "embeddings.word.weight" not in record.grads


def test_word_embedding_is_found_in_every_family() -> None:
    from bertology.models import AlbertConfig, AlbertModel, BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32))
    assert word_embedding(bert) is bert.embeddings.word
    albert = AlbertModel(AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32))
    assert word_embedding(albert).embedding_dim == 8
    with pytest.raises(ConfigError, match="embeddings.word"):
        word_embedding(nn.Linear(2, 2))
