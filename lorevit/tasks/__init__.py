"""The paper's other downstream tasks, on features of the frozen ViT with or without a trained White Box.

- :mod:`lorevit.tasks.features`: CLS and patch tokens from the Black Box or an adapter, any image size;
- :mod:`lorevit.tasks.retrieval`: Revisited Oxford5k / Paris6k (mAP, official evaluator semantics);
- :mod:`lorevit.tasks.correspondence`: SPair-71k point correspondence (PCK@α);
- :mod:`lorevit.tasks.video`: DAVIS-2017 semi-supervised video object segmentation (J&F);
- :mod:`lorevit.tasks.bench`: ``lorevit bench tasks``, the paper's "other tasks" table;
- :mod:`lorevit.tasks.standins`: offline stand-ins of the three tasks' datasets, in their official layouts.

A task never trains and never imports Lightning; evaluators are pure functions of arrays.
"""
from lorevit.tasks.errors import TaskError

TASKS = ("retrieval", "correspondence", "video")  # each a package lorevit.tasks.<task>


def __getattr__(name: str):
    """Torch-heavy names load on first use, so the CLI parses arguments without importing torch."""
    if name in ("Features", "FeatureExtractor", "load_extractor"):
        from lorevit.tasks import features

        return getattr(features, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TASKS", "Features", "FeatureExtractor", "TaskError", "load_extractor"]
