"""A figure of matched keypoints: source and target side by side, correct in green, wrong in red."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from lorevit.utils.io import atomic_write
from lorevit.tasks.correspondence.metrics import correct
from lorevit.tasks.correspondence.spair import Pair

OK, WRONG, GT = "#1a9850", "#d73027", "#ffffbf"


def spread(count: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``count`` items (all of them when k ≥ count): the pairs to draw."""
    if k >= count:
        return list(range(count))
    return [round(i * (count - 1) / max(1, k - 1)) for i in range(k)]


def draw_pairs(pairs: list[Pair], preds: list[np.ndarray], path: str | Path, alpha: float = 0.1,
               title: str = "", height: int = 240) -> Path:
    """:func:`render_pairs` written atomically to ``path``."""
    png = render_pairs(pairs, preds, alpha, title, height)
    return atomic_write(path, lambda tmp: tmp.write_bytes(png))


def render_pairs(pairs: list[Pair], preds: list[np.ndarray], alpha: float = 0.1, title: str = "",
                 height: int = 240) -> bytes:
    """PNG bytes, one row per pair (both images scaled to ``height`` px): a line from each source keypoint to its
    prediction, coloured by PCK@α; the ground-truth target points are small pale crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = len(pairs)
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.9 * rows), squeeze=False)
    for ax, pair, pred in zip(axes[:, 0], pairs, preds):
        images, scales = [], []
        for file, (H, W) in ((pair.src_image, pair.src_size), (pair.trg_image, pair.trg_size)):
            s = height / H
            with Image.open(file) as im:
                images.append(np.asarray(im.convert("RGB").resize((max(1, round(W * s)), height))))
            scales.append(s)
        offset = images[0].shape[1]
        ax.imshow(np.concatenate(images, axis=1))
        hits = correct(pred, pair.trg_kps, alpha * pair.bbox_side)
        src = pair.src_kps * scales[0]
        trg = np.asarray(pred, dtype=np.float64) * scales[1] + [offset, 0]
        gt = pair.trg_kps * scales[1] + [offset, 0]
        ax.scatter(gt[:, 0], gt[:, 1], marker="x", s=14, c=GT, linewidths=1)
        for (x0, y0), (x1, y1), ok in zip(src, trg, hits):
            colour = OK if ok else WRONG
            ax.plot([x0, x1], [y0, y1], color=colour, linewidth=0.8, alpha=0.8)
            ax.scatter([x0, x1], [y0, y1], s=10, c=colour)
        ax.set_title(f"{pair.name}: {int(hits.sum())}/{len(hits)} correct at α={alpha}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=72)
    finally:
        plt.close(fig)
    return buffer.getvalue()
