"""Semantic point correspondence on SPair-71k (TASKS_SPEC §2): PCK@α of upsampled patch-token matching.

- :mod:`.spair`: reader of the official layout (``read_pairs``, ``Pair``, ``PairSet``);
- :mod:`.matching`: exact upsampled-cosine matching without a C×H×W map (``match``; reference
  ``method="explicit"``), and the identity baseline;
- :mod:`.metrics`: PCK per image / per point / per category, pure functions of arrays;
- :mod:`.evaluate`: the protocol over a list of pairs with a :class:`~lorevit.tasks.FeatureExtractor`;
- :mod:`.figure`: matched keypoints drawn side by side;
- :mod:`.cli` (``lorevit correspondence``), :mod:`.standins` (C1–C4, §4), :mod:`.bench` (``lorevit bench tasks``).
"""
from .evaluate import Evaluation, evaluate, evaluate_identity
from .matching import identity_prediction, match
from .metrics import ALPHAS, correct, pck, pck_table
from .spair import Pair, PairSet, read_pairs

__all__ = ["ALPHAS", "Evaluation", "Pair", "PairSet", "correct", "evaluate", "evaluate_identity",
           "identity_prediction", "match", "pck", "pck_table", "read_pairs"]
