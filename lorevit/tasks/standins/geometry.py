"""Homographies and warps of the stand-ins: pure functions of numpy arrays (and scikit-image's warp).

Conventions: pixel coordinates ``[x, y]`` (x right, y down), 3 × 3 homographies ``M`` mapping source pixels
to target pixels (column vectors ``[x, y, 1]``), sizes as ``(W, H)`` where the name says ``size`` and
``(H, W)`` where it says ``shape`` (numpy's order). Used by :mod:`.retrieval` (views of a photo) and
:mod:`.correspondence` (the exact ground truth of the warped pairs); reads no files but OpenCV's XML.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from lorevit.tasks.errors import TaskError


def apply_homography(M: np.ndarray, kps: np.ndarray) -> np.ndarray:
    """[x, y] (N, 2) through a 3 × 3 homography (pixel coordinates, x right, y down)."""
    pts = np.concatenate([np.asarray(kps, dtype=np.float64), np.ones((len(kps), 1))], axis=1) @ M.T
    return pts[:, :2] / pts[:, 2:3]


def homography_from_corners(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3 × 3 homography (h₃₃ = 1) taking 4 points ``src`` to ``dst`` exactly (an 8 × 8 linear solve)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def random_homography(W: int, H: int, rng: np.random.Generator, strength: float) -> tuple[np.ndarray, tuple[int, int]]:
    """A perspective warp of a (W, H) image: anisotropic scale 0.8–1.25 per axis and corners moved inward by up
    to ``strength`` of the target's sides; returns (M, target shape (H_t, W_t))."""
    sx, sy = rng.uniform(0.8, 1.25, size=2)
    Wt, Ht = int(round(W * sx)), int(round(H * sy))
    src = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], dtype=np.float64)
    dst = src * [(Wt - 1) / (W - 1), (Ht - 1) / (H - 1)]
    jitter = rng.uniform(0, strength, size=(4, 2)) * [Wt - 1, Ht - 1]
    dst = dst + jitter * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])  # every corner moves inward
    return homography_from_corners(src, dst), (Ht, Wt)


def rotation(W: int, H: int, degrees: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Rotation by ``degrees`` (counter-clockwise on screen) about the image centre, onto the expanded canvas;
    returns (M, target shape (H_t, W_t))."""
    t = np.deg2rad(degrees)
    R = np.array([[np.cos(t), np.sin(t), 0], [-np.sin(t), np.cos(t), 0], [0, 0, 1]])  # y points down
    corners = apply_homography(R, np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], dtype=np.float64))
    low, high = corners.min(axis=0), corners.max(axis=0)
    shift = np.array([[1, 0, -low[0]], [0, 1, -low[1]], [0, 0, 1]])
    size = np.rint(high - low).astype(int) + 1
    return shift @ R, (int(size[1]), int(size[0]))


def flip(W: int, H: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Horizontal mirror: x → W − 1 − x; returns (M, the unchanged shape (H, W))."""
    return np.array([[-1.0, 0, W - 1], [0, 1, 0], [0, 0, 1]]), (H, W)


def view_homography(center, size, scale: float, angle_deg: float, perspective=(0.0, 0.0)) -> np.ndarray:
    """3×3 map from photo pixels to view pixels: ``center`` of the photo lands at the centre of a ``size``
    (W, H) view, scaled by ``scale``, rotated by ``angle_deg`` and keystoned by ``perspective`` (the last row)."""
    w, h = size
    a = math.radians(angle_deg)
    to_origin = np.array([[1, 0, -center[0]], [0, 1, -center[1]], [0, 0, 1]], dtype=np.float64)
    similarity = np.array([[scale * math.cos(a), -scale * math.sin(a), 0],
                           [scale * math.sin(a), scale * math.cos(a), 0], [0, 0, 1]])
    keystone = np.array([[1, 0, 0], [0, 1, 0], [perspective[0], perspective[1], 1]])
    to_view = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]])
    return to_view @ keystone @ similarity @ to_origin


def visible_fraction(H: np.ndarray, bbx, size, n: int = 40) -> float:
    """The fraction of the box ``bbx`` ([x1, y1, x2, y2], a n×n grid of points) that ``H`` maps inside a
    ``size`` (W, H) view (in front of the camera: positive homogeneous coordinate)."""
    xs = np.linspace(bbx[0], bbx[2], n)
    ys = np.linspace(bbx[1], bbx[3], n)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])  # 3, n*n
    mapped = H @ pts
    z = mapped[2]
    x, y = mapped[0] / z, mapped[1] / z
    inside = (z > 0) & (x >= 0) & (x < size[0]) & (y >= 0) & (y < size[1])
    return float(inside.mean())


def warp(image: np.ndarray, M: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W[, C]) warped by the homography M (source → target pixels) onto an ``shape`` (H_t, W_t)
    canvas, bilinear, zero outside. The value range is kept; a uint8 image comes back as uint8 (rounded),
    a float image as float."""
    from skimage.transform import ProjectiveTransform
    from skimage.transform import warp as sk_warp

    out = sk_warp(image, ProjectiveTransform(M).inverse, output_shape=shape, order=1, preserve_range=True,
                  mode="constant", cval=0)
    if np.asarray(image).dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


def read_opencv_matrix(path: Path, name: str | None = None) -> np.ndarray:
    """A matrix from an OpenCV FileStorage XML (``<rows>``, ``<cols>``, ``<data>``), parsed with ElementTree;
    ``name`` picks the node (default: the first)."""
    tree = ET.parse(path).getroot()
    node = tree.find(name) if name else next(iter(tree))
    if node is None:
        raise TaskError(f"{path}: no matrix {name!r}")
    rows, cols = int(node.findtext("rows")), int(node.findtext("cols"))
    values = np.array([float(v) for v in re.split(r"\s+", node.findtext("data").strip())])
    return values.reshape(rows, cols)
