"""``prograd``: ProGrad — a CoOp student whose CE gradient is projected away from the zero-shot teacher's
disagreeing direction (BASELINES_CLIP.md §4; BeierZhu/Prompt-align: ProGrad.public/trainers/prograd.py,
Dassl.ProGrad.pytorch/dassl/engine/trainer.py ``prograd_backward_and_update``).

Student: CoOp, M 16, end, shared context, initialised as ProGrad does — the dataset's ProGrad template without
" {}." ("a photo of a") in the **last** k slots, zeros in the first 16 − k. Teacher: frozen zero-shot CLIP with
the same template. Per batch ``L_kl = T²·mean_b Σ_c −softmax(z_t/T)_c log softmax(z_s/T)_c`` gives ``g_kl``
(computed inside the step with ``torch.autograd.grad``), and the CE gradient reaching ``ctx`` is replaced by
:func:`prograd_gradient`. The loss the loop sees (and optimises) is CE; the rule is a hook on ``ctx``, so the
loop, AMP and DDP are the shared ones (under DDP each rank projects its own gradient before the all-reduce).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.knowledge import class_features
from lorevit.methods.base import MethodContext
from lorevit.methods.clip_text import DEFAULT_TEMPLATE, ClassPrompts, TextSideMethod, check_template, prompt_names
from lorevit.methods.coop import coop_epochs, coop_family_recipe


def prograd_gradient(g_ce: torch.Tensor, g_kl: torch.Tensor, lam: float) -> torch.Tensor:
    """§4 gradient rule: ĝ = g_kl/‖g_kl‖; if g_ce·ĝ < 0: g = g_ce − λ (g_ce·ĝ) ĝ, else g = g_ce."""
    unit = g_kl / g_kl.norm().clamp_min(1e-12)
    dot = (g_ce * unit).sum()
    return g_ce - lam * dot * unit if dot < 0 else g_ce


def soft_target_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """§4 L_kl = T²·mean_b Σ_c −softmax(z_t/T)_c · log softmax(z_s/T)_c (soft-target CE = KL + const)."""
    target = F.softmax(teacher / temperature, dim=-1)
    return temperature ** 2 * -(target * F.log_softmax(student / temperature, dim=-1)).sum(-1).mean()


@dataclass
class ProGradOptions:
    n_ctx: int = field(default=16, metadata={"help": "M, the number of learned context vectors"})
    template: str = field(default=DEFAULT_TEMPLATE, metadata={"help": "the dataset's ProGrad template (teacher prompt; "
                                                                      "without ' {}.' it initialises the last slots)"})
    lambda_: float = field(default=1.0, metadata={"help": "λ, the projection strength (README: 0.8 for 8/16 shots on "
                                                          "Flowers102, DTD, EuroSAT); config key lambda"})
    temperature: float = field(default=1.0, metadata={"help": "T of the distillation loss"})

    def __post_init__(self) -> None:
        check_template(self.template)
        if self.n_ctx < 1:
            raise ValueError(f"n_ctx must be >= 1, got {self.n_ctx}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class ProGrad(TextSideMethod):
    recipe = coop_family_recipe(200)
    template_family = "prograd"  # the dataset's default template is ProGrad's variant (lorevit.data.templates)

    def __init__(self, backbone: PromptedViT, options: ProGradOptions | None = None, context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        o = self.options
        words = o.template.split("{}")[0].strip().rstrip(",").strip()  # "a photo of a {}." → "a photo of a"
        suffix = o.template.split("{}")[1]
        self.prompts = ClassPrompts(self.tower.module, context.classnames, o.n_ctx, words, "end", suffix_text=suffix)
        ctx = torch.zeros(o.n_ctx, self.prompts.prefix.shape[-1])  # ProGrad: zeros before the init words
        if self.prompts.init_len:
            ctx[o.n_ctx - self.prompts.init_len:] = self.prompts.init_embedding
        self.ctx = nn.Parameter(ctx)
        teacher = class_features(context.knowledge, prompt_names(context.classnames), o.template)  # C, D, frozen
        self.register_buffer("teacher_text", F.normalize(teacher, dim=-1), persistent=False)
        self._pending: list = []  # the hook of the current step (removed when it fires)

    @classmethod
    def published_recipe(cls, cfg: Any) -> dict[str, Any]:
        return coop_family_recipe(coop_epochs(cfg))

    def teacher_logits(self, image: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * image @ self.teacher_text.t().to(image.dtype)

    def logits(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        image = self.image_features(features)
        text = self.encode_prompts(self.prompts, self.prompts.assemble(self.ctx))
        student = self.logit_scale * image @ text.t().to(image.dtype)
        if self.training and torch.is_grad_enabled() and self.ctx.requires_grad:
            self.project_next_gradient(soft_target_loss(student, self.teacher_logits(image).detach(),
                                                        self.options.temperature))
        return student

    def project_next_gradient(self, kl: torch.Tensor) -> None:
        """g_kl now; the next gradient reaching ``ctx`` (the CE's) is projected by :func:`prograd_gradient`."""
        for handle in self._pending:
            handle.remove()
        (g_kl,) = torch.autograd.grad(kl, self.ctx, retain_graph=True)
        lam = self.options.lambda_

        def hook(grad: torch.Tensor) -> torch.Tensor:
            for handle in self._pending:
                handle.remove()
            self._pending.clear()
            return prograd_gradient(grad, g_kl.to(grad.dtype), lam)

        self._pending = [self.ctx.register_hook(hook)]
