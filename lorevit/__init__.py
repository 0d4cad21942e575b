"""lorevit — LORE: locality-aware prompt learning for frozen pre-trained Vision Transformers.

Wang, Yu, He, Gong. "Enhancing Pre-trained ViTs for Downstream Task Adaptation: A Locality-Aware
Prompt Learning Method." ACM Multimedia 2024.
"""
from .backbone import PromptedViT, create_backbone
from .config import Config
from .model import PromptedClassifier, create_model

__version__ = "0.1.0"


def load_adapter(path, backbone=None, device="cpu"):
    """Load an adapter directory (or ``adapter.safetensors``) back onto its frozen backbone."""
    from .adapter import load_adapter as _load

    return _load(path, backbone=backbone, device=device)


__all__ = ["Config", "PromptedClassifier", "PromptedViT", "create_backbone", "create_model", "load_adapter"]
