"""Helpers shared by the model tests: random perturbation, random batches, one tolerance."""

from __future__ import annotations

import torch

ATOL = 1e-5


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, what: str = "", real: torch.Tensor | None = None) -> None:
    """Same shape, and equal within ATOL (absolute) everywhere, or only where `real` (batch, seq) is true
    (a padded batch's default call packs real tokens and leaves zeros at padding, where transformers has
    values nobody should read)."""
    ours, theirs = ours.detach().float(), theirs.detach().float()
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
    if real is not None and ours.dim() >= 2 and ours.shape[:2] == real.shape:
        ours, theirs = ours[real.bool()], theirs[real.bool()]
    diff = (ours - theirs).abs().max().item() if ours.numel() else 0.0
    assert diff <= ATOL, f"{what}: max abs difference {diff:.3g} > {ATOL}"


@torch.no_grad()
def perturb_(model: torch.nn.Module, seed: int, scale: float = 0.1) -> torch.nn.Module:
    """Add noise to every parameter (LayerNorms and biases too), so that a swapped or dropped tensor in
    a name map changes the outputs instead of hiding behind ones/zeros initialisation."""
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model


def random_batch(vocab_size: int, type_vocab_size: int, batch: int, seq: int, seed: int,
                 padded: bool) -> dict[str, torch.Tensor]:
    """input_ids (no pad id at real positions), token_type_ids and an attention_mask whose first row is
    fully real and whose other rows end in zeros of different lengths when `padded`."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, vocab_size, (batch, seq), generator=gen)
    attention_mask = torch.ones(batch, seq, dtype=torch.long)
    if padded:
        for row in range(1, batch):
            length = max(2, seq - 2 * row - 1)
            attention_mask[row, length:] = 0
            input_ids[row, length:] = 0
    token_type_ids = torch.randint(0, max(type_vocab_size, 1), (batch, seq), generator=gen)
    token_type_ids = token_type_ids * attention_mask
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
