"""``adaptformer``: a bottleneck beside every block's MLP (Chen et al., NeurIPS 2022; BASELINES_VISION.md §A2).

Per block, on the residual stream x after the attention add (the input of ``norm2``, not normalised; AF's
adapter layer-norm option "none"):

    out = x + MLP(norm2(x)) + s · up(dropout(ReLU(down(x))))

down: Linear D → k, up: k → D, both with bias; init "lora": down kaiming-uniform(a=√5), up weight 0, both biases
0, so the block starts as the frozen one (AF:models/adapter.py). s = 0.1 fixed (``ffn_adapter_scalar``),
k = 64 by default (``--ffn_num``) and 8 for the VTAB "0.16M" row: 12·(1536k + k + 768) parameters on ViT-B/16
(k 8 → 156,768; k 64 → 1,189,632). Not mergeable (the ReLU); +2·D·k MACs per token per block.

In timm's Block the branch is ``drop_path2(ls2(mlp(norm2(x))))``: :class:`ParallelAdapter` takes the place of
``mlp`` and computes ``ls2(mlp(norm2(x))) + s · adapter(x)`` (``norm2`` and ``ls2`` move inside it, Identity in
their old places), so the adapter reads the un-normalised x and a LayerScale (DINOv2) scales only the MLP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.methods.base import AroundFrozen, Method, MethodContext
from lorevit.methods.tuning import ADAPTFORMER_KS, ADAPTFORMER_SCALES, TuningGrid, petlv_grid
from lorevit.methods.vtab_recipes import PETL_VISION_GRID


@dataclass
class AdaptFormerOptions:
    bottleneck_dim: int = field(default=64, metadata={"help": "k, the bottleneck width (AF: 64; the VTAB 0.16M row: 8)"})
    scale: float = field(default=0.1, metadata={"help": "s, the fixed scale of the adapter's output (AF: 0.1)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout after the ReLU (AF: 0.1)"})

    def __post_init__(self) -> None:
        if self.bottleneck_dim < 1:
            raise ValueError(f"bottleneck_dim must be >= 1, got {self.bottleneck_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class Bottleneck(nn.Module):
    """up(dropout(ReLU(down(x)))): down D → k kaiming-uniform, up k → D zero, biases zero (AF "lora" init)."""

    def __init__(self, dim: int, bottleneck: int, dropout: float):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)  # k, D
        self.up = nn.Linear(bottleneck, dim)  # D, k
        self.dropout = nn.Dropout(dropout)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B, N, D → B, N, D
        return self.up(self.dropout(torch.relu(self.down(x))))


class ParallelAdapter(AroundFrozen):
    """``ls2(mlp(norm2(x))) + s · adapter(x)``: a block's MLP branch with AdaptFormer beside it (§A2)."""

    frozen_parts = ("norm2", "mlp", "ls2")

    def __init__(self, norm2: nn.Module, mlp: nn.Module, ls2: nn.Module, dim: int, options: AdaptFormerOptions):
        super().__init__()
        self.norm2, self.mlp, self.ls2 = (m.requires_grad_(False) for m in (norm2, mlp, ls2))  # frozen ViT parts
        self.adapter = Bottleneck(dim, options.bottleneck_dim, options.dropout)
        self.scale = options.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B, N, D (the residual stream) → B, N, D
        return self.ls2(self.mlp(self.norm2(x))) + self.scale * self.adapter(x)


class AdaptFormer(Method):
    """A parallel bottleneck beside every block's MLP (kind 2); not mergeable."""

    # AF's own image recipe (SGD, lr 0.1·batch/256, MAE weights) is not VTAB-1k, and the recipe behind the VTAB
    # "0.16M" row is unknown (§A2 [U]); PETL_Vision tunes AdaptFormer with the A1 grid (AdamW lr {1e-3, 1e-2} ×
    # wd {1e-4, 1e-3}, 100 epochs, 10 warm-up, batch 64; PETLV:experiment/config/method/adaptformer.yml): its first
    # point is used, with k = 8 for the VTAB row (method_options: {bottleneck_dim: 8}).
    recipe: ClassVar[dict] = dict(PETL_VISION_GRID)

    @classmethod
    def tuning_grid(cls, cfg, protocol: str) -> TuningGrid:
        """PETL_Vision's AdaptFormer search (BASELINES_VISION §A2, PETLV:experiment/config/method/adaptformer.yml):
        k {4, 16, 32} × s {0.05, 0.1, 0.2} with the lr × wd grid, 36 points; ``--quick``: k 16, s 0.1."""
        return petlv_grid(protocol, options={"bottleneck_dim": ADAPTFORMER_KS, "scale": ADAPTFORMER_SCALES},
                          source=" × k {4, 16, 32} × s {0.05, 0.1, 0.2} "
                                 "(PETLV:experiment/config/method/adaptformer.yml)",
                          quick_options={"bottleneck_dim": 16, "scale": 0.1})

    def __init__(self, backbone: PromptedViT, options: AdaptFormerOptions | None = None,
                 context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        for block in backbone.vit.blocks:
            branch = ParallelAdapter(block.norm2, block.mlp, getattr(block, "ls2", nn.Identity()), backbone.dim,
                                     self.options)
            self.replace_module(block, "mlp", branch)
            block.norm2 = nn.Identity()  # now inside the branch
            if hasattr(block, "ls2"):
                block.ls2 = nn.Identity()
