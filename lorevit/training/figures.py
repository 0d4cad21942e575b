"""A run's figures: training curves (loss, accuracy per epoch) and the test confusion matrix."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lorevit.utils.plotting import _pyplot, _save

CURVES_INCHES = (10.0, 3.6)


def plot_training_curves(metrics: dict, path: str | Path) -> Path:
    """A run's curves from its metrics dict alone: loss (total, task, L_kp) and accuracy (train; test
    per epoch when the history rows have ``val_top1``; the final ``test_top1`` as a dashed line)."""
    plt = _pyplot()
    history = list(metrics.get("history") or [])
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=CURVES_INCHES)
    xs = list(range(1, len(history) + 1))
    stage_starts = [i + 1 for i, row in enumerate(history) if i and row.get("epoch", 0) <= history[i - 1].get("epoch", 0)]

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(x, float(row[key])) for x, row in zip(xs, history) if row.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    for key, label, style in (("train_loss", "loss (total)", "-o"), ("train_task", "L_task", "--"),
                              ("train_kp", "L_kp", ":")):
        x, y = series(key)
        if y and not (key == "train_task" and series("train_kp")[1] == []):
            loss_ax.plot(x, y, style, label=label, markersize=3)
    for key, label, style in (("train_acc", "train top-1", "-o"), ("val_top1", "test top-1 (per epoch)", "-s")):
        x, y = series(key)
        if y:
            acc_ax.plot(x, y, style, label=label, markersize=3)
    if metrics.get("test_top1") is not None:
        acc_ax.axhline(float(metrics["test_top1"]), color="k", linestyle="--", linewidth=1,
                       label=f"final test top-1 {float(metrics['test_top1']):.2f}%")
    for ax in (loss_ax, acc_ax):
        for start in stage_starts:
            ax.axvline(start - 0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if not history:
        loss_ax.text(0.5, 0.5, "no training history\n(method trains nothing)", ha="center", va="center",
                     transform=loss_ax.transAxes)
    loss_ax.set_title("training loss", fontsize=9)
    acc_ax.set_title("accuracy (%)", fontsize=9)
    parts = [str(metrics[k]) for k in ("method", "dataset") if metrics.get(k)]
    if metrics.get("shots") and metrics.get("protocol", "few-shot") == "few-shot":
        parts.append(f"{metrics['shots']}-shot")
    if metrics.get("seed") is not None:
        parts.append(f"seed {metrics['seed']}")
    fig.suptitle(", ".join(parts) or "training curves", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion(confusion, classnames: Sequence[str], path: str | Path, title: str = "") -> Path:
    """``lorevit eval``'s confusion matrix: rows (true class) normalised to 1, so the diagonal is each
    class's accuracy; counts written in the cells when there are ≤ 15 classes."""
    plt = _pyplot()
    counts = np.asarray(confusion, dtype=np.int64)  # C, C
    c = counts.shape[0]
    rows = counts / np.maximum(counts.sum(1, keepdims=True), 1)  # C, C, each row sums to 1 (or 0: no image)
    side = min(max(4.0, 2.0 + 0.22 * c), 12.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    named = c <= CONFUSION_NAMED_CLASSES
    ticks = list(range(c)) if named else list(range(0, c, max(1, c // 20)))
    labels = [str(classnames[i]) if named else str(i) for i in ticks]
    fontsize = 8 if c <= 15 else 6 if named else 7
    ax.set_xticks(ticks, labels, rotation=90 if named else 0, fontsize=fontsize)
    ax.set_yticks(ticks, labels, fontsize=fontsize)
    ax.set_xlabel("predicted class" + ("" if named else " (index)"))
    ax.set_ylabel("true class" + ("" if named else " (index)"))
    if c <= 15:
        for i in range(c):
            for j in range(c):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rows[i, j] > 0.5 else "black")
    accuracy = 100.0 * np.trace(counts) / max(int(counts.sum()), 1)
    ax.set_title(f"{title + ': ' if title else ''}top-1 {accuracy:.2f}% on {int(counts.sum())} images", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


CONFUSION_NAMED_CLASSES = 40  # class names on the axes up to this many classes; indices beyond
