"""``vpt-shallow`` / ``vpt-deep``: visual prompt tuning (prompts at the input / at every block)."""
from __future__ import annotations

import torch

from ..backbone import PromptedViT
from .base import GlobalPrompts, Method, Prompting, patch_area


class VPT(Method):
    deep = True

    def __init__(self, backbone: PromptedViT, vpt_prompts: int = 10, **arch):
        super().__init__(backbone)
        blocks = backbone.depth if self.deep else 1
        self.prompts = GlobalPrompts(blocks, vpt_prompts, backbone.dim, patch_area(backbone))

    def forward(self, e0: torch.Tensor) -> Prompting:
        return Prompting(self.prompts(e0.shape[0]))


class VPTDeep(VPT):
    name = "vpt-deep"


class VPTShallow(VPT):
    name = "vpt-shallow"
    deep = False
