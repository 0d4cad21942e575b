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
    max_j (e_j − e_i) = (max_j e_j) − e_i, bit for bit (rounding is monotonic). The neighbours are rows of the
    flattened (B·M, d) tokens: ``index_select`` reads whole rows (a ``gather`` with an expanded index walks
    B·M·k·d indices). Without gradients the max runs over one neighbour at a time into one B·M·d buffer
    (3× faster than the B·M·k·d temporary on a 2-core CPU at M 64, d 384; the same values).
    """
    B, M, d = tokens.shape
    k = neighbours.shape[-1]
    rows = neighbours + (torch.arange(B, device=neighbours.device) * M).view(B, 1, 1)  # B, M, k into B·M
    flat = tokens.reshape(B * M, d)
    if (torch.is_grad_enabled() and tokens.requires_grad) or torch.jit.is_tracing() or torch.compiler.is_compiling():
        # amax's gradient (ties share it) as Eq. 3's max; tracers and compilers get one graph op, not k in-place ones
        return flat.index_select(0, rows.reshape(-1)).view(B, M, k, d).amax(dim=2) - tokens
    out = flat.index_select(0, rows[..., 0].reshape(-1))  # B·M, d
    for j in range(1, k):
        torch.maximum(out, flat.index_select(0, rows[..., j].reshape(-1)), out=out)
    return out.view(B, M, d) - tokens


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
        self._folded: tuple | None = None  # (key, W, b) of W1∘W_mix for inference; never saved

    def _folded_mix_w1(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W_mix then W1 with nothing between (Eq. 3–4) is one linear map 2d → hidden: fold it once.

        Re-folded whenever a weight changes (optimizer steps, ``load_state_dict`` and ``.to`` all
        change a tensor's version or storage). Under a tracer or compiler (ONNX export, ``torch.jit
        .trace``, ``torch.export``, ``torch.compile``) the fold is recorded as graph ops on the weights
        themselves, without reading or writing the cache: no stale tensor is baked into the graph and
        no storage pointer of a fake tensor is asked for (exporters constant-fold it back to one map).
        """
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return self.w1.weight @ self.mix.weight, self.w1.weight @ self.mix.bias + self.w1.bias
        tensors = (self.mix.weight, self.mix.bias, self.w1.weight, self.w1.bias)
        key = tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)
        if self._folded is None or self._folded[0] != key:
            with torch.no_grad():
                weight = self.w1.weight @ self.mix.weight  # hidden, 2d
                bias = self.w1.weight @ self.mix.bias + self.w1.bias
            self._folded = (key, weight, bias)
        return self._folded[1], self._folded[2]

    def forward(self, e0: torch.Tensor, pooled: bool = False) -> torch.Tensor:  # e0: B, M, d
        """Ê (B, M, d); with ``pooled`` only its mean over the patches (B, d).

        The mean is all the Prompt Generator reads (Eq. 8); KLA, which needs every token, runs only
        in training. Averaging before W2 (a linear map, so mean(h W2) = mean(h) W2) skips M·d²
        multiply-adds per image. In eval mode W_mix and W1 run as one folded linear map (another
        M·d² fewer; no gradient reaches them through it): inference costs 2d² + d² / M per patch
        instead of 4d², the same result up to rounding.
        """
        neighbours = knn_graph(e0, self.k)  # B, M, k
        relative = max_relative(e0, neighbours)  # B, M, d
        pair = torch.cat([e0, relative], dim=-1)  # [e_i, e'_i]: B, M, 2d
        if self.training:
            pre = self.w1(self.mix(pair))  # E' of Eq. 3, then W1 of Eq. 4
        else:
            pre = F.linear(pair, *self._folded_mix_w1())
        hidden = F.relu(pre)  # B, M, hidden
        if pooled:
            return self.w2(hidden.mean(dim=1)) + e0.mean(dim=1)  # avgpool(Ê): B, d
        return self.w2(hidden) + e0  # Ê of Eq. 4
