"""The paper's other downstream tasks, on features of the frozen ViT with or without a trained White Box.

- :mod:`lorevit.tasks.features`: CLS and patch tokens from the Black Box or an adapter, any image size;
- :mod:`lorevit.tasks.retrieval`: Revisited Oxford5k / Paris6k (mAP, official evaluator semantics);
- :mod:`lorevit.tasks.correspondence`: SPair-71k point correspondence (PCK@α);
- :mod:`lorevit.tasks.video`: DAVIS-2017 semi-supervised video object segmentation (J&F);
- :mod:`lorevit.tasks.bench`: ``lorevit bench tasks``, the paper's "other tasks" table.

A task never trains and never imports Lightning; evaluators are pure functions of arrays.
"""
from .errors import TaskError

TASKS = ("retrieval", "correspondence", "video")  # each a package lorevit.tasks.<task>
_LAZY = {"Features": "features", "FeatureExtractor": "features", "load_extractor": "features"}


def __getattr__(name: str):
    """Torch-heavy names load on first use, so the CLI parses arguments without importing torch."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TASKS", "Features", "FeatureExtractor", "TaskError", "load_extractor"]
