"""``adapter``: bottleneck adapters after the attention and MLP branches (BASELINES_VISION.md §A3).

``A(h) = up(GELU(down(h)))`` with biases; added after a branch's output h: ``h ← h + A(h)``.

- ``style: houlsby`` (Houlsby et al., ICML 2019): after the attention branch and after the MLP branch,
  h_a = attn(norm1 x), x ← x + h_a + A_a(h_a); h_m = mlp(norm2 x), x ← x + h_m + A_m(h_m).
  ViT-B/16, k = 8: 12·2·13,064 = 313,536.
- ``style: pfeiffer`` (Pfeiffer et al., EACL 2021; VPT's "adapter"): only the MLP adapter, 156,768 at k = 8.

Init (A+:adapter_plus/vit_adapter.py): both weights trunc-normal, std 0.01 (Houlsby's paper; its code 0.001),
cut at ±2σ, biases 0 — near the identity, not exactly it. ``init_std: 0`` gives VPT's all-zero init
(VPT:src/models/vit_adapter/adapter_block.py), with which only ``up.bias`` receives a gradient (§A3 [I]).

The adapter wraps the branch's last Linear (``attn.proj``, ``mlp.fc2``): their outputs are h (timm's
``proj_drop`` / ``drop2`` after them are inactive in the frozen eval-mode ViT), so the attention stays timm's
own module and keeps PromptedViT's fast path. With a LayerScale (DINOv2) the adapter's output is scaled with h.
Not mergeable (the GELU).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.methods.base import AroundFrozen, Method, MethodContext
from lorevit.methods.tuning import TuningGrid, petlv_grid
from lorevit.methods.vtab_recipes import PETL_VISION_GRID

STYLES = {"houlsby": ("attn.proj", "mlp.fc2"), "pfeiffer": ("mlp.fc2",)}  # the Linear each adapter follows


@dataclass
class AdapterOptions:
    style: str = field(default="houlsby", metadata={"help": "houlsby (after attention and MLP) | pfeiffer (MLP only)"})
    bottleneck_dim: int = field(default=8, metadata={"help": "k, the bottleneck width (VTAB rows: 8; VPT: D/8)"})
    init_std: float = field(default=0.01, metadata={"help": "trunc-normal std (±2σ) of both weights; "
                                                           "Houlsby's code 0.001; 0 = VPT's all-zero init"})

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if self.bottleneck_dim < 1:
            raise ValueError(f"bottleneck_dim must be >= 1, got {self.bottleneck_dim}")
        if self.init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {self.init_std}")


class SequentialAdapter(AroundFrozen):
    """``h + up(GELU(down(h)))`` with ``h = base(x)``: an adapter after a frozen Linear (§A3)."""

    def __init__(self, base: nn.Linear, bottleneck: int, init_std: float):
        super().__init__()
        self.base = base.requires_grad_(False)  # the ViT's own frozen Linear
        dim = base.out_features
        self.down = nn.Linear(dim, bottleneck)  # k, D
        self.up = nn.Linear(bottleneck, dim)  # D, k
        for linear in (self.down, self.up):
            if init_std > 0:
                nn.init.trunc_normal_(linear.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
            else:
                nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B, N, in → B, N, D
        h = self.base(x)
        return h + self.up(nn.functional.gelu(self.down(h)))


class Adapter(Method):
    """Houlsby or Pfeiffer bottleneck adapters (kind 2); not mergeable."""

    # The VTAB rows' recipe is not in the codebases read (§A3); PETL_Vision's A1 grid is used (AdamW,
    # lr 1e-3, wd 1e-4, 100 epochs, 10 warm-up, batch 64; PETLV:experiment/config/lr_wd_vtab_processed.yml).
    recipe: ClassVar[dict] = dict(PETL_VISION_GRID)

    @classmethod
    def tuning_grid(cls, cfg, protocol: str) -> TuningGrid:
        """PETL_Vision's lr × wd grid (BASELINES_VISION §A1), 4 points: the recipe's own source (§A3 [U])."""
        return petlv_grid(protocol)

    def __init__(self, backbone: PromptedViT, options: AdapterOptions | None = None,
                 context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        o = self.options
        for block in backbone.vit.blocks:
            for path in STYLES[o.style]:
                parent_path, _, attribute = path.rpartition(".")
                parent = block.get_submodule(parent_path)
                self.replace_module(parent, attribute, SequentialAdapter(getattr(parent, attribute), o.bottleneck_dim,
                                                                         o.init_std))
