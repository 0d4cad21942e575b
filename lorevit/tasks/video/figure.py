"""A figure of one sequence: a few frames with the ground truth (top) and the prediction (bottom) overlaid."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lorevit.tasks.video.davis import VOC_PALETTE, VOID, Sequence, read_mask

PALETTE = np.array(VOC_PALETTE, dtype=np.float32).reshape(256, 3)


def overlay(frame: np.ndarray, ids: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """H, W, 3 uint8 frame with every object id painted in its VOC colour (void in white)."""
    colours = PALETTE[ids].copy()
    colours[ids == VOID] = 255
    painted = ids > 0
    out = frame.astype(np.float32)
    out[painted] = (1 - alpha) * out[painted] + alpha * colours[painted]
    return out.astype(np.uint8)


def pick_frames(n: int, count: int = 4) -> list[int]:
    """``count`` evenly spaced frame indices, first and last included."""
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(count, n))})


def sequence_figure(sequence: Sequence, predictions: str | Path, output: str | Path, count: int = 4,
                    title: str = "") -> Path:
    """Write ``output`` (PNG): ``count`` frames, ground truth overlaid on top, prediction below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predictions = Path(predictions)
    picks = pick_frames(len(sequence), count)
    fig, axes = plt.subplots(2, len(picks), figsize=(3.2 * len(picks), 4.2), squeeze=False)
    for col, index in enumerate(picks):
        frame = np.asarray(Image.open(sequence.frames[index]).convert("RGB"))
        rows = [("ground truth", sequence.annotations[index]),
                ("prediction", predictions / sequence.name / f"{sequence.frame_ids[index]}.png")]
        for row, (label, path) in enumerate(rows):
            ax = axes[row, col]
            ids = read_mask(path) if Path(path).is_file() else np.zeros(frame.shape[:2], np.uint8)
            ax.imshow(overlay(frame, ids) if ids.shape == frame.shape[:2] else frame)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {sequence.frame_ids[index]}", fontsize=9)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(title or sequence.name, fontsize=10)
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)
    return output
