"""The registry of methods: ``build_method(name, backbone, **arch)``."""
from __future__ import annotations

from ..backbone import PromptedViT
from .base import GlobalPrompts, Method, Prompting
from .linear import LinearProbe
from .lore import Lore, LoreNoKP
from .vpt import VPTDeep, VPTShallow
from .zero_shot import ZeroShot, ZeroShotHead

METHODS: dict[str, type[Method]] = {m.name: m for m in (LinearProbe, VPTShallow, VPTDeep, LoreNoKP, Lore, ZeroShot)}


def build_method(name: str, backbone: PromptedViT, **arch) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name](backbone, **arch)


__all__ = ["METHODS", "GlobalPrompts", "Method", "Prompting", "ZeroShotHead", "build_method"]
