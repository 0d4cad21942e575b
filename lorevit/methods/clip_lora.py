"""``clip-lora``: CLIP-LoRA — low-rank updates of q, k and v in every attention block of both CLIP towers
(BASELINES_CLIP.md §7; MaxZanella/CLIP-LoRA: lora.py, loralib/layers.py, loralib/utils.py).

``y = W x + b + s · B A · drop(x)`` on each of q, k, v, with A (r, d) kaiming-uniform(a=√5), B (d, r) zero,
r 2, α 1, **s = α/√r** (rsLoRA-style, the official code's choice), dropout 0.25 on the LoRA input only, a mask per
matrix. timm's image tower has a fused ``attn.qkv`` (d → 3d): three separate rank-r pairs on its q, k and v row
blocks (:class:`~lorevit.methods.lowrank.SlicedLowRankLinear`), not one rank-r update of the 3d×d matrix.
open_clip's text tower uses ``nn.MultiheadAttention`` (a fused ``in_proj_weight`` inside
``F.multi_head_attention_forward``, which has no place for an input dropout): :class:`LowRankSelfAttention` puts
the same three pairs on its q/k/v rows and computes the attention itself (frozen weights + LoRA → q, k, v → heads →
``F.scaled_dot_product_attention`` with the causal mask → the frozen ``out_proj``). The output projections are
not adapted. 184,320 trainable parameters on ViT-B/16 (vision 12·3·2·(768+768) = 110,592, text 12·3·2·(512+512)
= 73,728).

Text features are recomputed in every step from ``a photo of a {c}.`` through the LoRA'd text tower (a private
copy: the shared frozen tower of ``knowledge`` stays untouched); image features through the LoRA'd image tower;
``logits = exp(logit_scale) · cos``; cross-entropy. :meth:`ClipLora.merge` folds every update into the weights
(``W += s·B·A``) and then keeps the class text features as constants: the merged model is the plain CLIP.

Recipe (fixed for every dataset and shot count): AdamW lr 2e-4, betas (0.9, 0.999) (torch's), weight decay 0.01,
batch 32, 500·K iterations, cosine per iteration to 1e-6, no warm-up (``max_steps``; easy-to-hard trains by
epochs and gets no ``max_steps``). Not reproduced: the official fp16 base weights with fp32 A/B (``--precision``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.errors import ConfigError
from lorevit.methods.base import AroundFrozen, Frozen, MethodContext
from lorevit.methods.clip_text import DEFAULT_TEMPLATE, TextSideMethod, check_template, prompt_names
from lorevit.methods.lowrank import SlicedLowRankLinear, lora_scale, qkv_slices

ITERATIONS_PER_SHOT = 500  # §7: 500·K iterations (1 shot → 500, 16 shots → 8,000)
# §7 (MaxZanella/CLIP-LoRA: main.py, run_utils.py): AdamW(lr 2e-4, betas (0.9, 0.999), wd 1e-2), batch 32,
# CosineAnnealingLR(total iterations, eta_min 1e-6) stepped every iteration, no warm-up
CLIP_LORA_RECIPE: dict[str, Any] = {"optimizer": "adamw", "lr": 2e-4, "weight_decay": 0.01, "batch_size": 32,
                                    "lr_min": 1e-6, "warmup_epochs": 0.0, "schedule_interval": "step"}


@dataclass
class ClipLoraOptions:
    rank: int = field(default=2, metadata={"help": "r, the rank of each of the q, k, v updates"})
    alpha: float = field(default=1.0, metadata={"help": "α: the updates are scaled by α/√r"})
    dropout: float = field(default=0.25, metadata={"help": "dropout on the LoRA input only (a mask per matrix)"})
    template: str = field(default=DEFAULT_TEMPLATE, metadata={"help": "the class prompt the text tower encodes"})

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_template(self.template)


def clip_lora_scale(alpha: float, rank: int) -> float:
    """§7 s = α/√r (CLIP-LoRA's loralib: the α/r line is commented out): 1/√2 for the defaults."""
    return lora_scale(alpha, rank, rslora=True)


class LowRankSelfAttention(AroundFrozen):
    """open_clip's text self-attention (a frozen ``nn.MultiheadAttention``) with three rank-r updates on the q, k, v
    rows of its fused ``in_proj_weight`` (§7), each ``s·B_j·A_j·drop_j(x)``.

    Called as the module it replaces, ``attn(x, x, x, need_weights=False, attn_mask=mask)`` → ``(out, None)``.
    The projection is the frozen MHA's own weight and bias (an ``nn.Linear`` view of the same tensors), so
    :meth:`merged` writes ``s·B_j·A_j`` into ``in_proj_weight`` and hands back the original module.
    """

    frozen_parts = ("attn",)

    def __init__(self, attn: nn.MultiheadAttention, rank: int, scale: float, dropout: float):
        super().__init__()
        if not getattr(attn, "_qkv_same_embed_dim", False) or attn.in_proj_weight is None \
                or attn.bias_k is not None or attn.add_zero_attn:
            raise ConfigError("clip-lora: this text tower's attention is no plain fused-qkv self-attention "
                              "(nn.MultiheadAttention with in_proj_weight); use an open_clip CLIP text tower")
        width = attn.embed_dim
        projection = nn.Linear(width, 3 * width, bias=attn.in_proj_bias is not None, device="meta")
        projection.weight = attn.in_proj_weight  # the same Parameter: merging writes into the MHA
        projection.bias = attn.in_proj_bias
        self.attn = attn.requires_grad_(False)
        self.qkv = SlicedLowRankLinear(projection, qkv_slices(projection, "qkv"), rank, scale, dropout,
                                       independent_dropout=True)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                need_weights: bool = False, attn_mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, **_: Any) -> tuple[torch.Tensor, None]:
        if (key is not None and key is not query) or (value is not None and value is not query) \
                or key_padding_mask is not None or need_weights:
            raise NotImplementedError("clip-lora's text attention is causal self-attention only (open_clip's text "
                                      "tower): no cross-attention, key padding mask or attention weights")
        attn = self.attn
        x = query if attn.batch_first else query.transpose(0, 1)  # B, T, w
        B, T, width = x.shape
        heads = attn.num_heads
        q, k, v = self.qkv(x).view(B, T, 3, heads, width // heads).permute(2, 0, 3, 1, 4)  # each B, h, T, w/h
        mask = attn_mask.to(q.dtype) if attn_mask is not None and attn_mask.is_floating_point() else attn_mask
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # the frozen MHA's dropout: off (eval)
        out = attn.out_proj(out.transpose(1, 2).reshape(B, T, width))
        return (out if attn.batch_first else out.transpose(0, 1)), None

    @torch.no_grad()
    def merged(self) -> nn.MultiheadAttention:
        """The frozen MHA with s·B_j·A_j added to rows j of ``in_proj_weight`` (in place)."""
        self.qkv.merged()
        return self.attn


class ClipLora(TextSideMethod):
    """§7: the only trained tensors are the 2 towers × blocks × 3 (A, B) pairs; mergeable into both towers."""

    mergeable = True
    recipe: ClassVar[dict] = dict(CLIP_LORA_RECIPE)

    def __init__(self, backbone: PromptedViT, options: ClipLoraOptions | None = None,
                 context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        o = self.options
        shared = self.tower.module  # the knowledge encoder's tower, shared with zero-shot features: never changed
        self.tower = Frozen(shared.private_copy(), shared=False)  # its own: LoRA goes into it, cast in place
        self.scale = clip_lora_scale(o.alpha, o.rank)
        self._sites: list[tuple[nn.Module, str, nn.Module]] = []  # (parent, attribute, inserted): merge() undoes them
        self._adapt_vision(backbone)
        self._adapt_text(self.tower.module.model)
        names = prompt_names(context.classnames)
        tokens = self.tower.module.tokenize([o.template.format(name) for name in names])["input_ids"]  # C, 77
        self.register_buffer("class_tokens", tokens, persistent=False)  # rebuilt from the class names, never saved
        self.register_buffer("merged_text", None, persistent=False)  # C, D once merged: constants from then on

    def _insert(self, parent: nn.Module, attribute: str, module: nn.Module) -> None:
        self.replace_module(parent, attribute, module)
        self._sites.append((parent, attribute, module))

    def _adapt_vision(self, backbone: PromptedViT) -> None:
        o = self.options
        for i, block in enumerate(backbone.vit.blocks):
            qkv = getattr(getattr(block, "attn", None), "qkv", None)
            if not isinstance(qkv, nn.Linear):
                raise ConfigError(f"clip-lora: block {i} of {backbone.name or 'the ViT'} has no fused Linear attn.qkv")
            self._insert(block.attn, "qkv", SlicedLowRankLinear(qkv, qkv_slices(qkv, "qkv"), o.rank, self.scale,
                                                                o.dropout, independent_dropout=True))

    def _adapt_text(self, model: nn.Module) -> None:
        o = self.options
        for i, block in enumerate(model.transformer.resblocks):
            if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
                raise ConfigError(f"clip-lora: text block {i} has no nn.MultiheadAttention (open_clip's default "
                                  "text blocks); this text tower is not supported")
            self._insert(block, "attn", LowRankSelfAttention(block.attn, o.rank, self.scale, o.dropout))

    @classmethod
    def published_recipe(cls, cfg: Any) -> dict[str, Any]:
        """§7 with ``max_steps`` = 500·K (K = ``shots``); easy-to-hard's stages count epochs, so none there."""
        recipe = dict(cls.recipe)
        if getattr(cfg, "protocol", "few-shot") != "easy-to-hard":
            recipe["max_steps"] = ITERATIONS_PER_SHOT * int(getattr(cfg, "shots", 16) or 16)
        return recipe

    def text_features(self) -> torch.Tensor:
        """C, D: normalised features of the class prompts through the LoRA'd text tower (with gradients)."""
        if self.merged_text is not None:
            return self.merged_text
        tower = self.tower.module
        tokens = {"input_ids": self.class_tokens}
        return tower(tower.token_embedding(tokens), tokens)

    def logits(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        return self.logit_scale * self.image_features(features) @ self.text_features().t().to(features.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold s·B·A into the q, k, v rows of every ``qkv`` / ``in_proj_weight`` of both towers and put the plain
        modules back (§7 "merged at eval"); the class text features are then constants, computed once."""
        for parent, attribute, module in self._sites:
            setattr(parent, attribute, module.merged())
        self._sites = []
        self.inserted = nn.ModuleList()
        self.merged_text = self.text_features()
