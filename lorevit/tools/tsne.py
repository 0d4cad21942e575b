"""Feature views (issue 22 §3): t-SNE of the Black Box's CLS features beside the adapter's.

    lorevit visualize --tsne --adapter DIR [--dataset NAME --data-root DIR] [--split test] [--limit N] --output DIR

writes ``DIR/tsne.png`` (two panels coloured by class, each titled with its k-NN accuracy) and
``DIR/tsne.csv`` (one row per image: index, label, class, bb_x, bb_y, adapter_x, adapter_y) and
``DIR/tsne.json`` (the same 2-D points as N × 2 lists under ``points.bb`` / ``points.adapter``, with
``indices``, ``labels``, ``classnames``, ``knn_accuracy``, ``k``, ``seed``).
The Black Box is the frozen ViT without the method (a clean copy when the method changed its own);
its feature and the adapter's are the pooled, normalised features the head reads. t-SNE is
scikit-learn's (PCA initialisation, ``random_state=seed``): the same seed gives the same figure.

The k-NN accuracy is leave-one-out, k = 5, Euclidean, in the 2-D embedding the panel shows
(:func:`knn_accuracy`): how well classes separate in the picture, not a classifier's score.
"""
from __future__ import annotations

import csv
import json
import io
from pathlib import Path

import numpy as np
import torch

from lorevit.errors import ConfigError
from lorevit.utils.io import atomic_write
from lorevit.utils.plotting import _pyplot, _save

KNN_K = 5


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = KNN_K) -> float:
    """Leave-one-out k-NN accuracy of ``points`` (N, D): each point takes the majority label of its ``k``
    nearest other points (ties: the label of the nearest among the tied)."""
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(points)
    if n < 2:
        return float("nan")
    k = min(k, n - 1)
    dist = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)  # N, N
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]  # N, k nearest first
    correct = 0
    for i in range(n):
        near = labels[order[i]]
        values, counts = np.unique(near, return_counts=True)
        tied = set(values[counts == counts.max()].tolist())
        vote = next(v for v in near.tolist() if v in tied)  # the nearest of the tied labels
        correct += int(vote == labels[i])
    return correct / n


def embed_2d(features: np.ndarray, seed: int) -> np.ndarray:
    """scikit-learn t-SNE of (N, d) features to (N, 2); perplexity below N as t-SNE requires."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as err:
        raise ConfigError('t-SNE needs scikit-learn: pip install "lorevit[tasks]"') from err
    n = len(features)
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto").fit_transform(np.asarray(features, dtype=np.float64))


@torch.no_grad()
def cls_features(model, images: torch.Tensor, blackbox=None, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(B-B features, adapter features), each (N, d): the frozen ViT without prompts and the adapted model."""
    model.eval()
    plain = model.backbone if blackbox is None else blackbox
    bb, ad = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        bb.append(plain(batch).float())  # B, d
        ad.append(model(batch).features.float())  # B, d
    return torch.cat(bb).numpy(), torch.cat(ad).numpy()


def tsne_view(adapter: str | Path, output: str | Path, dataset: str | None = None, data_root: str | None = None,
              split: str = "test", limit: int | None = 500, seed: int = 0, weights: str | None = "unset",
              strict: bool = False) -> dict:
    """The t-SNE figure and CSV for ``limit`` seeded images of a split (the adapter's own dataset by default)."""
    from lorevit.data import subset_indices
    from lorevit.data.transforms import image_transforms
    from lorevit.tools.visualize import adapter_dataset
    from lorevit.factory import load_adapter
    from lorevit.tools.locality import changes_the_vit

    if limit is not None and limit < 3:
        raise ConfigError("--limit must be at least 3 images for a t-SNE")
    model, cfg = load_adapter(adapter, weights=weights, strict=strict)
    transform = image_transforms(model.backbone.data_config, cfg.img_size, train=False, preset=cfg.transforms)
    name = dataset or cfg.dataset
    data = adapter_dataset(model, cfg, dataset, data_root, split, transform)
    indices = subset_indices(len(data), limit if limit is None else min(limit, len(data)), seed)
    if len(indices) < 3:
        raise ConfigError(f"{name} {split} holds {len(indices)} image(s); a t-SNE needs at least 3")
    items = [data[i] for i in indices]
    images = torch.stack([image for image, _ in items])  # N, 3, H, W
    labels = np.array([label for _, label in items])
    blackbox = None
    if changes_the_vit(model):  # its own ViT holds the method's changes: B-B needs a clean one
        from lorevit.backbone import create_backbone
        from lorevit.factory import resolve_weights

        blackbox = create_backbone(cfg.backbone, resolve_weights(cfg, weights, adapter), cfg.img_size,
                                   **cfg.backbone_kwargs).eval()
    torch.manual_seed(seed)
    bb_feat, ad_feat = cls_features(model, images, blackbox)
    coords = {"bb": embed_2d(bb_feat, seed), "adapter": embed_2d(ad_feat, seed)}
    knn = {key: knn_accuracy(xy, labels) for key, xy in coords.items()}

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "label", "class", "bb_x", "bb_y", "adapter_x", "adapter_y"])
    for r, i in enumerate(indices):
        writer.writerow([i, int(labels[r]), model.classnames[labels[r]],
                         *(f"{v:.6f}" for v in coords["bb"][r]), *(f"{v:.6f}" for v in coords["adapter"][r])])
    csv_path = out / "tsne.csv"
    atomic_write(csv_path, lambda tmp: Path(tmp).write_text(buffer.getvalue(), encoding="utf-8"))
    record = {"adapter": str(adapter), "method": cfg.method, "dataset": name, "split": split, "seed": seed, "k": KNN_K,
              "knn_accuracy": knn, "classnames": list(model.classnames), "indices": [int(i) for i in indices],
              "labels": labels.tolist(), "points": {key: np.round(xy, 6).tolist() for key, xy in coords.items()}}
    json_path = out / "tsne.json"
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8"))

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    cmap = plt.get_cmap("tab20" if model.num_classes > 10 else "tab10")
    titles = {"bb": "Black Box (frozen ViT) CLS features", "adapter": f"{cfg.method} CLS features"}
    for ax, key in zip(axes, ("bb", "adapter")):
        xy = coords[key]
        for c in np.unique(labels):
            ax.scatter(*xy[labels == c].T, s=10, color=cmap(int(c) % cmap.N), label=model.classnames[c])
        ax.set_title(f"{titles[key]}\n{KNN_K}-NN accuracy (leave-one-out, 2-D): {knn[key]:.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if model.num_classes <= 20:
        axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"t-SNE of {len(indices)} {name} {split} images (seed {seed})", fontsize=10)
    fig.tight_layout()
    png_path = _save(fig, out / "tsne.png")
    return {"png": str(png_path), "csv": str(csv_path), "json": str(json_path), "images": len(indices), "knn_bb": knn["bb"],
            "knn_adapter": knn["adapter"], "k": KNN_K}
