"""How far two sets of predictions lie apart: the divergences SMART's smoothness term is made of.

Each task kind picks the one that fits its head (see ``TaskKind.divergence``); these are the pieces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["symmetric_bernoulli_kl", "symmetric_kl"]


def symmetric_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) + KL(q || p)`` of the softmax distributions over the last dimension, averaged over rows.

    Each direction treats its target as a constant (as SMART's reference code does), so the gradient
    of each term reaches only the logits in its ``log_softmax``.
    """
    p_logits, q_logits = p_logits.float(), q_logits.float()
    p_logits = p_logits.reshape(-1, p_logits.shape[-1])
    q_logits = q_logits.reshape(-1, q_logits.shape[-1])

    def kl(target: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(inputs, -1), F.log_softmax(target.detach(), -1), reduction="batchmean",
                        log_target=True)

    return kl(p_logits, q_logits) + kl(q_logits, p_logits)


def symmetric_bernoulli_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Multi-label: the symmetric KL of independent Bernoulli labels, summed over labels, averaged over rows."""
    p_logits, q_logits = p_logits.float(), q_logits.float()

    def kl(target: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(target.detach())
        log_t, log_not_t = F.logsigmoid(target.detach()), F.logsigmoid(-target.detach())
        return (t * (log_t - F.logsigmoid(inputs)) + (1 - t) * (log_not_t - F.logsigmoid(-inputs))).sum(-1).mean()

    return kl(p_logits, q_logits) + kl(q_logits, p_logits)
