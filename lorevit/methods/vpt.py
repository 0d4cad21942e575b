"""``vpt-shallow`` / ``vpt-deep``: visual prompt tuning (prompts at the input / at every block).

As published (KMnP/vpt; BASELINES_VISION.md §A5): prompts drawn from U(−v, v), v = √(6 / (3·p² + d)) (0.0625 for
p 16, d 768, shallow and deep alike), no position embeddings, the N prompt slots overwritten before every block
(deep); 12·N·768 parameters on ViT-B/16 (N 10 → 92,160). ``vpt_dropout`` is VPT's prompt dropout
(``MODEL.PROMPT.DROPOUT``: 0.0 in KMnP's config, 0.1 in NOAH's and PETL_Vision's scripts), active in training only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.methods.base import GlobalPrompts, Method, MethodContext, Prompting, patch_area
from lorevit.methods.tuning import TuningGrid, vpt_grid


@dataclass
class VPTOptions:
    vpt_prompts: int = field(default=10, metadata={"help": "prompt tokens per block (deep) or at the input (shallow)"})
    vpt_dropout: float = field(default=0.0, metadata={"help": "dropout on the prompt tokens in training (VPT: 0.0; "
                                                               "NOAH, PETL_Vision: 0.1)"})

    def __post_init__(self) -> None:
        if self.vpt_prompts < 1:
            raise ValueError(f"vpt_prompts must be >= 1, got {self.vpt_prompts}")
        if not 0.0 <= self.vpt_dropout < 1.0:
            raise ValueError(f"vpt_dropout must be in [0, 1), got {self.vpt_dropout}")


class VPT(Method):
    deep = True

    @classmethod
    def tuning_grid(cls, cfg, protocol: str) -> TuningGrid:
        """VPT:tune_vtab.py / tune_fgvc.py ``get_lrwd_range("prompt")`` (BASELINES_VISION §A5): 10 lrs × batch/256
        × 4 wds, 40 points."""
        return vpt_grid(cfg, protocol, kind="prompt")

    def __init__(self, backbone: PromptedViT, options: VPTOptions | None = None, context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        blocks = backbone.depth if self.deep else 1
        self.prompts = GlobalPrompts(blocks, self.options.vpt_prompts, backbone.dim, patch_area(backbone))
        self.prompt_dropout = nn.Dropout(self.options.vpt_dropout)

    def forward(self, e0: torch.Tensor) -> Prompting:
        # the same prompts for every image, unless prompt dropout draws a mask per image (training)
        same = self.deep and not (self.prompt_dropout.training and self.prompt_dropout.p > 0)
        return Prompting(self.prompt_dropout(self.prompts(e0.shape[0])), shared=self.prompts.tokens if same else None)


class VPTDeep(VPT):
    """Prompts replaced at the input of every block (VPT-deep)."""


class VPTShallow(VPT):
    """Prompts inserted once, at the input of block 0 (VPT-shallow)."""

    deep = False
