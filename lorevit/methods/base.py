"""What every method is: one small ``nn.Module`` (the tensors it trains) plus a typed options dataclass.

Methods decide *what* is trained; the training loop (:mod:`lorevit.training`) decides *how*, the same for
all of them. A method may, in any combination (ARCHITECTURE.md, "Three kinds of method"):

1. **give prompt tokens** for the ViT: :meth:`Method.forward` turns E0 (B, M, d) into :class:`Prompting`
   (per block, ``(B, L, n, d)``, or for block 0 only, ``(B, 1, n, d)``; Eq. 12) — VPT, LORE;
2. **change the frozen ViT from inside**: :meth:`Method.replace_module` puts a module of the method where a
   module of the ViT was (a low-rank delta beside ``attn.qkv``, a parallel adapter, a scale-shift), or the
   method unfreezes some of the ViT's own parameters (``requires_grad_``); :meth:`Method.merge` may fold the
   change into the weights for zero inference overhead (``mergeable = True``);
3. **classify through text**: :meth:`Method.build_head` returns the task head, which may score the image
   features against class text features that the frozen text tower (:meth:`MethodContext.text_tower`)
   computes from token embeddings some of which are trained — inside the training step, with gradients.

What trains is declared by ``requires_grad``: the method's own parameters, the head's, and any parameter of
the ViT the method unfroze. An adapter stores exactly those tensors (and the buffers of the method and head,
e.g. BatchNorm statistics) plus the method's options, nothing else. :meth:`Method.extra_loss` adds a loss
(LORE's L_kp), and ``recipe`` holds the method's recommended config values.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import torch
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.errors import UserError
from lorevit.methods.tuning import DEFAULT_LR_FACTORS, TuningGrid, lr_factor_grid

if TYPE_CHECKING:
    from lorevit.knowledge import TextTower


class MergeError(UserError, ValueError):
    """A method whose change cannot be folded into the ViT's weights was asked to merge."""


@dataclass
class Prompting:
    prompts: torch.Tensor | None  # B, L (deep) or 1 (shallow), n, d — or None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)  # what the extra loss reads
    # L, n_s, d: deep prompts[:, :, :n_s] are these for every image (global prompts), so the ViT may project
    # their keys/values once per block instead of per image (PromptedViT.forward_tokens(shared=...)); or None
    shared: torch.Tensor | None = None
    # J, n_a, d: prompts appended after the patch tokens, replaced before blocks 1…J−1 and carried through the rest
    # (MaPLe's vision prompts, PromptedViT.forward_tokens(appended=...)); or None
    appended: torch.Tensor | None = None


@dataclass
class NoOptions:
    """The options of a method that has none (``linear``, ``zero-shot``)."""


@dataclass
class MethodContext:
    """What a method may need beyond the backbone when it is built."""

    backbone: PromptedViT
    classnames: Sequence[str] = ()
    knowledge: str | None = None  # the knowledge / text encoder spec (st:minilm, clip:<model>@<tag>)
    knowledge_width: int | None = None  # its feature width, when known without loading it (adapters)
    with_knowledge: bool = True  # False: an adapter loaded for inference; KLA's encoder is not loaded

    def knowledge_dim(self) -> int:
        """The knowledge encoder's feature width d_q (loads the encoder only when the width is not known)."""
        if self.knowledge_width is not None:
            return self.knowledge_width
        if not self.knowledge:
            raise ValueError("this method needs a knowledge encoder (knowledge='st:minilm', "
                             "'clip:ViT-B-16-quickgelu@openai', ...)")
        from lorevit.knowledge import knowledge_dim

        return knowledge_dim(self.knowledge)

    def text_tower(self) -> "TextTower":
        """The frozen text tower of ``knowledge``, to run inside the step on token embeddings (kind 3)."""
        if not self.knowledge:
            raise ValueError("this method classifies through text and needs a text encoder "
                             "(knowledge='st:minilm' or 'clip:<model>@<tag>')")
        from lorevit.knowledge import text_tower

        return text_tower(self.knowledge)


class Method(nn.Module):
    """The base of every method: no prompts, no change to the ViT, the default head, no extra loss."""

    name: ClassVar[str] = ""  # set by register_method
    options_cls: ClassVar[type] = NoOptions  # set by register_method
    uses_knowledge: ClassVar[bool] = False  # needs the class text features of KLA (set_knowledge)
    has_white_box: ClassVar[bool] = False  # built from a White Box (config key white_box: paper | public)
    trains: ClassVar[bool] = True  # zero-shot is evaluated, not trained
    mergeable: ClassVar[bool] = False  # merge() folds the change into the ViT's weights
    # the class decision reads the ViT's CLS token, so its last-block CLS attention (Tokens.attention) is the
    # model's attention over the image (`lorevit bench locality`); False for a method whose image side does not
    cls_attention: ClassVar[bool] = True
    # the method's official (published) recipe as Config keys of the optim and data sections (lr, epochs,
    # optimizer, warm-up, ...); `recipe: published` (the default for a method that has one) fills the keys a
    # config leaves unset from it (lorevit.factory.resolve_config). Keep each value's source beside it.
    recipe: ClassVar[dict[str, Any]] = {}

    def __init__(self, backbone: PromptedViT, options: Any = None, context: MethodContext | None = None):
        super().__init__()
        self.options = self.options_cls() if options is None else options
        self.inserted = nn.ModuleList()  # modules put into the ViT (kind 2): saved and trained with the method

    def forward(self, e0: torch.Tensor) -> Prompting:  # e0: B, M, d
        return Prompting(None)

    @classmethod
    def published_recipe(cls, cfg: Any) -> dict[str, Any]:
        """The official recipe for this config (``cfg``: a :class:`lorevit.config.Config`); override it for values
        that depend on the config (CoOp's epochs by shot count, CLIP-LoRA's ``max_steps`` = 500·shots)."""
        return dict(cls.recipe)

    @classmethod
    def tuning_grid(cls, cfg: Any, protocol: str) -> TuningGrid:
        """The grid ``bench suite --protocol vtab|fgvc`` searches for this method (``cfg``: the resolved tuning run's
        config, recipe applied): its recipe's declared grid, with its source (:mod:`lorevit.methods.tuning`).
        Without one: lr × 0.5, 1, 2 at the run's weight decay (lorevit's default, said so); nothing to search for a
        method that does not train."""
        if not cls.trains:
            return TuningGrid(({},), "nothing trains: one point", (0,))
        return lr_factor_grid(cfg, DEFAULT_LR_FACTORS, "no declared grid: lr × {0.5, 1, 2} of the method's own lr, "
                                                       "at its weight decay (lorevit's default)")

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Refuse a config this method cannot run with (a ``UserError``), before a run writes any file."""

    def build_head(self, context: MethodContext) -> nn.Module | None:
        """The task head (kind 3), or None for the ``head`` config key's (linear | clip)."""
        return None

    def extra_loss(self, aux: dict, labels: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor | None:
        return None

    def replace_module(self, parent: nn.Module, name: str, module: nn.Module) -> nn.Module:
        """Put ``module`` where ``parent.<name>`` is (inside the frozen ViT) and keep it as this method's own:
        it trains, it is saved in the adapter (under ``method.inserted``), and it follows the method's
        train/eval mode. Returns the module it replaced (still frozen; ``module`` may hold it)."""
        old = getattr(parent, name)
        setattr(parent, name, module)
        self.inserted.append(module)
        return old

    def merge(self) -> None:
        """Fold the method's change into the ViT's weights (then the plain ViT computes the same logits)."""
        raise MergeError(f"method {self.name!r} cannot be merged into the ViT's weights: its prompts or modules "
                         "are extra computation, not a change of the weights")

    def options_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.options)


class Frozen(nn.Module):
    """A frozen module a method or head uses but does not own (a text tower): outside the state dict and the
    parameters (never trained, never saved in an adapter), but moved and cast with its owner (``.to()``).

    ``shared`` (the default): the module is also used elsewhere — the knowledge encoder's cached tower, which
    zero-shot features and other models in the process read. The first ``.to()`` / ``.half()`` that would change
    one of its tensors (Lightning's ``--precision 16-true`` casts the whole model to fp16, a GPU run moves it) then
    works on a private copy (the module's ``private_copy()`` or a deep copy), so the shared one stays as it was;
    a no-op ``.to()`` copies nothing. ``shared=False``: the module is this owner's own (cast in place).
    """

    def __init__(self, module: nn.Module, shared: bool = True):
        super().__init__()
        self._held = (module.eval().requires_grad_(False),)  # a tuple: not registered as a child
        self._shared = shared

    @property
    def module(self) -> nn.Module:
        return self._held[0]

    def _apply(self, fn, recurse: bool = True):
        if self._shared and _changes(fn, self._held[0]):
            held = self._held[0]
            self._held = ((held.private_copy() if hasattr(held, "private_copy") else copy.deepcopy(held)),)
            self._shared = False
        self._held[0]._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def forward(self, *args, **kwargs):
        return self._held[0](*args, **kwargs)


def _changes(fn, module: nn.Module) -> bool:
    """Whether ``module._apply(fn)`` would give any of its tensors another dtype or device (``fn`` returns a
    tensor as it is when nothing changes: ``Tensor.to``)."""
    for tensor in (*module.parameters(), *module.buffers()):
        out = fn(tensor)
        if out is not tensor and (out.dtype != tensor.dtype or out.device != tensor.device
                                  or out.data_ptr() != tensor.data_ptr()):
            return True
    return False


class AroundFrozen(nn.Module):
    """A module a method puts into the ViT around some of the ViT's own modules (``frozen_parts``, attribute
    names): those stay frozen and in eval mode (no dropout or drop-path of the frozen ViT) whatever mode the
    method is in — a low-rank delta beside ``qkv``, a scale-shift, an adapter."""

    frozen_parts: ClassVar[tuple[str, ...]] = ("base",)

    def train(self, mode: bool = True) -> "AroundFrozen":
        super().train(mode)
        for name in self.frozen_parts:
            getattr(self, name).eval()
        return self


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
