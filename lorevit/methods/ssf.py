"""``ssf``: scale and shift the frozen ViT's features (Lian et al., NeurIPS 2022; BASELINES_VISION.md §A3).

``y ← γ ⊙ y + β`` (γ, β ∈ R^D, learned) after: the patch projection (``patch_embed.proj``, before CLS and
position embeddings are added); in every block ``norm1``, ``attn.qkv`` (3·D), ``attn.proj``, ``norm2``,
``mlp.fc1`` (before the activation), ``mlp.fc2``; and the final ``norm``. γ ~ N(1, 0.02), β ~ N(0, 0.02)
(SSF:models/vision_transformer.py ``init_ssf_scale_shift``). ViT-B/16: 12·2·8,448 + 2·2·768 = 205,824.

Mergeable (§A3 [I]): after a Linear or Conv ``W' = diag(γ) W, b' = γ ⊙ b + β``; after a LayerNorm
``w' = γ ⊙ w, b' = γ ⊙ b + β`` — a plain timm ViT with zero inference overhead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.methods.base import AroundFrozen, Method, MethodContext
from lorevit.methods.tuning import TuningGrid, petlv_grid
from lorevit.methods.vtab_recipes import SSF_VTAB

BLOCK_SITES = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")  # §A3, in forward order


@dataclass
class SSFOptions:
    init_std: float = field(default=0.02, metadata={"help": "γ ~ N(1, std²), β ~ N(0, std²) (SSF: 0.02)"})

    def __post_init__(self) -> None:
        if self.init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {self.init_std}")


class ScaleShift(AroundFrozen):
    """``γ ⊙ base(x) + β`` over the feature axis (the last one; axis 1 after a Conv2d): one SSF site (§A3)."""

    def __init__(self, base: nn.Module, dim: int, init_std: float = 0.02):
        super().__init__()
        self.base = base.requires_grad_(False)  # the ViT's own frozen module
        self.channel_first = isinstance(base, nn.Conv2d)  # B, D, H, W
        self.ssf_scale = nn.Parameter(torch.empty(dim).normal_(1.0, init_std))  # D
        self.ssf_shift = nn.Parameter(torch.empty(dim).normal_(0.0, init_std))  # D

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.channel_first:
            return y * self.ssf_scale[:, None, None] + self.ssf_shift[:, None, None]
        return y * self.ssf_scale + self.ssf_shift

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """The base module with γ, β folded in (W' = diag(γ) W or w' = γ ⊙ w; b' = γ ⊙ b + β); in place."""
        base, gamma, beta = self.base, self.ssf_scale, self.ssf_shift
        shape = (-1,) + (1,) * (base.weight.dim() - 1)  # out first: Linear (out, in), Conv (out, in, kh, kw), LN (D)
        base.weight.mul_(gamma.to(base.weight.dtype).reshape(shape))
        if base.bias is None:
            base.bias = nn.Parameter(beta.detach().clone().to(base.weight.dtype), requires_grad=False)
        else:
            base.bias.mul_(gamma.to(base.bias.dtype)).add_(beta.to(base.bias.dtype))
        return base


def feature_width(module: nn.Module) -> int:
    """The width of a module's output features (Linear out, Conv channels, LayerNorm width)."""
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Conv2d):
        return module.out_channels
    if isinstance(module, nn.LayerNorm):
        return int(module.normalized_shape[-1])
    raise TypeError(f"SSF cannot scale-shift a {type(module).__name__}")


def ssf_sites(vit: nn.Module) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of every module SSF follows (§A3): patch projection, six per block, final norm."""
    sites = [(vit.patch_embed, "proj")]
    for block in vit.blocks:
        for path in BLOCK_SITES:
            parent_path, _, attribute = path.rpartition(".")
            sites.append((block.get_submodule(parent_path) if parent_path else block, attribute))
    final = "norm" if isinstance(vit.norm, nn.LayerNorm) else "fc_norm"  # global-pool ViTs normalise in fc_norm
    if isinstance(getattr(vit, final, None), nn.LayerNorm):
        sites.append((vit, final))
    return sites


class SSF(Method):
    """Scale-shift after every listed op of the frozen ViT (§A3); mergeable."""

    mergeable = True
    # SSF:train_scripts/vit/vtab/*/train_ssf.sh (the most common task setting): AdamW, batch 32 × 2 processes,
    # 100 epochs, 10 warm-up epochs (linear, from 1e-7), cosine to 1e-8, lr 5e-3 (per task
    # 1e-3 … 5e-2), wd 5e-5, no augmentation, direct resize to 224, AugReg IN-21k weights with 0.5/0.5
    # normalisation (§0, [I]); drop-path 0–0.2 in SSF is not applied (the frozen ViT stays in eval mode).
    recipe: ClassVar[dict] = dict(SSF_VTAB)

    @classmethod
    def tuning_grid(cls, cfg, protocol: str) -> TuningGrid:
        """PETL_Vision's lr × wd grid (BASELINES_VISION §A1), 4 points. SSF's own scripts set lr (1e-3 … 5e-2) and
        wd (5e-5 or 5e-2) per task (§A3) and declare no grid; PETL_Vision searches SSF with this one."""
        return petlv_grid(protocol, source="; SSF's own scripts set lr/wd per task, no grid (§A3)")

    def __init__(self, backbone: PromptedViT, options: SSFOptions | None = None,
                 context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        self._sites: list[tuple[nn.Module, str, ScaleShift]] = []
        for parent, attribute in ssf_sites(backbone.vit):
            base = getattr(parent, attribute)
            wrapper = ScaleShift(base, feature_width(base), self.options.init_std)
            self.replace_module(parent, attribute, wrapper)
            self._sites.append((parent, attribute, wrapper))

    @torch.no_grad()
    def merge(self) -> None:
        """Fold every γ, β into the module it follows and put that module back: a plain timm ViT (§A3)."""
        for parent, attribute, wrapper in self._sites:
            setattr(parent, attribute, wrapper.merged())
        self._sites = []
        self.inserted = nn.ModuleList()
