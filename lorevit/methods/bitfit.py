"""``bitfit``: train every bias of the frozen ViT, and the head (Ben Zaken et al., ACL 2022; BASELINES_VISION.md §A4).

Every parameter of the ViT whose name ends in ``bias`` is unfrozen (PETLV:experiment/build_model.py; VPT's
``tinytl-bias``): patch projection, per block norm1, qkv, proj, norm2, fc1, fc2, and the final norm. ViT-B/16:
768 + 12·8,448 + 768 = 102,912. The architecture is unchanged, so merging is trivial: the trained biases already
are the ViT's weights (``merge()`` changes nothing).
"""
from __future__ import annotations

from typing import ClassVar

from lorevit.backbone import PromptedViT
from lorevit.methods.base import Method, MethodContext, NoOptions
from lorevit.methods.tuning import TuningGrid, petlv_grid
from lorevit.methods.vtab_recipes import PETL_VISION_GRID


def bias_names(vit) -> list[str]:
    """The ViT parameters BitFit trains: every name ending in ``bias`` (§A4), except the ViT's own ``head``
    (timm's classifier, never used: lorevit's task head replaces it; in CLIP towers the frozen projection)."""
    return [name for name, _ in vit.named_parameters()
            if name.rsplit(".", 1)[-1] == "bias" and not name.startswith("head.")]


class BitFit(Method):
    """Unfreezes the ViT's biases (kind 2, ``requires_grad_``); trivially mergeable."""

    mergeable = True
    # V-PETL / PETL_Vision tune BitFit with the A1 grid (AdamW, lr {1e-3, 1e-2} × wd {1e-4, 1e-3}, 100 epochs,
    # 10 warm-up, batch 64; PETLV:experiment/config/lr_wd_vtab_processed.yml); the origin of V-PETL's BitFit VTAB
    # row is not stated (§B1 [U]): the grid's first point is used.
    recipe: ClassVar[dict] = dict(PETL_VISION_GRID)

    @classmethod
    def tuning_grid(cls, cfg, protocol: str) -> TuningGrid:
        """PETL_Vision's lr × wd grid (BASELINES_VISION §A1), 4 points: the recipe's own source (§A4; the VTAB row's
        origin [U])."""
        return petlv_grid(protocol)

    def __init__(self, backbone: PromptedViT, options: NoOptions | None = None,
                 context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        parameters = dict(backbone.vit.named_parameters())
        for name in bias_names(backbone.vit):
            parameters[name].requires_grad_(True)

    def merge(self) -> None:
        """Nothing to fold: BitFit's trained biases are the ViT's own parameters."""
