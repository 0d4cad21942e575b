"""Knowledge-Locality Attention (KLA) — LORE paper Eq. 5–7.

Class knowledge queries the locality-enhanced patches:

    Q = q W_q,  K = Ê W_k,  V = Ê W_v                                                  (Eq. 5)
    A = softmax( φ_N( Q Kᵀ / √d ) ) V                                                  (Eq. 6)
    Â = BN( MLP(A) + A )                        — the K-L prototype, one per (image, class) (Eq. 7)

φ_N keeps the N largest scores of each row and sets the others to **0** (not −∞): after the
softmax the dropped patches still weigh exp(0) against the kept ones. That is what the
equation and the public code do. The public code's other details (single head projected to the
text width, scores × √14, top-N rows rescaled to norm M, no MLP/BN) are not the default.

Queries may be shared by every image (q: C, d_q → Â: B, C, d) or chosen per image
(q: B, K, d_q → Â: B, K, d). LORE's loss reads only the true and the predicted class, so the
training step passes those two queries per image: the cost no longer grows with the class count.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def top_n_filter(scores: torch.Tensor, n: int) -> torch.Tensor:
    """φ_N: keep the n largest entries of each row (last dim), set the rest to 0 (Eq. 6)."""
    if n >= scores.shape[-1]:
        return scores
    top = scores.topk(n, dim=-1)
    return torch.zeros_like(scores).scatter(-1, top.indices, top.values)


class KnowledgeLocalityAttention(nn.Module):
    """KLA: knowledge queries q and tokens Ê → K-L prototypes Â (and the attention map)."""

    def __init__(self, dim: int, knowledge_dim: int, top_n: int = 9, mlp_ratio: float = 1.0):
        super().__init__()
        self.top_n, self.knowledge_dim = top_n, knowledge_dim
        self.scale = 1.0 / math.sqrt(dim)
        self.to_q = nn.Linear(knowledge_dim, dim, bias=False)  # W_q
        self.to_k = nn.Linear(dim, dim, bias=False)  # W_k
        self.to_v = nn.Linear(dim, dim, bias=False)  # W_v
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm = nn.BatchNorm1d(dim)

    def attention(self, e_hat: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A and the attention weights.  e_hat: B, M, d; q: C, d_q or B, K, d_q."""
        queries = self.to_q(q)  # (C | B,K), d
        keys, values = self.to_k(e_hat), self.to_v(e_hat)  # B, M, d
        if queries.dim() == 2:
            scores = torch.einsum("cd,bmd->bcm", queries, keys)  # B, C, M
        else:
            scores = torch.einsum("bkd,bmd->bkm", queries, keys)  # B, K, M
        weights = top_n_filter(scores * self.scale, self.top_n).softmax(dim=-1)
        return weights @ values, weights  # B, K, d and B, K, M

    def forward(self, e_hat: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attention(e_hat, q)  # B, K, d
        B, K, d = attended.shape
        prototypes = self.norm((self.mlp(attended) + attended).reshape(B * K, d)).view(B, K, d)
        return prototypes, weights
