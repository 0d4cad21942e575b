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

from lorevit.backbone import PromptedViT, Tokens
from lorevit.heads import linear_head
from lorevit.losses import total_loss
from lorevit.methods import Method


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
        # set by lorevit.factory.load_adapter: the training Config, measured results, trained-on weights' sha256
        self.config, self.metrics, self.backbone_sha256 = None, None, None

    def save_pretrained(self, save_directory, config=None, metrics=None):
        """config.json + model.safetensors (trained parameters only) + README.md: see :mod:`lorevit.adapters.hub`."""
        from lorevit.adapters.hub import save_pretrained

        return save_pretrained(self, save_directory, config=config, metrics=metrics)

    def push_to_hub(self, repo_id: str, config=None, metrics=None, **kwargs) -> str:
        """Upload :meth:`save_pretrained`'s files to the Hugging Face Hub (``private``, ``token``, ``commit_message``)."""
        from lorevit.adapters.hub import push_to_hub

        return push_to_hub(self, repo_id, config=config, metrics=metrics, **kwargs)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def forward(self, images: torch.Tensor, return_attention: bool = False) -> Output:
        e0 = self.backbone.embed_patches(images)  # B, M, d
        prompting = self.method(e0)
        tokens = self.backbone.forward_tokens(e0, prompting.prompts, return_attention=return_attention,
                                              shared=prompting.shared, appended=prompting.appended)
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

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """What an adapter holds: every trainable parameter (``requires_grad``), named by its first path —
        ``method.*``, ``head.*``, or ``backbone.*`` for parameters inside the ViT (modules a method put there,
        ViT parameters it unfroze) — and the buffers of the method and the head (BatchNorm statistics, CLIP's
        logit scale). Never the frozen ViT. Empty for a method that trains nothing."""
        if not self.method.trains:
            return {}
        state = {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}
        for prefix, module in (("method", self.method), ("head", self.head)):
            state.update({f"{prefix}.{name}": t.detach() for name, t in module.state_dict(keep_vars=True).items()
                          if not isinstance(t, nn.Parameter)})
        return state

    def load_trained_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Put :meth:`trained_state_dict`'s tensors back; a missing or an unexpected key, or a tensor of another
        shape, is a ``KeyError`` / ``RuntimeError`` naming it."""
        expected = set(self.trained_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise KeyError(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, unexpected "
                           f"{unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        self.load_state_dict(state, strict=False)

    def merge(self) -> "PromptedClassifier":
        """Fold the method's change into the ViT's weights (``method.mergeable``); a MergeError otherwise."""
        self.method.merge()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters; the KLA counts as trainable although inference skips it."""
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return trainable, sum(p.numel() for p in self.parameters())


