"""The public code's White Box (``white_box: public``) — public code, not the paper.

The paper's equations (``lin.py``, ``prompt_generator.py``, ``kla.py``) stay the default. This module
holds the variant the public code runs, for exact reproduction (issue 11 §3):

- LIN: one ViG block (Han et al., "Vision GNN", 2022) — a Grapher then an FFN, both residual:

      Grapher:  x → fc1 (1×1 conv + BN) → max-relative graph conv over a dilated kNN graph (k = 9):
                [x_i, max_j(x_j − x_i)] → 1×1 conv (groups 4, d·2 → d·2) + BN + GELU → fc2 (1×1 conv
                2d → d + BN) → + x
      FFN:      x → 1×1 conv d → 4d + BN → GELU → 1×1 conv 4d → d + BN → + x

  The dilation is 1 (plain kNN): ViG's Grapher defaults to 1, and ViG's isotropic models give block i
  the dilation ``min(i // 4 + 1, max_dilation)``, which is 1 for its first block — the public code
  runs one block. As in ViG, the graph is built on the fc1 output, on L2-normalised tokens, with
  each token among its own neighbours, and the 1×1 convolution of the graph conv is grouped (4
  groups) over the interleaved channels ``[x_1, r_1, x_2, r_2, ...]`` (ViG's ``BasicConv``).
- PG: Ψ1 = conv d → 32 + BN + GELU + conv 32 → d (its output is Y, Eq. 8); Ψ2 = conv d → 32 + BN +
  GELU + conv 32 → L·n_loc·d + BN + dropout 0.1 (Eq. 9). Convolutions Kaiming-normal, zero bias.
  On the pooled Ê (a 1×1 map) a 1×1 convolution is a linear layer, written as one.
- KLA: one head; the queries are the L2-normalised class text features (width d_q); keys and values
  are linear maps of Ê to d_q (no bias); scores q·k × √(patch-grid side) (√14 at 224 px / 16); the
  top-N scores scattered into a zero row (φ_N of Eq. 6), each row rescaled to L2 norm M (its length),
  softmax, × V, then one linear map d_q → d. No MLP and no BatchNorm (the paper's Eq. 7 has both).

Every BatchNorm here uses its running statistics for a batch of one image in training (where a
batch statistic does not exist); the public code would fail there. Nothing else differs from it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lorevit.white_box.kla import top_n_filter
from lorevit.white_box.lin import knn_graph, max_relative


class BatchNormAnyBatch(nn.BatchNorm1d):
    """``BatchNorm1d`` that falls back to its running statistics when a channel has one value (a batch of one)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B, C or B, C, M
        if self.training and x.numel() // x.shape[1] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def conv_bn(dim_in: int, dim_out: int, groups: int = 1) -> nn.Sequential:
    """A 1×1 convolution over the tokens (B, C, M) followed by BatchNorm: ViG's ``fc`` layers."""
    return nn.Sequential(nn.Conv1d(dim_in, dim_out, 1, groups=groups), BatchNormAnyBatch(dim_out))


def dilated_knn_graph(tokens: torch.Tensor, k: int, dilation: int = 1) -> torch.Tensor:
    """ViG's dilated kNN: every ``dilation``-th of the k·dilation nearest tokens.  B, M, d → B, M, k.

    With dilation 1 it is the plain kNN graph of Eq. 2 (``lin.knn_graph``).
    """
    return knn_graph(tokens, k * dilation)[..., ::dilation]


class MaxRelativeGraphConv(nn.Module):
    """ViG's MRConv: [x_i, max_{j ∈ N(i)} (x_j − x_i)] → grouped 1×1 conv + BN + GELU.  B, d, M → B, 2d, M."""

    def __init__(self, dim: int, k: int = 9, dilation: int = 1, groups: int = 4):
        super().__init__()
        self.k, self.dilation = k, dilation
        self.conv = nn.Conv1d(2 * dim, 2 * dim, 1, groups=groups)
        self.norm = BatchNormAnyBatch(2 * dim)
        self.act = nn.GELU()
        nn.init.kaiming_normal_(self.conv.weight)  # ViG's BasicConv.reset_parameters
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: B, d, M
        tokens = x.transpose(1, 2)  # B, M, d
        relative = max_relative(tokens, dilated_knn_graph(tokens, self.k, self.dilation)).transpose(1, 2)  # B, d, M
        B, d, M = x.shape
        pair = torch.stack([x, relative], dim=2).reshape(B, 2 * d, M)  # interleaved [x_1, r_1, x_2, r_2, ...]
        return self.act(self.norm(self.conv(pair)))  # B, 2d, M


class Grapher(nn.Module):
    """ViG's Grapher: fc1 → max-relative graph conv → fc2, with a residual.  B, d, M → B, d, M."""

    def __init__(self, dim: int, k: int = 9, dilation: int = 1):
        super().__init__()
        self.fc1 = conv_bn(dim, dim)
        self.graph_conv = MaxRelativeGraphConv(dim, k, dilation)
        self.fc2 = conv_bn(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.graph_conv(self.fc1(x))) + x


class FeedForward(nn.Module):
    """ViG's FFN: 1×1 conv d → 4d + BN, GELU, 1×1 conv 4d → d + BN, with a residual.  B, d, M → B, d, M."""

    def __init__(self, dim: int, ratio: int = 4):
        super().__init__()
        self.fc1 = conv_bn(dim, ratio * dim)
        self.act = nn.GELU()
        self.fc2 = conv_bn(ratio * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x))) + x


class PublicLocalityInteraction(nn.Module):
    """LIN of the public code (Eq. 2–4 as one ViG block): E0 (B, M, d) → Ê (B, M, d) — public code, not the paper."""

    def __init__(self, dim: int, k: int = 9, dilation: int = 1):
        super().__init__()
        self.k = k
        self.grapher = Grapher(dim, k, dilation)
        self.ffn = FeedForward(dim)

    def forward(self, e0: torch.Tensor, pooled: bool = False) -> torch.Tensor:  # e0: B, M, d
        """Ê (B, M, d); with ``pooled`` its mean over the patches (B, d), all the Prompt Generator reads."""
        e_hat = self.ffn(self.grapher(e0.transpose(1, 2))).transpose(1, 2)  # B, M, d
        return e_hat.mean(dim=1) if pooled else e_hat


def conv_bottleneck(dim_in: int, rank: int, dim_out: int) -> nn.Sequential:
    """1×1 conv dim_in → rank + BN + GELU + 1×1 conv rank → dim_out (on a 1×1 map: linear layers); Kaiming, zero bias."""
    layers = nn.Sequential(nn.Linear(dim_in, rank), BatchNormAnyBatch(rank), nn.GELU(), nn.Linear(rank, dim_out))
    for layer in (layers[0], layers[3]):
        nn.init.kaiming_normal_(layer.weight)
        nn.init.zeros_(layer.bias)
    return layers


class PublicPromptGenerator(nn.Module):
    """PG of the public code (Eq. 8–9) — public code, not the paper.

    Ê (B, M, d), or its patch average (B, d), → latent Y (B, d) and prompts U (B, L, n_loc, d):
    Y = Ψ1(avgpool(Ê)), U = dropout(BN(Ψ2(Y))).
    """

    def __init__(self, dim: int, depth: int, n_local: int = 2, rank: int = 32, dropout: float = 0.1):
        super().__init__()
        self.depth, self.n_local, self.dim = depth, n_local, dim
        self.psi1 = conv_bottleneck(dim, rank, dim)
        width = depth * n_local * dim
        self.psi2 = nn.Sequential(conv_bottleneck(dim, rank, width), BatchNormAnyBatch(width), nn.Dropout(dropout))

    def forward(self, e_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = e_hat.mean(dim=1) if e_hat.dim() == 3 else e_hat  # avgpool(Ê): B, d
        latent = self.psi1(pooled)  # Y: B, d
        prompts = self.psi2(latent)  # B, L·n_loc·d
        return latent, prompts.view(-1, self.depth, self.n_local, self.dim)


def grid_scale(num_patches: int) -> float:
    """The public code's score multiplier √(patch-grid side): √14 for 14 × 14 patches (224 px / 16)."""
    return num_patches ** 0.25


def rescale_rows(scores: torch.Tensor) -> torch.Tensor:
    """Each row (last dim, length M) rescaled to L2 norm M, as the public code does before the softmax."""
    norm = scores.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return scores * (scores.shape[-1] / norm)


class PublicKnowledgeLocalityAttention(nn.Module):
    """KLA of the public code (Eq. 5–6, one head, no Eq. 7 MLP/BN) — public code, not the paper.

    q (C, d_q) or (B, K, d_q) and Ê (B, M, d) → K-L prototypes Â (B, C|K, d) and the attention (B, C|K, M).
    """

    def __init__(self, dim: int, knowledge_dim: int, top_n: int = 9):
        super().__init__()
        self.top_n, self.knowledge_dim = top_n, knowledge_dim
        self.to_k = nn.Linear(dim, knowledge_dim, bias=False)  # K = Ê W_k
        self.to_v = nn.Linear(dim, knowledge_dim, bias=False)  # V = Ê W_v
        self.proj = nn.Linear(knowledge_dim, dim)  # back to the ViT's width

    def attention(self, e_hat: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A (B, K, d_q) and the attention weights (B, K, M).  e_hat: B, M, d; q: C, d_q or B, K, d_q."""
        queries = F.normalize(q, dim=-1)  # Q = q / ‖q‖
        keys, values = self.to_k(e_hat), self.to_v(e_hat)  # B, M, d_q
        if queries.dim() == 2:
            scores = torch.einsum("cd,bmd->bcm", queries, keys)  # B, C, M
        else:
            scores = torch.einsum("bkd,bmd->bkm", queries, keys)  # B, K, M
        scores = scores * grid_scale(e_hat.shape[1])
        weights = rescale_rows(top_n_filter(scores, self.top_n)).softmax(dim=-1)  # B, K, M
        return weights @ values, weights

    def forward(self, e_hat: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attention(e_hat, q)  # B, K, d_q
        return self.proj(attended), weights  # Â: B, K, d
