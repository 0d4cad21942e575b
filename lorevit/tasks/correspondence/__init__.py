"""Semantic point correspondence on SPair-71k (TASKS_SPEC §2): PCK@α of upsampled patch-token matching.

- :mod:`.spair`: reader of the official layout (``read_pairs``, ``Pair``, ``PairSet``);
- :mod:`.matching`: exact upsampled-cosine matching without a C×H×W map (``match``; reference
  ``method="explicit"``), and the identity baseline;
- :mod:`.metrics`: PCK per image / per point / per category, pure functions of arrays;
- :mod:`.protocol`: the protocol over a list of pairs with a :class:`~lorevit.tasks.FeatureExtractor`;
- :mod:`.figure`: matched keypoints drawn side by side;
- :mod:`.cli` (``lorevit correspondence``), :mod:`.standins` (C1–C4, §4), :mod:`.bench` (``lorevit bench tasks``).
"""
_LAZY = {"Evaluation": "protocol", "evaluate": "protocol", "evaluate_identity": "protocol",
         "identity_prediction": "matching", "match": "matching",
         "ALPHAS": "metrics", "correct": "metrics", "pck": "metrics", "pck_table": "metrics",
         "Pair": "spair", "PairSet": "spair", "read_pairs": "spair"}


def __getattr__(name: str):
    """Names load on first use: ``lorevit --help`` imports this package's cli without torch."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
