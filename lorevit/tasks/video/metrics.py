"""The DAVIS measures, as the official davis2017-evaluation computes them (TASKS_SPEC §3, "Metrics").

Pure functions of arrays, no files:

- :func:`jaccard` — J = |P∩G| / |P∪G|, an empty union gives 1;
- :func:`boundary_map` — the official 1-pixel boundary (a pixel differs from its east, south or
  south-east neighbour; the last row compares only east, the last column only south; the corner is 0);
- :func:`f_measure` — boundary F with tolerance r = ceil(0.008·√(H²+W²)) and a radius-r disk
  (skimage ``disk``: x² + y² ≤ r²), with the official empty-boundary conventions;
- :func:`db_statistics` — per-object Mean / Recall / Decay (uint8 bin edges, as the original);
- :func:`label_measures` — J and F of every object of a whole sequence from label maps, the fast way.

Speed: the official code dilates two full-frame boundary maps per frame and object. Here only the
boundary pixels matter: precision needs, for each predicted boundary pixel, whether a ground-truth
boundary pixel lies within the disk (x² + y² ≤ r²). :func:`_within` answers that exactly for the
boundary pixels alone (the disk as 2r + 1 row segments, counted on a row-wise cumulative sum), on
the boundaries' bounding box only; ``tests/tasks/test_video_metrics.py`` checks it against a plain
full-frame dilation.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

BOUND_TH = 0.008


def tolerance(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """The disk radius in pixels: ``bound_th`` itself when ≥ 1, else ceil(bound_th · diagonal)."""
    return int(bound_th) if bound_th >= 1 else int(math.ceil(bound_th * math.hypot(*shape[-2:])))


def jaccard(gt: np.ndarray, pred: np.ndarray) -> np.ndarray | float:
    """J of boolean masks (..., H, W) → (...): |P∩G| / |P∪G|, 1 where the union is empty."""
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    inter = np.sum(gt & pred, axis=(-2, -1))
    union = np.sum(gt | pred, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The official ``_seg2bmap`` (same size): 1-px boundary of a boolean mask (..., H, W)."""
    seg = np.asarray(mask, bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[..., :, :-1] = seg[..., :, 1:]
    s[..., :-1, :] = seg[..., 1:, :]
    se[..., :-1, :-1] = seg[..., 1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[..., -1, :] = seg[..., -1, :] ^ e[..., -1, :]
    b[..., :, -1] = seg[..., :, -1] ^ s[..., :, -1]
    b[..., -1, -1] = False
    return b


def _disk_rows(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The disk x² + y² ≤ r² (skimage ``disk``) as rows: offsets dy and half-widths ⌊√(r² − dy²)⌋."""
    dy = np.arange(-radius, radius + 1)
    return dy, np.floor(np.sqrt(radius * radius - dy * dy) + 1e-9).astype(np.int64)


def _within(points: np.ndarray, others: np.ndarray, radius: int) -> int:
    """How many of ``points`` (n, 2) have one of ``others`` (m, 2) inside their radius-r disk.

    Exactly a dilation of the others' boundary map by the disk, read at ``points`` only: the disk
    is a stack of 2r + 1 horizontal segments, and a row-wise cumulative sum of the others' map (over
    their bounding box) counts the hits of each segment with two look-ups.
    """
    if len(points) == 0 or len(others) == 0:
        return 0
    y0, x0 = others.min(0)
    h, w = others.max(0) - (y0, x0) + 1
    hits = np.zeros((h, w + 1), np.int32)
    hits[others[:, 0] - y0, others[:, 1] - x0 + 1] = 1
    np.cumsum(hits, axis=1, out=hits)  # hits[y, k] = #others in row y at box columns < k
    py, px = points[:, 0] - y0, points[:, 1] - x0
    # first the disk's middle row (the widest segment): most matched points are found there
    row = (py >= 0) & (py < h)
    yr = np.clip(py, 0, h - 1)
    middle = row & (hits[yr, np.clip(px + radius + 1, 0, w)] > hits[yr, np.clip(px - radius, 0, w)])
    matched = int(np.count_nonzero(middle))
    py, px = py[~middle, None], px[~middle, None]
    if len(py) == 0:
        return matched
    dy, half = _disk_rows(radius)
    ys = py + dy  # n, 2r + 1 (box rows)
    inside = (ys >= 0) & (ys < h)
    ys = np.clip(ys, 0, h - 1)
    left = np.clip(px - half, 0, w)  # segment [x − half, x + half] ∩ the box's columns
    right = np.clip(px + half + 1, 0, w)
    hit = (hits[ys, right] > hits[ys, left]) & inside
    return matched + int(np.count_nonzero(hit.any(1)))


def f_from_boundaries(pred_points: np.ndarray, gt_points: np.ndarray, radius: int) -> float:
    """Boundary F from the (n, 2) coordinates of the predicted and ground-truth boundary pixels."""
    n_fg, n_gt = len(pred_points), len(gt_points)
    if n_fg == 0 or n_gt == 0:
        return _f_score(*_empty_boundaries(n_fg, n_gt))
    return _f_score(_within(pred_points, gt_points, radius) / n_fg, _within(gt_points, pred_points, radius) / n_gt)


def _empty_boundaries(n_fg: int, n_gt: int) -> tuple[float, float]:
    """(precision, recall) when a boundary map is empty, as the official code: none predicted → (1, 0),
    none in the GT → (0, 1), both empty → (1, 1)."""
    return (1.0 if n_fg == 0 else 0.0), (1.0 if n_gt == 0 else 0.0)


def _f_score(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def f_measure(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """Boundary F of one frame's boolean masks (H, W), the official ``f_measure``."""
    radius = tolerance(np.shape(pred), bound_th)
    pb, gb = boundary_map(pred), boundary_map(gt)
    return f_from_boundaries(np.argwhere(pb), np.argwhere(gb), radius)


def f_measure_dilation(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """The same F by full-frame disk dilation, literally as the official code (the reference for tests)."""
    from scipy.ndimage import binary_dilation
    from skimage.morphology import disk

    radius = tolerance(np.shape(pred), bound_th)
    pb, gb = boundary_map(pred), boundary_map(gt)
    n_fg, n_gt = pb.sum(), gb.sum()
    if n_fg == 0 or n_gt == 0:
        return _f_score(*_empty_boundaries(n_fg, n_gt))
    structure = disk(radius).astype(bool)
    return _f_score(np.sum(pb & binary_dilation(gb, structure)) / n_fg, np.sum(gb & binary_dilation(pb, structure)) / n_gt)


def db_statistics(values) -> tuple[float, float, float]:
    """Mean, Recall (fraction > 0.5) and Decay of one object's per-frame values, as the original.

    Decay = mean(bin 1) − mean(bin 4); bin edges round(linspace(1, n, 5) + 1e-10) − 1, cast to uint8
    (the original's cast, which wraps beyond 256 frames), bin k spanning edge_k..edge_{k+1} inclusive.
    """
    values = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
        edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [values[edges[i]: edges[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)


# -- whole sequences from label maps ------------------------------------------------------------------

def _boundary_candidates(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a label map (H, W) that differ from an in-image east / south / south-east neighbour,
    and the labels of (itself, east, south, south-east) there, a missing neighbour reading as itself.

    Object i's official boundary is exactly the candidates p with i ∈ {L(p), L(e), L(s), L(se)}: a
    pixel lies on it iff (L(p) == i) differs from (L(q) == i) for an existing neighbour q.
    """
    h, w = labels.shape
    differs = np.zeros((h, w), bool)
    differs[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    differs[:-1, :] |= labels[:-1, :] != labels[1:, :]
    differs[:-1, :-1] |= labels[:-1, :-1] != labels[1:, 1:]
    ys, xs = np.nonzero(differs)
    own = labels[ys, xs]
    east = np.where(xs + 1 < w, labels[ys, np.minimum(xs + 1, w - 1)], own)
    south = np.where(ys + 1 < h, labels[np.minimum(ys + 1, h - 1), xs], own)
    diag = np.where((xs + 1 < w) & (ys + 1 < h), labels[np.minimum(ys + 1, h - 1), np.minimum(xs + 1, w - 1)], own)
    return np.stack([ys, xs], 1), np.stack([own, east, south, diag], 1)


def _object_counts(gt: np.ndarray, pred: np.ndarray, n_objects: int) -> np.ndarray:
    """(n_objects + 2)² joint histogram of (gt id, pred id) of one frame; ids > n_objects share the last bin."""
    k = n_objects + 2
    g = np.minimum(gt, n_objects + 1)
    p = np.minimum(pred, n_objects + 1)
    codes = g.astype(np.uint8 if k * k <= 256 else np.int64) * k + p
    return np.bincount(codes.ravel(), minlength=k * k).reshape(k, k)


def _crops(gt: np.ndarray, pred: np.ndarray) -> list[tuple[slice, slice] | None]:
    """Per frame, the box of every non-zero pixel of gt or pred grown by 1 px (clipped), or None.

    Outside it both maps are 0, so no object's pixel or boundary lies there: J and F computed on
    the crop are those of the full frame (a crop edge that is not an image edge borders only zeros).
    """
    rows = (gt.max(axis=2) > 0) | (pred.max(axis=2) > 0)  # n, H
    cols = (gt.max(axis=1) > 0) | (pred.max(axis=1) > 0)  # n, W
    h, w = gt.shape[1:]
    boxes = []
    for r, c in zip(rows, cols):
        ys, xs = np.flatnonzero(r), np.flatnonzero(c)
        if len(ys) == 0:
            boxes.append(None)
            continue
        boxes.append((slice(max(ys[0] - 1, 0), min(ys[-1] + 2, h)), slice(max(xs[0] - 1, 0), min(xs[-1] + 2, w))))
    return boxes


def label_measures(gt: np.ndarray, pred: np.ndarray, n_objects: int,
                   bound_th: float = BOUND_TH) -> tuple[np.ndarray, np.ndarray]:
    """J and F (n_objects, n_frames) of uint8 label maps gt, pred (n_frames, H, W).

    Object i is (label == i) in both; equal to calling :func:`jaccard` and :func:`f_measure` on those
    masks frame by frame, without building a full-frame mask per object.
    """
    n = len(gt)
    j = np.ones((n_objects, n))  # an empty frame: every object empty in both, J = F = 1
    f = np.ones((n_objects, n))
    if n == 0 or n_objects == 0:
        return j, f
    radius = tolerance(gt.shape[-2:], bound_th)
    objects = np.arange(1, n_objects + 1)
    for t, box in enumerate(_crops(gt, pred)):
        if box is None:
            continue
        g, p = gt[t][box], pred[t][box]
        counts = _object_counts(g, p, n_objects)
        inter = counts[objects, objects]
        union = counts[objects, :].sum(1) + counts[:, objects].sum(0) - inter
        j[:, t] = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
        gt_xy, gt_lab = _boundary_candidates(g)
        pr_xy, pr_lab = _boundary_candidates(p)
        for o in objects:
            gt_points = gt_xy[(gt_lab == o).any(1)]
            pr_points = pr_xy[(pr_lab == o).any(1)]
            if len(pr_points) == len(gt_points) and np.array_equal(pr_points, gt_points):
                continue  # the same boundary (or none in both): P = R = 1, F stays 1
            f[o - 1, t] = f_from_boundaries(pr_points, gt_points, radius)
    return j, f
