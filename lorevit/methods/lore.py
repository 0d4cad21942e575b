"""``lore`` and ``lore-no-kp``: the White Box (LIN → PG, plus KLA for L_kp) on the Black Box.

Per block the ViT sees ``n_global`` learned global prompts (VPT-deep, shared by all images)
followed by ``n_local`` locality-aware prompts from the Prompt Generator (spec §5): 8 + 2.

``white_box`` picks the White Box's modules: ``paper`` (the spec's equations, the default) or
``public`` (the public code's ViG LIN, BatchNorm PG and one-head KLA, ``white_box/public.py``; its
global prompts start from N(0, 0.02) and block 0's prompts pass the ViT's pre-norm — CLIP's
``ln_pre``, timm's ``norm_pre`` — like the other tokens).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lorevit.backbone import PromptedViT
from lorevit.losses import kp_loss
from lorevit.white_box import (KnowledgeLocalityAttention, LocalityInteraction, PromptGenerator,
                         PublicKnowledgeLocalityAttention, PublicLocalityInteraction, PublicPromptGenerator)
from lorevit.methods.base import GlobalPrompts, Method, MethodContext, Prompting, patch_area
from lorevit.methods.tuning import TuningGrid, index_of, product_points

# bench suite vtab/fgvc grid — our choice: LORE_SPEC states no search. lr × these around the run's lr (the
# spec's 0.003), × the weight decays of the public per-dataset configs (LORE_SPEC "Public per-dataset recipes":
# 0.001 CIFAR, 0.1 ImageNet, 0.5 most, 1.0 Dogs/EuroSAT); --quick: lr × 1 and × 2 at wd 0.5 (the config default)
LORE_LR_FACTORS = (0.5, 1.0, 2.0)
LORE_WDS = (0.001, 0.1, 0.5, 1.0)

# white_box → (LIN, PG, KLA, std of the global prompts' init (None: VPT's), block 0's prompts through norm_pre)
WHITE_BOXES = {
    "paper": (LocalityInteraction, PromptGenerator, KnowledgeLocalityAttention, None, False),
    "public": (PublicLocalityInteraction, PublicPromptGenerator, PublicKnowledgeLocalityAttention, 0.02, True),
}


@dataclass
class LoreNoKPOptions:
    """The White Box's size (spec §5's table); the same keys as the flat config keys ``--n-global`` ..."""

    n_global: int = field(default=8, metadata={"help": "global prompts per block (VPT-deep's, shared by all images)"})
    n_local: int = field(default=2, metadata={"help": "locality-aware prompts per block, from the Prompt Generator"})
    bottleneck: int = field(default=32, metadata={"help": "rank r of the Prompt Generator (Eq. 8-9)"})
    knn: int = field(default=9, metadata={"help": "k of LIN's kNN graph (Eq. 2)"})
    white_box: str = field(default="paper", metadata={"help": "paper (the spec's equations) | public (the public code's)"})

    def __post_init__(self) -> None:
        for key, low in (("n_global", 0), ("n_local", 0), ("bottleneck", 1), ("knn", 1)):
            if getattr(self, key) < low:
                raise ValueError(f"{key} must be >= {low}, got {getattr(self, key)}")
        if self.white_box not in WHITE_BOXES:
            raise ValueError(f"unknown white_box {self.white_box!r}; choose one of {', '.join(WHITE_BOXES)}")


@dataclass
class LoreOptions(LoreNoKPOptions):
    top_n: int = field(default=9, metadata={"help": "N, the patches KLA keeps per knowledge query (Eq. 6)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.top_n < 1:
            raise ValueError(f"top_n must be >= 1, got {self.top_n}")


class LoreNoKP(Method):
    """LIN + PG + global prompts + head, trained by the task loss alone (paper's "w/o L_kp")."""

    has_white_box = True

    @classmethod
    def tuning_grid(cls, cfg, protocol: str) -> TuningGrid:
        """Our choice (LORE_SPEC declares no grid): lr × {0.5, 1, 2} of the run's lr × wd {0.001, 0.1, 0.5, 1.0},
        12 points."""
        points = product_points(LORE_LR_FACTORS, LORE_WDS, scale=cfg.lr)
        return TuningGrid(tuple(points), f"our choice (LORE_SPEC declares no grid): lr × {{0.5, 1, 2}} of {cfg.lr:g} "
                          "× wd {0.001, 0.1, 0.5, 1.0} (the public per-dataset configs' weight decays)",
                          tuple(index_of(points, lr=f * cfg.lr, weight_decay=0.5) for f in (1.0, 2.0)))

    def __init__(self, backbone: PromptedViT, options: LoreNoKPOptions | None = None,
                 context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        o = self.options
        n_global, n_local, bottleneck, knn, white_box = o.n_global, o.n_local, o.bottleneck, o.knn, o.white_box
        d, L = backbone.dim, backbone.depth
        self.white_box = white_box
        Lin, Generator, _, prompt_std, through_norm_pre = WHITE_BOXES[white_box]
        self.lin = Lin(d, k=knn)
        self.generator = Generator(d, L, n_local=n_local, rank=bottleneck)
        self.global_prompts = GlobalPrompts(L, n_global, d, patch_area(backbone), std=prompt_std) if n_global else None
        # The ViT's own frozen pre-norm, held outside the module tree: never trained, never saved in an adapter.
        self._norm_pre = (backbone.vit.norm_pre,) if through_norm_pre else ()

    def forward(self, e0: torch.Tensor) -> Prompting:  # e0: B, M, d
        keep = self.uses_knowledge and self.training  # L_kp's KLA reads every token of Ê; PG only its mean
        e_hat = self.lin(e0, pooled=not keep)  # Ê: B, M, d, or avgpool(Ê): B, d
        latent, local = self.generator(e_hat)  # Y: B, d; U: B, L, n_loc, d
        prompts = local if self.global_prompts is None else \
            torch.cat([self.global_prompts(e0.shape[0]), local], dim=2)  # B, L, n_glob + n_loc, d
        if self._norm_pre:  # public code: block 0's prompts pass the pre-norm (a per-token map) with the other tokens
            prompts = torch.cat([self._norm_pre[0](prompts[:, :1]), prompts[:, 1:]], dim=1)
        aux = {"latent": latent, **({"e_hat": e_hat} if keep else {})}
        # the global prompts are the same for every image (not when block 0's pass the pre-norm)
        shared = None if self.global_prompts is None or self._norm_pre else self.global_prompts.tokens
        return Prompting(prompts, aux, shared=shared)


class Lore(LoreNoKP):
    """The full method: adds KLA and the K-L prototype-guided constraint L_kp (Eq. 5–7, 10)."""

    uses_knowledge = True

    def __init__(self, backbone: PromptedViT, options: LoreOptions | None = None, context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        context = context or MethodContext(backbone)
        knowledge_dim = context.knowledge_dim()  # d_q: the knowledge encoder's width
        self.kla = WHITE_BOXES[self.white_box][2](backbone.dim, knowledge_dim, top_n=self.options.top_n)
        # q (C, d_q): constant class text features, set once per class list; not saved. A plain tensor, not a
        # registered buffer: DDP broadcasts every buffer from rank 0 at every step, and these never change.
        self.class_queries = torch.empty(0, knowledge_dim)

    def _apply(self, fn, recurse: bool = True):
        """``.to()``/``.cuda()``/``.double()`` move the class queries with the module (they are no buffer)."""
        super()._apply(fn, recurse)
        self.class_queries = fn(self.class_queries)
        return self

    def set_knowledge(self, features: torch.Tensor) -> None:
        self.class_queries = features.to(self.class_queries.device, self.class_queries.dtype)

    def prototypes(self, e_hat: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Â and KLA attention for the given classes per image (classes: B, K) → B, K, d and B, K, M."""
        if self.class_queries.shape[0] == 0:
            raise RuntimeError("LORE's knowledge features are not set: call set_knowledge(q) first")
        return self.kla(e_hat, self.class_queries[classes])

    def extra_loss(self, aux: dict, labels: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
        if "e_hat" not in aux:
            raise RuntimeError("L_kp needs Ê from a training-mode forward: call model.train() before model(images)")
        # Only Â_t and Â_p enter L_kp, so KLA runs for those two queries per image, not all C.
        prototypes, _ = self.prototypes(aux["e_hat"], torch.stack([labels, predicted], dim=1))  # B, 2, d
        return kp_loss(aux["latent"], prototypes[:, 0], prototypes[:, 1], labels != predicted)
