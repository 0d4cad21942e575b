"""Low-rank updates on slices of a fused Linear (BASELINES_VISION.md §A1), reusable by every LoRA variant.

PEFT adapts a whole ``nn.Linear``; it cannot put an update on only some output rows of timm's fused
``attn.qkv`` (768 → [q; k; v], 3·768). :class:`SlicedLowRankLinear` does: one (A, B) pair per slice of the
output, added to those columns only, the other columns exactly the frozen Linear's. ``targets: qv`` of
``lora`` uses the q and v slices (the LoRA paper's choice); CLIP-LoRA can use the three slices q, k, v
(three separate rank-r updates on the fused qkv). :meth:`SlicedLowRankLinear.merged` folds every pair into
the weight rows it writes, giving back a plain ``nn.Linear``.

Initialisation as PEFT's ``reset_lora_parameters`` (PEFT:src/peft/tuners/lora/layer.py): A kaiming-uniform
(a = √5, i.e. U(±1/√in)), B = 0, so the update starts at exactly zero — not V-PETL's q/v version, which
initialises A_q, B_q both kaiming and A_v, B_v both zero (§A1).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from lorevit.methods.base import AroundFrozen


def lora_scale(alpha: float, rank: int, rslora: bool = False) -> float:
    """PEFT's scale s of the update s·B·A (§A1): α / r, or α / √r with rank-stabilised LoRA (``use_rslora``)."""
    return alpha / math.sqrt(rank) if rslora else alpha / rank


class LowRankPair(nn.Module):
    """One rank-r update x ↦ B·A·x: A (r, in) kaiming-uniform(a=√5), B (out, r) zero (§A1)."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__()
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))  # r, in
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))  # out, r
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # ..., in → ..., out
        return (x @ self.lora_A.t()) @ self.lora_B.t()

    def delta_weight(self) -> torch.Tensor:  # out, in
        return self.lora_B @ self.lora_A


class SlicedLowRankLinear(AroundFrozen):
    """``base(x)`` plus ``s · B_j A_j dropout(x)`` on each output slice j = [start, stop) of a frozen Linear.

    ``slices`` are (start, stop) column ranges of ``base``'s output, e.g. ``qkv_slices(qkv, "qv")`` =
    [(0, d), (2d, 3d)]; columns outside every slice are the frozen Linear's, bit for bit. ``independent_dropout``
    draws a dropout mask per slice (separate q, k, v layers, as CLIP-LoRA's) instead of one for all.
    """

    def __init__(self, base: nn.Linear, slices: Sequence[tuple[int, int]], rank: int, scale: float,
                 dropout: float = 0.0, independent_dropout: bool = False):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        ordered = sorted(slices)
        for (a, b), (c, _) in zip(ordered, ordered[1:]):
            if b > c:
                raise ValueError(f"slices {slices} overlap")
        if any(not 0 <= a < b <= base.out_features for a, b in ordered):
            raise ValueError(f"slices {slices} must lie in [0, {base.out_features})")
        self.base = base.requires_grad_(False)  # the ViT's own frozen Linear
        self.slices = [tuple(s) for s in ordered]
        self.scale = scale
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # one dropout mask per pair (CLIP-LoRA: q, k and v are separate LoRA layers, each with its own dropout)
        # instead of one mask shared by the slices (PEFT's single layer)
        self.independent_dropout = independent_dropout
        self.pairs = nn.ModuleList(LowRankPair(base.in_features, b - a, rank) for a, b in self.slices)

    # the frozen Linear's attributes, for code that reads them (timm, PromptedViT)
    in_features = property(lambda self: self.base.in_features)
    out_features = property(lambda self: self.base.out_features)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """The update over all output columns (zeros outside the slices): ..., out."""
        shared = None if self.independent_dropout else self.dropout(x)
        parts, at = [], 0
        for (a, b), pair in zip(self.slices, self.pairs):
            if a > at:
                parts.append(x.new_zeros(*x.shape[:-1], a - at))
            parts.append(pair(self.dropout(x) if shared is None else shared))
            at = b
        if at < self.out_features:
            parts.append(x.new_zeros(*x.shape[:-1], self.out_features - at))
        return torch.cat(parts, dim=-1) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B, N, in → B, N, out
        return self.base(x) + self.delta(x)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The frozen Linear with s·B_j·A_j added to rows [start, stop) of its weight for every slice j
        (§A1 merge rule); the bias is unchanged. Changes ``base`` in place and returns it."""
        for (a, b), pair in zip(self.slices, self.pairs):
            self.base.weight[a:b] += self.scale * pair.delta_weight().to(self.base.weight.dtype)
        return self.base


def qkv_slices(qkv: nn.Linear, parts: str) -> list[tuple[int, int]]:
    """The output column ranges of timm's fused ``attn.qkv`` ([q; k; v], each out/3 wide) named by ``parts``
    (a string of the letters q, k, v: ``"qv"``, ``"qkv"``)."""
    if qkv.out_features % 3:
        raise ValueError(f"a fused qkv has 3·width outputs, got {qkv.out_features}")
    width = qkv.out_features // 3
    bad = set(parts) - set("qkv")
    if bad or not parts:
        raise ValueError(f"qkv parts must be letters of 'qkv', got {parts!r}")
    return [("qkv".index(p) * width, ("qkv".index(p) + 1) * width) for p in dict.fromkeys(parts)]
