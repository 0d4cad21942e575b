"""``lore`` and ``lore-no-kp``: the White Box (LIN → PG, plus KLA for L_kp) on the Black Box.

Per block the ViT sees ``n_global`` learned global prompts (VPT-deep, shared by all images)
followed by ``n_local`` locality-aware prompts from the Prompt Generator (spec §5): 8 + 2.
"""
from __future__ import annotations

import torch

from ..backbone import PromptedViT
from ..losses import kp_loss
from ..white_box import KnowledgeLocalityAttention, LocalityInteraction, PromptGenerator
from .base import GlobalPrompts, Method, Prompting, patch_area


class LoreNoKP(Method):
    """LIN + PG + global prompts + head, trained by the task loss alone (paper's "w/o L_kp")."""

    name = "lore-no-kp"

    def __init__(self, backbone: PromptedViT, n_global: int = 8, n_local: int = 2, bottleneck: int = 32,
                 knn: int = 9, **arch):
        super().__init__(backbone)
        d, L = backbone.dim, backbone.depth
        self.lin = LocalityInteraction(d, k=knn)
        self.generator = PromptGenerator(d, L, n_local=n_local, rank=bottleneck)
        self.global_prompts = GlobalPrompts(L, n_global, d, patch_area(backbone)) if n_global else None

    def forward(self, e0: torch.Tensor) -> Prompting:  # e0: B, M, d
        keep = self.uses_knowledge and self.training  # L_kp's KLA reads every token of Ê; PG only its mean
        e_hat = self.lin(e0, pooled=not keep)  # Ê: B, M, d, or avgpool(Ê): B, d
        latent, local = self.generator(e_hat)  # Y: B, d; U: B, L, n_loc, d
        prompts = local if self.global_prompts is None else \
            torch.cat([self.global_prompts(e0.shape[0]), local], dim=2)  # B, L, n_glob + n_loc, d
        aux = {"latent": latent, **({"e_hat": e_hat} if keep else {})}
        return Prompting(prompts, aux)


class Lore(LoreNoKP):
    """The full method: adds KLA and the K-L prototype-guided constraint L_kp (Eq. 5–7, 10)."""

    name = "lore"
    uses_knowledge = True

    def __init__(self, backbone: PromptedViT, knowledge_dim: int, top_n: int = 9, **arch):
        super().__init__(backbone, **arch)
        self.kla = KnowledgeLocalityAttention(backbone.dim, knowledge_dim, top_n=top_n)
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
