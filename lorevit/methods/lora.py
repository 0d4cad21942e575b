"""``lora``: low-rank updates of the frozen ViT's Linear layers through huggingface/peft (BASELINES_VISION.md §A1).

``qkv(x) = W x + b + s · B A dropout(x)`` with A (r, in) kaiming-uniform, B (out, r) zero, s = α/r
(α/√r with ``rslora``). ``targets``:

- ``qkv`` (default, NOAH's row: r 8, α 8, dropout 0.1 → 294,912 parameters on ViT-B/16): PEFT's LoRA on the
  fused ``blocks.*.attn.qkv``;
- ``qkv+proj``: also ``blocks.*.attn.proj``; ``all-linear``: qkv, proj, ``mlp.fc1``, ``mlp.fc2`` (PEFT);
- ``qv``: only the q and v slices of the fused qkv (the LoRA paper's choice), which PEFT cannot target — two
  (A, B) pairs of :class:`~lorevit.methods.lowrank.SlicedLowRankLinear`, same initialisation, same count.

PEFT is used through ``peft.inject_adapter_in_model`` (its API for a plain ``nn.Module``, no ``PeftModel``
wrapper and no task type): the ViT stays the ViT, its ``qkv`` becomes PEFT's ``lora.Linear``. The task head is
lorevit's own (not PEFT's ``modules_to_save``). :meth:`Lora.merge` does what PEFT's ``merge_and_unload`` does —
each layer's ``merge()`` (PEFT's ``get_delta_weight``) and the base Linear put back — leaving a plain timm ViT.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.errors import UserError
from lorevit.methods.base import Method, MethodContext
from lorevit.methods.lowrank import SlicedLowRankLinear, lora_scale, qkv_slices
from lorevit.methods.tuning import TuningGrid, petlv_grid
from lorevit.methods.vtab_recipes import NOAH_LORA

TARGETS = ("qkv", "qv", "qkv+proj", "all-linear")
# PEFT target_modules as a regex (re.fullmatch on module names): a list of suffixes would also hit
# patch_embed.proj (the Conv2d) for "proj"
PEFT_TARGETS = {
    "qkv": r"blocks\.\d+\.attn\.qkv",
    "qkv+proj": r"blocks\.\d+\.attn\.(qkv|proj)",
    "all-linear": r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))",
}


class LoraTargetError(UserError, ValueError):
    """``targets`` matched no module of this ViT; the message lists the Linear layers it has."""


@dataclass
class LoraOptions:
    rank: int = field(default=8, metadata={"help": "r, the rank of each update"})
    alpha: float = field(default=8.0, metadata={"help": "α: the update is scaled by α/r (α/√r with rslora)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the update's input (NOAH: 0.1)"})
    targets: str = field(default="qkv", metadata={"help": "qkv | qv | qkv+proj | all-linear: which Linear layers "
                                                          "(qv: the q and v slices of the fused qkv)"})
    rslora: bool = field(default=False, metadata={"help": "rank-stabilised scale α/√r (PEFT use_rslora)"})

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.targets not in TARGETS:
            raise ValueError(f"targets must be one of {', '.join(TARGETS)}, got {self.targets!r}")


def linear_names(module: nn.Module) -> list[str]:
    """The Linear layers of a ViT, with block indices folded (``blocks.*.attn.qkv``), for error messages."""
    return list(dict.fromkeys(re.sub(r"\.\d+\.", ".*.", n) for n, m in module.named_modules()
                              if isinstance(m, nn.Linear)))


def require_peft():
    try:
        import peft
    except ImportError:
        raise UserError("method lora needs huggingface peft: pip install 'lorevit[peft]' (or pip install peft)") \
            from None
    return peft


class Lora(Method):
    """LoRA on the frozen ViT (§A1); mergeable into the Linear weights."""

    mergeable = True
    # NOAH's VTAB-1k recipe (NOAH:configs/LoRA/VTAB/slurm_train_lora_vtab.sh, NOAH:supernet_train_prompt.py
    # defaults): AdamW lr 1e-3, wd 1e-4, batch 64, 100 epochs, 10 warm-up epochs, cosine to 1e-5, no augmentation,
    # direct bicubic resize to 224, ImageNet mean/std. NOAH warms up linearly from 1e-6 (timm), as here.
    # Drop-path 0.1 in NOAH is not applied: lorevit keeps the frozen ViT in eval mode (issue 19).
    recipe: ClassVar[dict] = dict(NOAH_LORA)

    @classmethod
    def tuning_grid(cls, cfg, protocol: str) -> TuningGrid:
        """PETL_Vision's lr × wd grid (BASELINES_VISION §A1), 4 points. PETL_Vision also tunes r ∈ {1, 8, 16, 32}
        (PETLV:experiment/config/method/lora.yml); not searched here: the row compared is NOAH's r = 8."""
        return petlv_grid(protocol, source="; r kept at the run's (PETL_Vision also tunes r ∈ {1, 8, 16, 32})")

    def __init__(self, backbone: PromptedViT, options: LoraOptions | None = None,
                 context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        o = self.options
        self.scale = lora_scale(o.alpha, o.rank, o.rslora)
        self._sites: list[tuple[nn.Module, str, nn.Module]] = []  # (parent, attribute, inserted): merge() undoes them
        if o.targets == "qv":
            self._slice_qv(backbone)
        else:
            self._inject_peft(backbone)

    def _slice_qv(self, backbone: PromptedViT) -> None:
        for i, block in enumerate(backbone.vit.blocks):
            qkv = getattr(getattr(block, "attn", None), "qkv", None)
            if not isinstance(qkv, nn.Linear):
                raise LoraTargetError(f"lora targets 'qv': block {i} has no fused Linear attn.qkv; this ViT's "
                                      f"Linear layers are {', '.join(linear_names(backbone.vit))}")
            wrapper = SlicedLowRankLinear(qkv, qkv_slices(qkv, "qv"), self.options.rank, self.scale,
                                          self.options.dropout)
            self.replace_module(block.attn, "qkv", wrapper)
            self._sites.append((block.attn, "qkv", wrapper))

    def _inject_peft(self, backbone: PromptedViT) -> None:
        peft = require_peft()
        o = self.options
        config = peft.LoraConfig(r=o.rank, lora_alpha=o.alpha, lora_dropout=o.dropout, use_rslora=o.rslora,
                                 target_modules=PEFT_TARGETS[o.targets], bias="none")
        vit = backbone.vit
        try:
            peft.inject_adapter_in_model(config, vit)
        except ValueError as err:  # PEFT's NoMatchingPeftModuleError is a ValueError
            raise LoraTargetError(f"lora targets {o.targets!r} ({PEFT_TARGETS[o.targets]}) match no module of "
                                  f"{backbone.name or 'this ViT'}: {err}; its Linear layers are "
                                  f"{', '.join(linear_names(vit))}") from None
        from peft.tuners.lora import LoraLayer

        modules = dict(vit.named_modules())
        for name, module in list(modules.items()):
            if isinstance(module, LoraLayer):
                parent_name, _, attribute = name.rpartition(".")
                self.inserted.append(module)  # trains, is saved, follows the method's mode (replace_module)
                self._sites.append((modules[parent_name], attribute, module))
        vit.requires_grad_(False)  # PEFT froze the ViT already; its LoRA tensors train
        for _, _, module in self._sites:
            for pname, p in module.named_parameters():
                p.requires_grad_("lora_" in pname)

    def train(self, mode: bool = True) -> "Lora":
        super().train(mode)
        for _, _, module in self._sites:  # the frozen Linear inside each layer stays in eval mode
            base = module.base if isinstance(module, SlicedLowRankLinear) else module.get_base_layer()
            base.eval()
        return self

    @torch.no_grad()
    def merge(self) -> None:
        """Fold s·B·A into each targeted weight (PEFT ``merge`` / the q, v rows of qkv) and put the plain
        Linear back: the ViT is a plain timm ViT again, with the same logits (§A1 invariant 2)."""
        for parent, attribute, module in self._sites:
            if isinstance(module, SlicedLowRankLinear):
                plain = module.merged()
            else:
                module.merge(safe_merge=True)  # PEFT: checks the merged weight for NaN/inf
                plain = module.get_base_layer()
            setattr(parent, attribute, plain)
        self._sites = []
        self.inserted = nn.ModuleList()
