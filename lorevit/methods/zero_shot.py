"""``zero-shot``: CLIP classification by cosine similarity with the class prompts ``template.format(class)`` (no
training). ``template`` defaults to the dataset's own (its registry entry: CoOp's CUSTOM_TEMPLATES, BASELINES_CLIP
§1), filled in by :func:`lorevit.factory.resolve_config`; built without a dataset, ``a photo of a {}.``."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.knowledge import ZERO_SHOT_TEMPLATE, check_text_tower, class_features
from lorevit.methods.base import Method, MethodContext
from lorevit.methods.clip_text import check_template


@dataclass
class ZeroShotOptions:
    template: str = field(default=ZERO_SHOT_TEMPLATE, metadata={
        "help": "the class prompt (one {} for the name); default: the dataset's template (CoOp's CUSTOM_TEMPLATES)"})

    def __post_init__(self) -> None:
        check_template(self.template)


class ZeroShot(Method):
    """Nothing trains; the head is CLIP's own text classifier (kind 3 without learned tokens)."""

    trains = False

    def build_head(self, context: MethodContext) -> nn.Module:
        knowledge = context.knowledge or ""
        if not knowledge.startswith("clip:"):
            raise ValueError("zero-shot needs a CLIP text tower: knowledge='clip:<model>@<tag>'")
        text = class_features(knowledge, list(context.classnames), self.options.template)
        return ZeroShotHead(context.backbone, text, knowledge)


class ZeroShotHead(nn.Module):
    """logits = 100 · cos(CLIP image embedding, class text embedding)."""

    def __init__(self, backbone: PromptedViT, text_features: torch.Tensor, knowledge: str | None = None):
        super().__init__()
        if knowledge is not None:  # the text tower of another CLIP model or tag: a KnowledgeError
            check_text_tower(backbone, knowledge)
        projection = backbone.vit.head
        if isinstance(projection, nn.Identity) or getattr(projection, "out_features", None) != text_features.shape[1]:
            raise ValueError(
                f"zero-shot needs a CLIP backbone whose image projection matches the text width "
                f"{text_features.shape[1]} (e.g. vit_base_patch16_clip_quickgelu_224.openai with clip:auto); "
                f"{backbone.name!r} has head {projection}"
            )
        self.projection = projection  # frozen, part of the ViT
        self.register_buffer("text_features", F.normalize(text_features, dim=-1), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        image = F.normalize(self.projection(features), dim=-1)
        return 100.0 * image @ self.text_features.t()
