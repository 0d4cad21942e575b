"""Benchmarks: the ablation of the methods (paper Table 5) and their cost (paper Table 7)."""
from .ablation import AblationPlan, run_ablation
from .complexity import ComplexitySettings, run_complexity

__all__ = ["AblationPlan", "ComplexitySettings", "run_ablation", "run_complexity"]
