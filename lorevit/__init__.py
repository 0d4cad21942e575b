"""lorevit — LORE: locality-aware prompt learning for frozen pre-trained Vision Transformers.

Wang, Yu, He, Gong. "Enhancing Pre-trained ViTs for Downstream Task Adaptation: A Locality-Aware
Prompt Learning Method." ACM Multimedia 2024.
"""
from .config import Config

__version__ = "0.1.0"
_LAZY = {"PromptedViT": "backbone", "create_backbone": "backbone", "PromptedClassifier": "model",
         "create_model": "model", "from_pretrained": "hub"}


def __getattr__(name: str):
    """Torch-heavy names load on first use: ``lorevit --help`` and config errors never import torch."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_adapter(path, backbone=None, device="cpu", weights="unset", strict=False):
    """Load an adapter (a run directory, a hub-style folder, a file or a Hub repo id) onto its frozen backbone."""
    from .adapter import load_adapter as _load

    return _load(path, backbone=backbone, device=device, weights=weights, strict=strict)


__all__ = ["Config", "PromptedClassifier", "PromptedViT", "create_backbone", "create_model", "from_pretrained", "load_adapter"]
