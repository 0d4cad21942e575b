"""``coop``: CoOp — learned context vectors in the class prompts of the frozen CLIP text tower
(BASELINES_CLIP.md §2; KaiyangZhou/CoOp:trainers/coop.py).

Prompt ``[SOS] v_1 … v_M [CLASS] . [EOS]`` with ``ctx`` (M, w) shared by the classes (``csc``: C, M, w, one
context per class); image B×3×H×W → the frozen CLIP image embedding; text C×77×w → C×D through the frozen
tower; ``logits = exp(logit_scale)·cos``. Only ``ctx`` trains. Initialisation: ``ctx_init`` empty → N(0, 0.02);
``ctx_init: "a photo of a"`` → its token embeddings (then untrained CoOp is zero-shot CLIP with
``a photo of a {c}.``). Where ``ctx_init`` has fewer tokens than ``n_ctx`` the words take the last slots and
the first ones are N(0, 0.02) (CoOp itself sets n_ctx to the word count).

Recipe (IJCV few-shot): SGD lr 0.002, momentum 0.9, wd 5e-4, batch 32, one warm-up epoch at constant 1e-5, cosine
stepped per epoch (Dassl), epochs by shots (1 → 50, 2/4 → 100, 8/16 → 200; ImageNet 50), last-epoch model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.methods.base import MethodContext
from lorevit.methods.clip_text import ClassPrompts, TextSideMethod, check_context

POSITIONS = ("end", "middle", "front")


def coop_family_recipe(epochs: int, batch_size: int = 32, lr: float = 0.002) -> dict[str, Any]:
    """Dassl's optimiser and schedule (BASELINES_CLIP §0): SGD momentum 0.9, wd 5e-4, cosine to 0 stepped per
    epoch after one epoch of constant warm-up at 1e-5."""
    return {"optimizer": "sgd", "lr": lr, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": batch_size,
            "epochs": epochs, "lr_min": 0.0, "warmup_epochs": 1, "warmup": "constant", "warmup_lr": 1e-5,
            "schedule_interval": "epoch"}


def coop_epochs(cfg: Any) -> int:
    """CoOp's epochs by shot count: 1 → 50, 2/4 → 100, 8/16 (and more) → 200; ImageNet 50 for all shots (§2)."""
    if "imagenet" in str(getattr(cfg, "dataset", "")).lower():
        return 50
    shots = int(getattr(cfg, "shots", 16) or 16)
    return 50 if shots <= 1 else 100 if shots <= 4 else 200


@dataclass
class CoOpOptions:
    n_ctx: int = field(default=16, metadata={"help": "M, the number of learned context vectors"})
    ctx_init: str = field(default="", metadata={"help": "initial context words (e.g. 'a photo of a'); empty: N(0, 0.02)"})
    class_token_position: str = field(default="end", metadata={"help": "end | middle | front"})
    csc: bool = field(default=False, metadata={"help": "class-specific context (C×M×w) instead of one shared"})

    def __post_init__(self) -> None:
        check_context(self.n_ctx, self.ctx_init)
        if self.class_token_position not in POSITIONS:
            raise ValueError(f"class_token_position must be one of {', '.join(POSITIONS)}, got {self.class_token_position!r}")
        if self.csc and self.ctx_init:
            raise ValueError("csc (class-specific context) starts from random vectors, as CoOp's: drop ctx_init or "
                             "set csc: false")


class CoOp(TextSideMethod):
    """§2: ``ctx`` (M, w) or (C, M, w) is the only trained tensor."""

    recipe = coop_family_recipe(200)

    def __init__(self, backbone: PromptedViT, options: CoOpOptions | None = None, context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        o = self.options
        self.prompts = ClassPrompts(self.tower.module, context.classnames, o.n_ctx, o.ctx_init, o.class_token_position)
        self.ctx = nn.Parameter(self.initial_context(len(context.classnames) if o.csc else None))

    def initial_context(self, classes: int | None) -> torch.Tensor:
        """ctx: N(0, 0.02), the init words' embeddings in the last slots (§2 Init)."""
        width = self.prompts.prefix.shape[-1]
        ctx = torch.empty((classes, self.options.n_ctx, width) if classes else (self.options.n_ctx, width))
        nn.init.normal_(ctx, std=0.02)
        k = self.prompts.init_len
        if k:
            ctx[..., ctx.shape[-2] - k:, :] = self.prompts.init_embedding.to(ctx.dtype)
        return ctx

    @classmethod
    def published_recipe(cls, cfg: Any) -> dict[str, Any]:
        return coop_family_recipe(coop_epochs(cfg))

    def text_features(self) -> torch.Tensor:
        """C, D: the class text features of the current context (with gradients to ``ctx``)."""
        return self.encode_prompts(self.prompts, self.prompts.assemble(self.ctx))

    def logits(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        return self.logit_scale * self.image_features(features) @ self.text_features().t().to(features.dtype)
