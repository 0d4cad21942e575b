"""``lore`` and ``lore-no-kp``: the White Box (LIN → PG, plus KLA for L_kp) on the Black Box.

Per block the ViT sees ``n_global`` learned global prompts (VPT-deep, shared by all images)
followed by ``n_local`` locality-aware prompts from the Prompt Generator (spec §5): 8 + 2.

``white_box`` picks the White Box's modules: ``paper`` (the spec's equations, the default) or
``public`` (the public code's ViG LIN, BatchNorm PG and one-head KLA, ``white_box/public.py``; its
global prompts start from N(0, 0.02) and block 0's prompts pass the ViT's pre-norm — CLIP's
``ln_pre``, timm's ``norm_pre`` — like the other tokens).
"""
from __future__ import annotations

import torch

from ..backbone import PromptedViT
from ..losses import kp_loss
from ..white_box import (KnowledgeLocalityAttention, LocalityInteraction, PromptGenerator,
                         PublicKnowledgeLocalityAttention, PublicLocalityInteraction, PublicPromptGenerator)
from .base import GlobalPrompts, Method, Prompting, patch_area

# white_box → (LIN, PG, KLA, std of the global prompts' init (None: VPT's), block 0's prompts through norm_pre)
WHITE_BOXES = {
    "paper": (LocalityInteraction, PromptGenerator, KnowledgeLocalityAttention, None, False),
    "public": (PublicLocalityInteraction, PublicPromptGenerator, PublicKnowledgeLocalityAttention, 0.02, True),
}


class LoreNoKP(Method):
    """LIN + PG + global prompts + head, trained by the task loss alone (paper's "w/o L_kp")."""

    name = "lore-no-kp"
    has_white_box = True

    def __init__(self, backbone: PromptedViT, n_global: int = 8, n_local: int = 2, bottleneck: int = 32,
                 knn: int = 9, white_box: str = "paper", **arch):
        super().__init__(backbone)
        if white_box not in WHITE_BOXES:
            raise ValueError(f"unknown white_box {white_box!r}; choose one of {', '.join(WHITE_BOXES)}")
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
        return Prompting(prompts, aux)


class Lore(LoreNoKP):
    """The full method: adds KLA and the K-L prototype-guided constraint L_kp (Eq. 5–7, 10)."""

    name = "lore"
    uses_knowledge = True

    def __init__(self, backbone: PromptedViT, knowledge_dim: int, top_n: int = 9, **arch):
        super().__init__(backbone, **arch)
        self.kla = WHITE_BOXES[self.white_box][2](backbone.dim, knowledge_dim, top_n=top_n)
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
