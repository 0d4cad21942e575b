"""Scoring a results folder like the official DAVIS-2017 evaluator (semi-supervised; TASKS_SPEC §3).

    R/<seq>/<frame>.png  (indexed PNGs, the ground truth's size)  →  R/scores.json,
                                                                      R/global_results-<set>.csv,
                                                                      R/per-sequence_results-<set>.csv

- ground truth: the sorted PNGs of ``Annotations/480p/<seq>/``; #objects = the maximum id of the
  **first** frame; void (255) → 0; object i = (label == i);
- evaluated frames: the first and last are excluded; results are read for those frames only;
- a result holding a higher id than the ground truth's object count is an error (the official tool
  aborts); fewer objects are empty masks;
- per object: J and F Mean / Recall / Decay (:func:`~.metrics.db_statistics`); globally the mean
  over **objects** of all sequences; J&F-Mean = (J-Mean + F-Mean) / 2.

Always recomputes (the official tool re-reads an existing CSV instead); every file is written at
the end, atomically, so a bad input never leaves a partial ``scores.json``.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from lorevit.utils.io import write_json, write_text
from lorevit.utils.progress import progress_bar
from lorevit.tasks.errors import TaskError
from lorevit.tasks.video.davis import VOID, Davis, Sequence, read_masks
from lorevit.tasks.video.metrics import db_statistics, label_measures

GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def ground_truth_labels(davis: Davis, sequence: Sequence) -> tuple[np.ndarray, int]:
    """All GT frames (n, H, W) with void set to 0, and the object count (max id of frame 0)."""
    gt = davis.ground_truth(sequence)
    gt[gt == VOID] = 0
    return gt, int(gt[0].max())


def read_results(results: Path, sequence: Sequence, frame_ids: list[str], shape: tuple[int, int]) -> np.ndarray:
    """Result masks (len(frame_ids), H, W) of one sequence, each checked: present, palette, GT size."""
    folder = results / sequence.name
    if not folder.is_dir():
        raise TaskError(f"results {folder} is missing: the results folder has no predictions for sequence "
                        f"{sequence.name!r} (expected {folder}/<frame>.png)")
    paths = [folder / f"{frame}.png" for frame in frame_ids]
    for path in paths:
        if not path.is_file():
            raise TaskError(f"result {path} is missing: every frame of {sequence.name!r} needs a prediction")
    out = np.zeros((len(frame_ids), *shape), np.uint8)
    for k, (path, mask) in enumerate(zip(paths, read_masks(paths, "result"))):
        if mask.shape != shape:
            raise TaskError(f"result {path} is {mask.shape[1]}×{mask.shape[0]} but the ground truth of "
                            f"{sequence.name!r} is {shape[1]}×{shape[0]}: write masks at the annotation size")
        out[k] = mask
    return out


def check_objects(results: Path, sequence: Sequence, frame_ids: list[str], pred: np.ndarray, n_objects: int) -> None:
    """The official tool aborts when a result holds more objects than the ground truth: so do we."""
    if pred.size == 0:
        return
    top = pred.reshape(len(pred), -1).max(1)
    if int(top.max()) > n_objects:
        k = int(np.argmax(top > n_objects))
        path = results / sequence.name / f"{frame_ids[k]}.png"
        raise TaskError(f"result {path} holds object id {int(top[k])} but the ground truth of {sequence.name!r} "
                        f"has {n_objects} object(s) (ids of {sequence.annotations[0].name}); remove the extra ids")


def sequence_measures(gt: np.ndarray, pred: np.ndarray, n_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """J, F (n_objects, n − 2) of one sequence: gt (n, H, W) all frames, pred (n − 2, H, W) frames 1..n−2."""
    return label_measures(gt[1:-1], pred, n_objects)


def summarise(per_object: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """``scores.json``: the global measures (means over objects) and each object's J-Mean, F-Mean."""
    stats = {name: (db_statistics(j), db_statistics(f)) for name, (j, f) in per_object.items()}
    if not stats:
        raise TaskError("no object to score: the ground truth's first frames hold no object id")
    js = np.array([s[0] for s in stats.values()])  # objects, (M, R, D)
    fs = np.array([s[1] for s in stats.values()])
    j_mean, j_recall, j_decay = js.mean(0)
    f_mean, f_recall, f_decay = fs.mean(0)
    scores = {"J&F-Mean": (j_mean + f_mean) / 2, "J-Mean": j_mean, "J-Recall": j_recall, "J-Decay": j_decay,
              "F-Mean": f_mean, "F-Recall": f_recall, "F-Decay": f_decay}
    scores = {k: float(v) for k, v in scores.items()}
    scores["per_object"] = {name: {"J-Mean": s[0][0], "J-Recall": s[0][1], "J-Decay": s[0][2],
                                   "F-Mean": s[1][0], "F-Recall": s[1][1], "F-Decay": s[1][2]}
                            for name, s in stats.items()}
    return scores


def _fmt(value: float) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.3f}"  # pandas' float_format="%.3f", na_rep=""


def global_csv(scores: dict) -> str:
    return ",".join(GLOBAL_KEYS) + "\n" + ",".join(_fmt(scores[k]) for k in GLOBAL_KEYS) + "\n"


def per_sequence_csv(scores: dict) -> str:
    out = io.StringIO()
    out.write("Sequence,J-Mean,F-Mean\n")
    for name, values in scores["per_object"].items():
        out.write(f"{name},{_fmt(values['J-Mean'])},{_fmt(values['F-Mean'])}\n")
    return out.getvalue()


def evaluate_folder(davis_root: str | Path, results: str | Path, split: str = "val", sequences: list[str] | None = None,
                    max_frames: int | None = None, progress: bool = False) -> dict:
    """Score ``results`` against the split's ground truth; nothing is written (see :func:`write_scores`).

    ``max_frames``: score only the first N frames of each sequence (a run made with ``--max-frames N``).
    """
    davis = Davis(davis_root)
    results = Path(results).expanduser()
    if not results.is_dir():
        raise TaskError(f"--results {results} does not exist or is not a folder of <seq>/<frame>.png predictions")
    chosen = davis.sequences(split, sequences, max_frames)
    per_object: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    bar = progress_bar(progress and "scoring", len(chosen), unit="seq")
    for sequence in chosen:
        gt, n_objects = ground_truth_labels(davis, sequence)
        frame_ids = sequence.frame_ids[1:-1]
        pred = read_results(results, sequence, frame_ids, gt.shape[1:])
        check_objects(results, sequence, frame_ids, pred, n_objects)
        j, f = sequence_measures(gt, pred, n_objects)
        for i in range(n_objects):
            per_object[f"{sequence.name}_{i + 1}"] = (j[i], f[i])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    scores = summarise(per_object)
    scores["evaluated"] = {"set": split, "sequences": len(chosen), "objects": len(per_object),
                           "frames": int(sum(max(len(s) - 2, 0) for s in chosen)), "max_frames": max_frames}
    return scores


def write_scores(results: str | Path, scores: dict, split: str = "val") -> list[Path]:
    """``scores.json`` and the two CSVs of the official tool, each written atomically, all at the end."""
    results = Path(results)
    return [write_text(results / f"global_results-{split}.csv", global_csv(scores)),
            write_text(results / f"per-sequence_results-{split}.csv", per_sequence_csv(scores)),
            write_json(results / "scores.json", scores)]


def score(davis_root: str | Path, results: str | Path, split: str = "val", sequences: list[str] | None = None,
          max_frames: int | None = None, progress: bool = False) -> dict:
    """Evaluate then write: the ``lorevit video-seg score`` command as a function."""
    scores = evaluate_folder(davis_root, results, split, sequences, max_frames, progress)
    write_scores(results, scores, split)
    return scores
