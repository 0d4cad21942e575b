"""LORE's objective: the K-L prototype-guided constraint (Eq. 10) and the total loss (Eq. 11)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kp_loss(latent: torch.Tensor, proto_true: torch.Tensor, proto_pred: torch.Tensor,
            wrong: torch.Tensor) -> torch.Tensor:
    """L_kp = −cos(Y, Â_t) + 1[t ≠ p] · cos(Y, Â_p)   (Eq. 10).

    latent Y: B, d; proto_true Â_t and proto_pred Â_p: B, d; wrong: B bool (t ≠ p).
    Batch reduction as the public code: the positive term is averaged over the batch, the
    negative term summed over the wrongly predicted samples and divided by the batch size.
    """
    positive = F.cosine_similarity(latent, proto_true, dim=-1)
    negative = F.cosine_similarity(latent, proto_pred, dim=-1) * wrong.to(latent.dtype)
    return (negative - positive).mean()


def total_loss(task: torch.Tensor, kp: torch.Tensor | None, weight: float) -> torch.Tensor:
    """L = L_task + λ L_kp   (Eq. 11)."""
    return task if kp is None else task + weight * kp
