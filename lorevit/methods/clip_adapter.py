"""``clip-adapter``: CLIP-Adapter — a residual bottleneck MLP on the frozen CLIP features
(BASELINES_CLIP.md §5; gaopengcuhk/CLIP-Adapter:clip_adapter.py).

``A(x) = ReLU(W2 ReLU(W1 x))``, W1 D→D/``reduction``, W2 back, no biases (A(x) ≥ 0). Visual (default):
``f' = α A(f) + (1−α) f`` on the unnormalised image embedding, then normalised; text (the paper's variant):
the same on the frozen zero-shot text features (β = α); ``both``: one adapter each. Text features: the frozen
zero-shot prompts of ``template`` (the dataset's CUSTOM_TEMPLATES entry), computed once. 131,072 parameters on
ViT-B/16 (visual). α: 0.2 in the official file; the paper searches it per dataset (≈0.6 for DTD, EuroSAT) [U].
Recipe: the README says "follow CoOp's command" → CoOp's schedule [I].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.knowledge import class_features
from lorevit.methods.base import MethodContext
from lorevit.methods.clip_text import DEFAULT_TEMPLATE, TextSideMethod, check_template, prompt_names
from lorevit.methods.coop import coop_epochs, coop_family_recipe

SIDES = ("visual", "text", "both")


@dataclass
class ClipAdapterOptions:
    alpha: float = field(default=0.2, metadata={"help": "α, the residual ratio of the adapted feature"})
    reduction: int = field(default=4, metadata={"help": "bottleneck D/reduction"})
    side: str = field(default="visual", metadata={"help": "visual | text | both"})
    template: str = field(default=DEFAULT_TEMPLATE, metadata={"help": "zero-shot template (CoOp's CUSTOM_TEMPLATES)"})

    def __post_init__(self) -> None:
        check_template(self.template)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {self.reduction}")
        if self.side not in SIDES:
            raise ValueError(f"side must be one of {', '.join(SIDES)}, got {self.side!r}")


class ResidualAdapter(nn.Sequential):
    """§5 A(x) = ReLU(W2 · ReLU(W1 x)), no biases, PyTorch's default Linear init."""

    def __init__(self, dim: int, reduction: int):
        hidden = max(1, dim // reduction)
        super().__init__(nn.Linear(dim, hidden, bias=False), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim, bias=False), nn.ReLU(inplace=True))


def blend(x: torch.Tensor, adapter: nn.Module, alpha: float) -> torch.Tensor:
    """§5 x' = α·A(x) + (1−α)·x."""
    return alpha * adapter(x) + (1 - alpha) * x


class ClipAdapter(TextSideMethod):
    recipe = coop_family_recipe(200)
    encodes_prompts = False  # §5 (d): the zero-shot text features are computed once, constants while training

    def __init__(self, backbone: PromptedViT, options: ClipAdapterOptions | None = None,
                 context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        o = self.options
        dim = self.tower.module.dim
        self.visual = ResidualAdapter(dim, o.reduction) if o.side in ("visual", "both") else None
        self.text = ResidualAdapter(dim, o.reduction) if o.side in ("text", "both") else None
        text = class_features(context.knowledge, prompt_names(context.classnames), o.template)  # C, D, frozen
        self.register_buffer("text_features", F.normalize(text, dim=-1), persistent=False)

    @classmethod
    def published_recipe(cls, cfg: Any) -> dict[str, Any]:
        return coop_family_recipe(coop_epochs(cfg))

    def logits(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        from lorevit.methods.clip_text import clip_image_features

        image = clip_image_features(self.backbone, features)  # B, D, not normalised (as the official code)
        if self.visual is not None:
            image = blend(image, self.visual, self.options.alpha)
        text = self.text_features.to(image.dtype)
        if self.text is not None:
            text = F.normalize(blend(text, self.text, self.options.alpha), dim=-1)
        return self.logit_scale * F.normalize(image, dim=-1) @ text.t()
