"""Prompt Generator (PG) — LORE paper Eq. 8–9.

    Y = Ψ1( avgpool(Ê) )        the latent embedding, Y ∈ R^d                          (Eq. 8)
    U = Ψ2( Y )                 n_loc locality-aware prompts for each of the L blocks   (Eq. 9)

Ψ1 and Ψ2 are bottlenecks through r = 32 channels (1×1 convolutions with normalisation in the
paper, written here as the equivalent linear layers). The paper does not name the normalisation;
LayerNorm is used so that a prompt never depends on the other images of the batch (a batch of
one trains, and predictions do not change with the batch).
"""
from __future__ import annotations

import torch
from torch import nn


def bottleneck(dim_in: int, rank: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(dim_in, rank), nn.LayerNorm(rank), nn.ReLU(inplace=True), nn.Linear(rank, dim_out)
    )


class PromptGenerator(nn.Module):
    """Ê (B, M, d), or its patch average (B, d), → latent Y (B, d) and prompts U (B, L, n_loc, d)."""

    def __init__(self, dim: int, depth: int, n_local: int = 2, rank: int = 32):
        super().__init__()
        self.depth, self.n_local, self.dim = depth, n_local, dim
        self.psi1 = bottleneck(dim, rank, dim)
        self.psi2 = bottleneck(dim, rank, depth * n_local * dim)
        # Small prompts at the start, so the frozen ViT begins close to its pre-trained behaviour.
        nn.init.normal_(self.psi2[-1].weight, std=0.02)
        nn.init.zeros_(self.psi2[-1].bias)

    def forward(self, e_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = e_hat.mean(dim=1) if e_hat.dim() == 3 else e_hat  # avgpool(Ê): B, d
        latent = self.psi1(pooled)  # Y: B, d
        prompts = self.psi2(latent)  # B, L·n_loc·d
        return latent, prompts.view(-1, self.depth, self.n_local, self.dim)
