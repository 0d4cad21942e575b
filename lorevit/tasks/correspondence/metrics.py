"""PCK@α, pure functions of arrays (TASKS_SPEC §2, "PCK variants" and "Recommended").

A predicted keypoint is correct when its distance to the ground truth is **≤ α·T**, T = max side of
the target box in original pixels (no +1). Aggregations, all in percent:

- ``per_image`` (primary): the mean over pairs of each pair's fraction of correct keypoints;
- ``per_point``: all correct keypoints / all keypoints;
- ``category_mean``: the mean over categories of each category's per-image PCK;
- ``per_category``: {category: {"per_image", "per_point", "pairs", "points"}}.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

ALPHAS = (0.1, 0.05, 0.15)  # 0.1 is the paper's; the first one is the headline


def correct(pred: np.ndarray, gt: np.ndarray, threshold: float) -> np.ndarray:
    """Per-keypoint correctness (N,) bool: ‖pred − gt‖ ≤ threshold; pred, gt (N, 2) [x, y] pixels."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (N, 2)")
    return np.linalg.norm(pred - gt, axis=1) <= threshold


def pck(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], sides: Sequence[float], categories: Sequence[str],
        alpha: float = 0.1) -> dict:
    """PCK@α of a list of pairs (pred, gt: (Nᵢ, 2) [x, y]; sides: T per pair; categories per pair), percent."""
    if not (len(preds) == len(gts) == len(sides) == len(categories)) or not preds:
        raise ValueError("preds, gts, sides and categories must be non-empty lists of equal length")
    hits = [correct(p, g, alpha * t) for p, g, t in zip(preds, gts, sides)]
    if any(len(h) == 0 for h in hits):
        raise ValueError("every pair needs at least one keypoint")
    cats = np.asarray(categories)
    per_category = {}
    for cat in sorted(set(categories)):
        chosen = [h for h, c in zip(hits, cats) if c == cat]
        per_category[cat] = {**_aggregate(chosen), "pairs": len(chosen), "points": int(sum(len(h) for h in chosen))}
    out = _aggregate(hits)
    out["category_mean"] = float(np.mean([v["per_image"] for v in per_category.values()]))
    out["per_category"] = per_category
    out["pairs"], out["points"] = len(hits), int(sum(len(h) for h in hits))
    return out


def _aggregate(hits: list[np.ndarray]) -> dict:
    return {"per_image": 100.0 * float(np.mean([h.mean() for h in hits])),
            "per_point": 100.0 * float(np.concatenate(hits).mean())}


def pck_table(preds, gts, sides, categories, alphas: Sequence[float] = ALPHAS) -> dict:
    """{str(α): :func:`pck`} for every α (keys "0.1", "0.05", "0.15")."""
    return {str(a): pck(preds, gts, sides, categories, a) for a in alphas}
