"""Task heads on the pooled feature: ``head: linear`` (the default) or ``head: clip`` (the public code's).

``linear``: a linear classifier on the pooled, normalised CLS feature (spec §5), zero-initialised.

``clip`` — public code, not the paper: a linear classifier (with bias) on the CLIP image embedding
as CLIP itself computes it, L2-normalised and multiplied by CLIP's temperature::

    z = proj(ln_post(CLS))                     the projected image embedding (512-d for ViT-B/16)
    logits = W · (exp(logit_scale) · z / ‖z‖) + b

timm's CLIP image towers keep ``ln_post`` as the ViT's final norm and CLIP's projection as the
model's ``head`` (``num_classes`` = the joint embedding width); both stay frozen, part of the Black
Box. ``logit_scale`` comes from the CLIP checkpoint's text side (open_clip), read when the
knowledge encoder is the backbone's own tagged CLIP text tower (``clip:auto``); otherwise CLIP's
initial value ln(1/0.07) is used (and logged). It is saved in the adapter, so a loaded adapter
never needs the text tower for it.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.errors import ConfigError

log = logging.getLogger(__name__)

HEADS = ("linear", "clip", "text")
CLIP_INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature: exp = 14.29


def linear_head(features: int, num_classes: int) -> nn.Linear:
    """Zero-initialised, as timm fine-tunes heads: training starts at ln(C)."""
    head = nn.Linear(features, num_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class ClipHead(nn.Module):
    """logits = W · (exp(logit_scale) · normalize(proj(feature))) + b — public code, not the paper.

    ``features`` (B, d) is the pooled CLS after the final norm (CLIP's ``ln_post``); ``proj`` is the
    frozen CLIP projection (the timm model's ``head``), held outside this module's state: the
    adapter keeps only W, b and the logit scale.
    """

    def __init__(self, projection: nn.Linear, num_classes: int, logit_scale: float = CLIP_INIT_LOGIT_SCALE):
        super().__init__()
        self._projection = (projection,)  # frozen Black Box weights, not this head's
        self.classifier = linear_head(projection.out_features, num_classes)
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))  # ln of CLIP's temperature

    @property
    def projection(self) -> nn.Linear:
        return self._projection[0]

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """exp(logit_scale) × the L2-normalised projected image embedding: B, d → B, D."""
        return self.logit_scale.exp() * F.normalize(self.projection(features), dim=-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        return self.classifier(self.embed(features))


class TextHead(nn.Module):
    """``head: text`` (issue 21 §2, lorevit's, in neither paper): logits = exp(logit_scale) · cos(proj(feature), t_c).

    ``t_c`` are the frozen CLIP text features of ``template.format(class name)`` — CLIP's zero-shot classifier with
    the (prompted) image tower in front, so a model trained on some classes scores any class list given its names
    (base-to-novel, cross-dataset). Nothing in it trains; the text features are recomputed from the names, never
    saved (non-persistent), the logit scale is (as in :class:`ClipHead`)."""

    def __init__(self, projection: nn.Linear, text_features: torch.Tensor, logit_scale: float = CLIP_INIT_LOGIT_SCALE):
        super().__init__()
        if projection.out_features != text_features.shape[1]:
            raise ConfigError(f"head: text: the CLIP image projection is {projection.out_features}-wide but the text "
                              f"features are {text_features.shape[1]}-wide; use the backbone's own text tower "
                              "(knowledge: clip:auto)")
        self._projection = (projection,)  # frozen Black Box weights, not this head's
        self.register_buffer("text_features", F.normalize(text_features.float(), dim=-1), persistent=False)  # C, D
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    @property
    def projection(self) -> nn.Linear:
        return self._projection[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        image = F.normalize(self.projection(features), dim=-1)  # B, D
        return self.logit_scale.exp() * image @ self.text_features.t()


def clip_projection(backbone: PromptedViT) -> nn.Linear:
    """The CLIP image projection of a timm CLIP tower; one ConfigError for any other backbone."""
    from lorevit.knowledge import open_clip_model_for

    projection = getattr(backbone.vit, "head", None)
    if open_clip_model_for(backbone.name) is None or not isinstance(projection, nn.Linear):
        raise ConfigError(
            f"head: clip reads CLIP's projected image embedding, but backbone {backbone.name!r} is no timm CLIP image "
            "tower with its projection (e.g. vit_base_patch16_clip_quickgelu_224.openai, built without num_classes=0); "
            "use head: linear or a CLIP backbone")
    return projection


def clip_logit_scale(backbone: PromptedViT, knowledge: str | None) -> float:
    """ln of CLIP's temperature from the backbone's own CLIP checkpoint (its tagged text tower), else ln(1/0.07)."""
    from lorevit.knowledge import KnowledgeError, check_matching_towers, get_encoder

    try:
        own = bool(knowledge) and "@" in knowledge and check_matching_towers(backbone.name, backbone.weights, knowledge)
    except KnowledgeError:
        own = False
    if own:
        return float(get_encoder(knowledge)._model.logit_scale.detach())
    log.info("head: clip uses CLIP's initial logit scale ln(1/0.07) (no tagged CLIP text tower of %s to read it "
             "from; set knowledge: clip:auto with hub weights for the checkpoint's own)", backbone.name)
    return CLIP_INIT_LOGIT_SCALE


def build_head(kind: str, backbone: PromptedViT, num_classes: int, knowledge: str | None = None,
               read_logit_scale: bool = True, classnames=None, template: str | None = None) -> nn.Module:
    """The task head ``kind`` (``linear`` | ``clip`` | ``text``) for ``num_classes`` classes on ``backbone``.

    ``read_logit_scale=False`` (adapters, whose saved state holds it) skips loading the CLIP text tower for the
    scale (``text`` still encodes ``classnames`` with ``template``, default ``a photo of a {}.``).
    """
    if kind == "linear":
        return linear_head(backbone.feature_dim, num_classes)
    if kind == "text":
        from lorevit.knowledge import ZERO_SHOT_TEMPLATE, class_features

        if not (knowledge or "").startswith("clip:") or not classnames:
            raise ConfigError("head: text scores images against CLIP text features of the class names: it needs "
                              f"knowledge clip:<model> (got {knowledge!r}) and a CLIP backbone")
        projection = clip_projection(backbone)
        text = class_features(knowledge, list(classnames), template or ZERO_SHOT_TEMPLATE)  # C, D
        scale = clip_logit_scale(backbone, knowledge) if read_logit_scale else CLIP_INIT_LOGIT_SCALE
        return TextHead(projection, text, scale)
    if kind == "clip":
        projection = clip_projection(backbone)
        scale = clip_logit_scale(backbone, knowledge) if read_logit_scale else CLIP_INIT_LOGIT_SCALE
        return ClipHead(projection, num_classes, scale)
    raise ConfigError(f"head: {kind!r} is not one of {', '.join(HEADS)}")
