"""lorevit — LORE: locality-aware prompt learning for frozen pre-trained Vision Transformers.

Wang, Yu, He, Gong. "Enhancing Pre-trained ViTs for Downstream Task Adaptation: A Locality-Aware
Prompt Learning Method." ACM Multimedia 2024.
"""
from lorevit.config import Config
from lorevit.version import __version__


def __getattr__(name: str):
    """Torch-heavy names load on first use: ``lorevit --help`` and config errors never import torch."""
    if name in ("PromptedViT", "create_backbone"):
        from lorevit import backbone as module
    elif name == "PromptedClassifier":
        from lorevit import model as module
    elif name in ("create_model", "from_pretrained"):
        from lorevit import factory as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


def load_adapter(path, backbone=None, device="cpu", weights="unset", strict=False):
    """Load an adapter (a run directory, a hub-style folder, a file or a Hub repo id) onto its frozen backbone."""
    from lorevit.factory import load_adapter as _load

    return _load(path, backbone=backbone, device=device, weights=weights, strict=strict)


__all__ = ["Config", "__version__", "PromptedClassifier", "PromptedViT", "create_backbone", "create_model", "from_pretrained", "load_adapter"]
