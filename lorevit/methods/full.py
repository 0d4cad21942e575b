"""``full``: full fine-tuning, every parameter of the ViT (but timm's own unused ``head``) and the task head (the reference row; BASELINES_VISION.md §A4).

The one method whose ViT is not frozen: all its parameters train, and it trains in train mode (drop-path and
dropout as the backbone was built with, ``backbone_kwargs: {drop_path_rate: 0.1}``); every other method keeps
the ViT in eval mode. Its adapter is therefore the whole state dict of the ViT plus the head (``backbone.vit.*``,
``head.*``), still one safetensors file, and it loads only onto a backbone of the same architecture and size.
"""
from __future__ import annotations

from typing import ClassVar

from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.methods.base import Method, MethodContext, NoOptions
from lorevit.methods.tuning import VPT_FULL_LRS, TuningGrid, vpt_grid
from lorevit.methods.vtab_recipes import VPT_FULL


class FullFineTuning(Method):
    """Unfreezes the whole ViT (kind 2, ``requires_grad_``); nothing to merge (the weights are the model)."""

    mergeable = True
    # VPT:configs/base-finetune.yaml, tune_vtab.py: AdamW, batch 384, 100 epochs, warm-up 5, cosine; lr grid
    # {1e-3, 1e-4, 5e-4, 5e-3} × wd {0.01, 1e-3, 1e-4, 0}, lr scaled by batch/256: the grid point 1e-4, wd 1e-4 here.
    recipe: ClassVar[dict] = dict(VPT_FULL)

    @classmethod
    def tuning_grid(cls, cfg, protocol: str) -> TuningGrid:
        """VPT:tune_vtab.py ``get_lrwd_range("finetune")`` (BASELINES_VISION §A4): lr {1e-3, 1e-4, 5e-4, 5e-3} ×
        batch/256 × wd {0.01, 1e-3, 1e-4, 0}, 16 points."""
        return vpt_grid(cfg, protocol, lrs=VPT_FULL_LRS, kind="finetune")

    def __init__(self, backbone: PromptedViT, options: NoOptions | None = None,
                 context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        self._vit = (backbone.vit.requires_grad_(True),)  # a tuple: not a child (its tensors are the backbone's)
        head = getattr(backbone.vit, "head", None)  # timm's classifier (unused) or a CLIP tower's projection: frozen
        if isinstance(head, nn.Module):
            head.requires_grad_(False)

    def train(self, mode: bool = True) -> "FullFineTuning":
        """The ViT follows the method's mode (PromptedViT puts it in eval mode first: the method comes after the
        backbone in the classifier, so this wins)."""
        super().train(mode)
        self._vit[0].train(mode)
        return self

    def merge(self) -> None:
        """Nothing to fold: the fine-tuned weights are the ViT's own."""
