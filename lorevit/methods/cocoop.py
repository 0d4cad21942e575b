"""``cocoop``: CoCoOp — CoOp's context shifted per image by a Meta-Net on the image feature
(BASELINES_CLIP.md §3; KaiyangZhou/CoOp:trainers/cocoop.py).

``π(f) = Linear(32→w)(ReLU(Linear(D→D/16)(f)))`` on the **L2-normalised** image embedding f; ``ctx_i = ctx + π(f_i)``
(the same shift for every slot); each image gets its own C prompts, so the text tower runs B·C sequences and the
cost grows as B·C (the official recipe uses batch 1, per device here). Trains ``ctx`` (M, w) and the Meta-Net
(35,360 parameters on ViT-B/16). Recipe ``vit_b16_c4_ep10_batch1_ctxv1``: M 4, init "a photo of a", SGD 0.002,
batch 1, 10 epochs, Dassl's warm-up and cosine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.methods.base import MethodContext
from lorevit.methods.clip_text import ClassPrompts, TextSideMethod, check_context
from lorevit.methods.coop import coop_family_recipe


@dataclass
class CoCoOpOptions:
    n_ctx: int = field(default=4, metadata={"help": "M, the number of learned context vectors"})
    ctx_init: str = field(default="a photo of a", metadata={"help": "initial context words; empty: N(0, 0.02)"})

    def __post_init__(self) -> None:
        check_context(self.n_ctx, self.ctx_init)


class MetaNet(nn.Sequential):
    """§3 Meta-Net: Linear(D, D/16) → ReLU → Linear(D/16, w), biases on."""

    def __init__(self, vis_dim: int, ctx_dim: int):
        hidden = max(1, vis_dim // 16)
        super().__init__(nn.Linear(vis_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, ctx_dim))


class CoCoOp(TextSideMethod):
    recipe = coop_family_recipe(10, batch_size=1)

    def __init__(self, backbone: PromptedViT, options: CoCoOpOptions | None = None, context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        o = self.options
        self.prompts = ClassPrompts(self.tower.module, context.classnames, o.n_ctx, o.ctx_init, "end")
        width = self.prompts.prefix.shape[-1]
        ctx = torch.empty(o.n_ctx, width)
        nn.init.normal_(ctx, std=0.02)
        if self.prompts.init_len:
            ctx[o.n_ctx - self.prompts.init_len:] = self.prompts.init_embedding
        self.ctx = nn.Parameter(ctx)
        self.meta_net = MetaNet(self.tower.module.dim, width)

    def logits(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        image = self.image_features(features)  # B, D
        shifted = self.ctx.unsqueeze(0) + self.meta_net(image).unsqueeze(1)  # B, M, w
        sequences = torch.cat([self.prompts.assemble(ctx) for ctx in shifted])  # B·C, 77, w
        text = self.encode_prompts(self.prompts, sequences).unflatten(0, (image.shape[0], -1))  # B, C, D
        return self.logit_scale * torch.einsum("bd,bcd->bc", image, text.to(image.dtype))
