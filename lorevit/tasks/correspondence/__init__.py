"""Semantic point correspondence on SPair-71k (TASKS_SPEC §2): PCK@α of upsampled patch-token matching.

- :mod:`.spair`: reader of the official layout (``read_pairs``, ``Pair``, ``PairSet``);
- :mod:`.matching`: exact upsampled-cosine matching without a C×H×W map (``match``; reference
  ``method="explicit"``), and the identity baseline;
- :mod:`.metrics`: PCK per image / per point / per category, pure functions of arrays;
- :mod:`.protocol`: the protocol over a list of pairs with a :class:`~lorevit.tasks.FeatureExtractor`;
- :mod:`.figure`: matched keypoints drawn side by side;
- :mod:`.run`: the whole ``lorevit correspondence`` run and its files; :mod:`.bench` (``lorevit bench tasks``); the command is :mod:`lorevit.cli.correspondence`, the stand-ins
  (C1–C4, §4) :mod:`lorevit.tasks.standins.correspondence`.
"""
_NAMES = {"protocol": ("Evaluation", "evaluate", "evaluate_identity"), "matching": ("identity_prediction", "match"),
          "metrics": ("ALPHAS", "correct", "pck", "pck_table"), "spair": ("Pair", "PairSet", "read_pairs")}


def __getattr__(name: str):
    """Names load on first use (torch-heavy modules)."""
    if name in _NAMES["protocol"]:
        from lorevit.tasks.correspondence import protocol as module
    elif name in _NAMES["matching"]:
        from lorevit.tasks.correspondence import matching as module
    elif name in _NAMES["metrics"]:
        from lorevit.tasks.correspondence import metrics as module
    elif name in _NAMES["spair"]:
        from lorevit.tasks.correspondence import spair as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


__all__ = sorted(n for names in _NAMES.values() for n in names)
