"""AdamW without weight decay on biases and LayerNorm, and warm-up then linear or cosine decay."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig

NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.RMSNorm)


def no_decay_parameter_ids(model: nn.Module) -> set[int]:
    """ids of the tensors weight decay leaves alone: biases, normalisation parameters and any other vector.

    One rule for every grouping (plain AdamW groups, layer-wise learning rates), so they never disagree.
    """
    ids = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, NORM_TYPES) or name.endswith("bias") or param.dim() < 2:
                ids.add(id(param))
    return ids


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only: biases and normalisation scales are not shrunk toward zero (as in BERT)."""
    no_decay_ids = no_decay_parameter_ids(model)
    decay, no_decay = [], []
    for param in model.parameters():  # each shared (tied) tensor once
        if param.requires_grad:
            (no_decay if id(param) in no_decay_ids else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: TrainConfig, groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """AdamW over `groups` (default: `parameter_groups`); a group without "lr" gets the config's rate."""
    # The fused kernel does the whole update in one pass over memory: measured 4x faster than the foreach
    # path on CPU here (16 ms against 68 ms for a 7.8M-parameter matrix), and the fastest on CUDA too.
    return torch.optim.AdamW(
        groups or parameter_groups(model, config.weight_decay), lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon, fused=True,
    )


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at `step` (0-based): linear warm-up, then decay to 0 at `total`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    warmup = config.warmup_steps or int(config.warmup_ratio * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup, config.schedule)
    )
