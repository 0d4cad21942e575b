"""Three methods that live outside lorevit, one per kind of the method interface, registered from here only:

- ``test-one-token`` (kind 1, prompt tokens): one learned token at the input of block 0;
- ``test-rank-one`` (kind 2, a change inside the ViT): a rank-1 delta beside every ``attn.qkv``, zero at the
  start (b = 0), mergeable into the qkv weights;
- ``test-text-context`` (kind 3, classify through text): class text features from the frozen text tower, run
  inside the step on token embeddings one row of which (the context vector) is learned.

They touch no file of ``lorevit/``: :func:`register` plugs them in through ``lorevit.methods.register_method``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lorevit.methods import Frozen, Method, MethodContext, Prompting, register_method, unregister_method

NAMES = ("test-one-token", "test-rank-one", "test-text-context")


@dataclass
class OneTokenOptions:
    std: float = field(default=0.02, metadata={"help": "initial token ~ N(0, std²)"})

    def __post_init__(self) -> None:
        if not self.std > 0:
            raise ValueError(f"std must be positive, got {self.std}")


class OneToken(Method):
    """Kind 1: one prompt token for block 0 (VPT-shallow with a single token)."""

    def __init__(self, backbone, options=None, context=None):
        super().__init__(backbone, options, context)
        self.token = nn.Parameter(torch.randn(1, 1, backbone.dim) * self.options.std)  # 1 block, 1 token, d

    def forward(self, e0: torch.Tensor) -> Prompting:  # e0: B, M, d
        return Prompting(self.token.unsqueeze(0).expand(e0.shape[0], -1, -1, -1))  # B, 1, 1, d


@dataclass
class RankOneOptions:
    scale: float = field(default=1.0, metadata={"help": "the delta's scale"})


class RankOneDelta(nn.Module):
    """qkv(x) + scale · (x·a) b: the frozen Linear plus a rank-1 update that starts at zero (b = 0)."""

    def __init__(self, base: nn.Linear, scale: float):
        super().__init__()
        self.base, self.scale = base, scale  # base: the ViT's own frozen qkv
        self.a = nn.Parameter(torch.randn(base.in_features) / base.in_features ** 0.5)  # in
        self.b = nn.Parameter(torch.zeros(base.out_features))  # out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B, N, in → B, N, out
        return self.base(x) + self.scale * (x @ self.a)[..., None] * self.b


class RankOne(Method):
    """Kind 2: a rank-1 delta beside every ``attn.qkv``; ``merge()`` folds it into the qkv weights."""

    mergeable = True

    def __init__(self, backbone, options=None, context=None):
        super().__init__(backbone, options, context)
        self._sites = []  # (attention module, its delta): where merge() puts the plain Linear back
        for block in backbone.vit.blocks:
            delta = RankOneDelta(block.attn.qkv, self.options.scale)
            self.replace_module(block.attn, "qkv", delta)
            self._sites.append((block.attn, delta))

    @torch.no_grad()
    def merge(self) -> None:
        for attn, delta in self._sites:
            delta.base.weight += delta.scale * torch.outer(delta.b, delta.a)  # out, in
            attn.qkv = delta.base
        self._sites = []


@dataclass
class TextContextOptions:
    template: str = field(default="x {}.", metadata={"help": "class prompt; its first word's embedding is learned"})
    scale: float = field(default=10.0, metadata={"help": "logit scale"})

    def __post_init__(self) -> None:
        if "{}" not in self.template:
            raise ValueError(f"template must hold {{}} for the class name, got {self.template!r}")


class TextContextHead(nn.Module):
    """logits = scale · cos(W·feature, text(classes)), where text() runs the frozen tower on the class prompts'
    token embeddings with row 1 (the first word, after the start token) replaced by the learned context."""

    def __init__(self, feature_dim: int, classnames, tower, options: TextContextOptions):
        super().__init__()
        self.tower = Frozen(tower)  # never trained, never saved
        tokens = tower.tokenize([options.template.format(c) for c in classnames])
        self.token_names = sorted(tokens)
        for name in self.token_names:  # C, T each; moved with the head, not saved
            self.register_buffer(f"tok_{name}", tokens[name], persistent=False)
        with torch.no_grad():
            first = tower.token_embedding(tokens)[0, 1]  # width
        self.context = nn.Parameter(first.clone())
        self.project = nn.Linear(feature_dim, tower.dim)
        self.scale = options.scale

    def text_features(self) -> torch.Tensor:  # C, dim
        tokens = {name: getattr(self, f"tok_{name}") for name in self.token_names}
        with torch.no_grad():
            embeddings = self.tower.module.token_embedding(tokens)  # C, T, width
        embeddings = torch.cat([embeddings[:, :1], self.context.expand(embeddings.shape[0], 1, -1),
                                embeddings[:, 2:]], dim=1)
        return self.tower(embeddings, tokens)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        image = F.normalize(self.project(features), dim=-1)
        return self.scale * image @ self.text_features().t()


class TextContext(Method):
    """Kind 3: no prompts for the image; the head classifies through the text tower."""

    def build_head(self, context: MethodContext) -> nn.Module:
        return TextContextHead(context.backbone.feature_dim, context.classnames, context.text_tower(), self.options)


def register() -> tuple[str, ...]:
    register_method("test-one-token", OneToken, OneTokenOptions)
    register_method("test-rank-one", RankOne, RankOneOptions)
    register_method("test-text-context", TextContext, TextContextOptions)
    return NAMES


def unregister() -> None:
    for name in NAMES:
        unregister_method(name)
