"""Benchmarks: the ablation of the methods (paper Table 5) and their cost (paper Table 7).
The other tasks' table is :mod:`lorevit.tasks.bench`."""



def __getattr__(name: str):
    """Torch-heavy names load on first use, so the CLI's argument parsing stays light."""
    if name in ("AblationPlan", "run_ablation"):
        from lorevit.bench import ablation as module
    elif name in ("ComplexitySettings", "run_complexity"):
        from lorevit.bench import complexity as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


__all__ = ["AblationPlan", "ComplexitySettings", "run_ablation", "run_complexity"]
