"""Benchmarks: the ablation of the methods (paper Table 5) and their cost (paper Table 7).
The other tasks' table is :mod:`lorevit.tasks.bench`."""

_LAZY = {"AblationPlan": "ablation", "run_ablation": "ablation", "ComplexitySettings": "complexity",
         "run_complexity": "complexity"}


def __getattr__(name: str):
    if name in _LAZY:  # torch-heavy: loaded on first use, so the CLI's argument parsing stays light
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
