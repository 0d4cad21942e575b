"""Easy-to-hard selection (spec "Protocols"): pure tensor functions, no model, no files.

Stage 1 (LORE-e) trains on the ``n`` easiest images per class, stage 2 (LORE-h) on the ``n``
hardest for the stage-1 model. "Easy" and "hard" are measured in the Black Box's feature
space by cosine distance to the class centroid, as the paper describes.

What the public code does differently: it orders each class's images by **iCaRL herding** on
CLIP image features (greedily picking the image that keeps the running mean of the picked
features closest to the class mean) and takes the first ``n`` as easy; for the hard stage it
takes the misclassified images that come *last* in herding order. :func:`herding_order` is
provided for that variant; the defaults follow the paper's centroid-distance description.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _normalise(features: Tensor) -> Tensor:
    return torch.nn.functional.normalize(features.detach().float(), dim=-1)


def _check(features: Tensor, labels: Tensor, n: int) -> None:
    if features.ndim != 2 or labels.ndim != 1 or len(features) != len(labels):
        raise ValueError(f"expected features [N, D] and labels [N], got {tuple(features.shape)} and {tuple(labels.shape)}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")


def centroid_similarity(features: Tensor, labels: Tensor) -> Tensor:
    """Cosine similarity of every image to its class centroid (mean of L2-normalised features)."""
    f = _normalise(features)
    sim = torch.empty(len(f))
    for c in torch.unique(labels):
        mask = labels == c
        centroid = _normalise(f[mask].mean(0, keepdim=True))[0]
        sim[mask] = f[mask] @ centroid
    return sim


def _ranked(indices: Tensor, keys: Tensor, descending: bool) -> list[int]:
    """``indices`` ordered by ``keys`` (ties by index: stable sort on index-ordered input)."""
    order = torch.sort(keys, descending=descending, stable=True).indices
    return indices[order].tolist()


def easy_indices(features: Tensor, labels: Tensor, n: int) -> list[int]:
    """Per class, the ``n`` images closest (cosine) to their class centroid.

    ``features`` [N, D] are Black-Box image features, ``labels`` [N] the true labels. Returns
    indices grouped by class (classes in ascending order), closest first; a class with fewer
    than ``n`` images gives all of them. (Public code: first ``n`` in iCaRL herding order.)
    """
    _check(features, labels, n)
    labels = labels.detach().cpu()
    sim = centroid_similarity(features.cpu(), labels)
    out: list[int] = []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        out.extend(_ranked(idx, sim[idx], descending=True)[:n])
    return out


def hard_indices(features: Tensor, labels: Tensor, preds: Tensor, n: int) -> list[int]:
    """Per class, the ``n`` hardest images for the current model.

    Misclassified images (``preds != labels``) come first, farthest from the class centroid
    first; then correctly classified ones, farthest first (cosine distance to the centroid of
    the class's L2-normalised features). Returns indices grouped by class in ascending class
    order. (Public code: misclassified images last in herding order.)
    """
    _check(features, labels, n)
    labels = labels.detach().cpu()
    preds = preds.detach().cpu()
    if preds.shape != labels.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and labels {tuple(labels.shape)} differ")
    dist = 1.0 - centroid_similarity(features.cpu(), labels)
    out: list[int] = []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        wrong = preds[idx] != c
        ranked = _ranked(idx[wrong], dist[idx[wrong]], True) + _ranked(idx[~wrong], dist[idx[~wrong]], True)
        out.extend(ranked[:n])
    return out


def herding_order(features: Tensor) -> list[int]:
    """iCaRL herding order of one class's features (the public code's easy-first ranking).

    Greedily picks, at step t, the image whose addition brings the mean of the picked
    L2-normalised features closest to the class mean. Returns all positions in pick order.
    """
    f = _normalise(features)
    mu = f.mean(0)
    picked: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(len(f), dtype=torch.bool)
    for t in range(1, len(f) + 1):
        candidates = (running.unsqueeze(0) + f) / t
        err = (mu.unsqueeze(0) - candidates).norm(dim=1)
        err[~available] = float("inf")
        j = int(torch.argmin(err))
        picked.append(j)
        available[j] = False
        running = running + f[j]
    return picked
