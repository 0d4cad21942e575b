"""DAVIS-2017 semi-supervised video object segmentation (TASKS_SPEC §3): DINO's label propagation on
B-B or LORE patch tokens, and a scorer with the official davis2017-evaluation semantics.

- :mod:`.davis` — the on-disk layout, indexed VOC-palette PNGs;
- :mod:`.metrics` — J, boundary F, Mean/Recall/Decay (pure functions of arrays);
- :mod:`.evaluate` — scoring a results folder (``scores.json`` + the official CSVs);
- :mod:`.propagate` — the label propagation;
- :mod:`.run` — propagate + score + figure; :mod:`.cli` — ``lorevit video-seg {run,score}``;
- :mod:`lorevit.tasks.standins.video` — V1 moving cut-outs; :mod:`.bench` — the columns of ``lorevit bench tasks``.
"""
from __future__ import annotations

__all__ = ["Davis", "PropagationConfig", "db_statistics", "evaluate_folder", "f_measure", "jaccard",
           "label_measures", "propagate_folder", "read_mask", "run_video", "score", "write_mask"]


def __getattr__(name):  # lazy: `lorevit --help` must not import torch
    if name in ("Davis", "read_mask", "write_mask"):
        from lorevit.tasks.video import davis

        return getattr(davis, name)
    if name in ("db_statistics", "f_measure", "jaccard", "label_measures"):
        from lorevit.tasks.video import metrics

        return getattr(metrics, name)
    if name in ("evaluate_folder", "score"):
        from lorevit.tasks.video import evaluate

        return getattr(evaluate, name)
    if name in ("PropagationConfig", "propagate_folder"):
        from lorevit.tasks.video import propagate

        return getattr(propagate, name)
    if name == "run_video":
        from lorevit.tasks.video.run import run_video

        return run_video
    raise AttributeError(name)
