"""What every method is: a small module that turns E0 into prompts, plus an optional extra loss.

Methods decide *what* is trained (their own parameters and the task head); the training loop
in ``lorevit.training`` decides *how*, the same for all of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..backbone import PromptedViT


@dataclass
class Prompting:
    prompts: torch.Tensor | None  # B, L (deep) or 1 (shallow), n, d — or None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)  # what the extra loss reads


class Method(nn.Module):
    name = ""
    uses_knowledge = False  # needs the class text features (KLA)
    has_white_box = False  # built from a White Box (config key white_box: paper | public)
    trains = True  # zero-shot is evaluated, not trained

    def __init__(self, backbone: PromptedViT, **arch):
        super().__init__()

    def forward(self, e0: torch.Tensor) -> Prompting:  # e0: B, M, d
        return Prompting(None)

    def extra_loss(self, aux: dict, labels: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor | None:
        return None


class GlobalPrompts(nn.Module):
    """Learned prompt tokens shared by every image: (blocks, n, d), VPT's initialisation.

    ``std`` draws them from N(0, std²) instead (the public LORE code: 0.02).
    """

    def __init__(self, blocks: int, n: int, dim: int, patch_area: int, std: float | None = None):
        super().__init__()
        bound = math.sqrt(6.0 / float(3 * patch_area + dim))  # VPT: xavier-uniform over patch fan-in
        tokens = torch.empty(blocks, n, dim)
        self.tokens = nn.Parameter(tokens.uniform_(-bound, bound) if std is None else tokens.normal_(0.0, std))

    def forward(self, batch: int) -> torch.Tensor:  # B, blocks, n, d
        return self.tokens.unsqueeze(0).expand(batch, -1, -1, -1)


def patch_area(backbone: PromptedViT) -> int:
    h, w = backbone.vit.patch_embed.patch_size
    return h * w
