"""Methods: what is trained on the frozen ViT. One module per method with its typed options dataclass,
registered by one call, :func:`register_method` (users register their own the same way).

Built in: ``linear`` (:mod:`.linear`), ``vpt-shallow`` / ``vpt-deep`` (:mod:`.vpt`), ``lore-no-kp`` /
``lore`` (:mod:`.lore`), ``zero-shot`` (:mod:`.zero_shot`); the vision PETL baselines (issue 19) ``lora``
(:mod:`.lora`, through huggingface/peft), ``adaptformer``, ``adapter``, ``ssf``, ``bitfit``, ``full``.
"""
from __future__ import annotations

from lorevit.backbone import PromptedViT
from lorevit.methods.base import Frozen, GlobalPrompts, MergeError, Method, MethodContext, NoOptions, Prompting
from lorevit.methods.linear import LinearProbe
from lorevit.methods.lore import Lore, LoreNoKP, LoreNoKPOptions, LoreOptions
from lorevit.methods.registry import (METHODS, MethodRegistrationError, build_options, check_builtins,
                                      describe_options, method_class, options_from_config, register_method,
                                      unregister_method)
from lorevit.methods.vpt import VPTDeep, VPTOptions, VPTShallow
from lorevit.methods.adaptformer import AdaptFormer, AdaptFormerOptions
from lorevit.methods.adapter import Adapter, AdapterOptions
from lorevit.methods.bitfit import BitFit
from lorevit.methods.full import FullFineTuning
from lorevit.methods.lora import Lora, LoraOptions
from lorevit.methods.ssf import SSF, SSFOptions
from lorevit.methods.zero_shot import ZeroShot, ZeroShotHead, ZeroShotOptions

for _name, _cls, _options in (("linear", LinearProbe, NoOptions), ("vpt-shallow", VPTShallow, VPTOptions),
                              ("vpt-deep", VPTDeep, VPTOptions), ("lore-no-kp", LoreNoKP, LoreNoKPOptions),
                              ("lore", Lore, LoreOptions), ("zero-shot", ZeroShot, ZeroShotOptions)):
    register_method(_name, _cls, _options, builtin=True)
for _name, _cls, _options in (("lora", Lora, LoraOptions), ("adaptformer", AdaptFormer, AdaptFormerOptions),
                              ("adapter", Adapter, AdapterOptions), ("ssf", SSF, SSFOptions),
                              ("bitfit", BitFit, NoOptions), ("full", FullFineTuning, NoOptions)):
    register_method(_name, _cls, _options, builtin=True)  # issue 19: the vision PETL baselines
from lorevit.methods.coop import CoOp, CoOpOptions
from lorevit.methods.cocoop import CoCoOp, CoCoOpOptions
from lorevit.methods.prograd import ProGrad, ProGradOptions
from lorevit.methods.clip_adapter import ClipAdapter, ClipAdapterOptions
from lorevit.methods.clip_lora import ClipLora, ClipLoraOptions

for _name, _cls, _options in (("coop", CoOp, CoOpOptions), ("cocoop", CoCoOp, CoCoOpOptions),
                              ("prograd", ProGrad, ProGradOptions), ("clip-adapter", ClipAdapter, ClipAdapterOptions),
                              ("clip-lora", ClipLora, ClipLoraOptions)):
    register_method(_name, _cls, _options, builtin=True)  # issue 20: the CLIP baselines (BASELINES_CLIP.md)
from lorevit.methods.maple import MaPLe, MaPLeOptions

register_method("maple", MaPLe, MaPLeOptions, builtin=True)  # issue 20 §6
check_builtins()


def build_method(name: str, backbone: PromptedViT, options=None, context: MethodContext | None = None) -> Method:
    """The method ``name`` on ``backbone`` with ``options`` (its dataclass; None: the defaults)."""
    cls = method_class(name)
    if options is None:
        options = build_options(name)
    return cls(backbone, options, context or MethodContext(backbone))


__all__ = ["METHODS", "Frozen", "GlobalPrompts", "LoreNoKPOptions", "LoreOptions", "MergeError", "Method", "MethodContext",
           "MethodRegistrationError", "NoOptions", "Prompting", "VPTOptions", "ZeroShotHead", "build_method",
           "build_options", "describe_options", "method_class", "options_from_config", "register_method",
           "unregister_method"]
