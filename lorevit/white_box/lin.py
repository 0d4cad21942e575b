"""Locality Interaction Network (LIN) — LORE paper Eq. 2–4.

Each image's patch tokens form a directed k-nearest-neighbour graph (rebuilt per image), a
max-relative graph convolution gathers what the neighbourhood adds to each token, and a
residual maps the result back onto the patch embeddings:

    N(i)  = the k tokens nearest to e_i (cosine distance on L2-normalised tokens)     (Eq. 2)
    e'_i  = max_{j ∈ N(i)} (e_j − e_i),   E' = [E, E'_rel] W_mix                       (Eq. 3)
    Ê     = h(E', E0) = σ(E' W1) W2 + E0,   σ = ReLU                                     (Eq. 4)

Like ViG (whose Grapher the public code uses) a token counts among its own k neighbours:
its distance to itself is 0, so e'_i ≥ 0 element-wise. The public code's ViG-style block
(GELU, BatchNorm after each linear, an extra 4d FFN) is not the default; the paper's equations are.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def knn_graph(tokens: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k nearest tokens of every token (Eq. 2).  tokens: B, M, d → B, M, k."""
    k = min(k, tokens.shape[1])
    unit = F.normalize(tokens, dim=-1)
    similarity = unit @ unit.transpose(1, 2)  # B, M, M; nearest = most similar
    return similarity.topk(k, dim=-1).indices


def max_relative(tokens: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """e'_i = max_{j ∈ N(i)} (e_j − e_i), element-wise (Eq. 3).

    tokens: B, M, d; neighbours: B, M, k (indices into M) → B, M, d.
    """
    B, M, d = tokens.shape
    k = neighbours.shape[-1]
    flat = neighbours.reshape(B, M * k, 1).expand(B, M * k, d)
    gathered = tokens.gather(1, flat).view(B, M, k, d)  # B, M, k, d
    return (gathered - tokens.unsqueeze(2)).amax(dim=2)


class LocalityInteraction(nn.Module):
    """LIN: E0 (B, M, d) → locality-enhanced tokens Ê (B, M, d)."""

    def __init__(self, dim: int, k: int = 9, hidden: int | None = None):
        super().__init__()
        self.k = k
        self.mix = nn.Linear(2 * dim, dim)  # W_mix of Eq. 3 over [e_i, e'_i]
        self.w1 = nn.Linear(dim, hidden or dim)  # Eq. 4
        self.w2 = nn.Linear(hidden or dim, dim)
        # Start close to the identity map Ê ≈ E0 (small W2, as timm initialises residual
        # branches), so early prompts come from the ViT's own embeddings; not exactly zero, so
        # that every LIN weight receives a gradient from the first step.
        nn.init.trunc_normal_(self.w2.weight, std=0.02)
        nn.init.zeros_(self.w2.bias)

    def forward(self, e0: torch.Tensor) -> torch.Tensor:  # B, M, d
        neighbours = knn_graph(e0, self.k)  # B, M, k
        relative = max_relative(e0, neighbours)  # B, M, d
        e_mixed = self.mix(torch.cat([e0, relative], dim=-1))  # E' of Eq. 3
        return self.w2(F.relu(self.w1(e_mixed))) + e0  # Ê of Eq. 4
