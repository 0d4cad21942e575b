"""``vpt-shallow`` / ``vpt-deep``: visual prompt tuning (prompts at the input / at every block)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lorevit.backbone import PromptedViT
from lorevit.methods.base import GlobalPrompts, Method, MethodContext, Prompting, patch_area


@dataclass
class VPTOptions:
    vpt_prompts: int = field(default=10, metadata={"help": "prompt tokens per block (deep) or at the input (shallow)"})

    def __post_init__(self) -> None:
        if self.vpt_prompts < 1:
            raise ValueError(f"vpt_prompts must be >= 1, got {self.vpt_prompts}")


class VPT(Method):
    deep = True

    def __init__(self, backbone: PromptedViT, options: VPTOptions | None = None, context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        blocks = backbone.depth if self.deep else 1
        self.prompts = GlobalPrompts(blocks, self.options.vpt_prompts, backbone.dim, patch_area(backbone))

    def forward(self, e0: torch.Tensor) -> Prompting:
        return Prompting(self.prompts(e0.shape[0]))


class VPTDeep(VPT):
    """Prompts replaced at the input of every block (VPT-deep)."""


class VPTShallow(VPT):
    """Prompts inserted once, at the input of block 0 (VPT-shallow)."""

    deep = False
