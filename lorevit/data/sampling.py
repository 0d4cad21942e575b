"""Seeded few-shot and subset sampling (spec "Protocols": k random training images per class)."""
from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from typing import Sequence

import numpy as np

log = logging.getLogger("lorevit.data")


def _by_class(targets: Sequence[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(targets):
        groups[int(t)].append(i)
    return dict(sorted(groups.items()))


def short_classes(targets: Sequence[int], shots: int) -> dict[int, int]:
    """Classes holding fewer than ``shots`` images: {label: count}."""
    return {label: len(idx) for label, idx in _by_class(targets).items() if len(idx) < shots}


def few_shot_indices(targets: Sequence[int], shots: int, seed: int, classnames: Sequence[str] | None = None,
                     allow_fewer: bool = True) -> list[int]:
    """``shots`` random indices per class, deterministic per ``seed``, never repeated.

    Each class draws from its own generator seeded by ``(seed, class)``, so a class's pick does
    not depend on the other classes, and for one seed the 8-shot pick is the first half of the
    16-shot pick. A class with fewer than ``shots`` images contributes all of them (with a
    warning) when ``allow_fewer``, else it is an error naming the class: a run must not claim a
    protocol it did not follow. The result is sorted.
    """
    if shots <= 0:
        raise ValueError(f"shots must be positive, got {shots}")
    short = short_classes(targets, shots)
    if short and not allow_fewer:
        from lorevit.data.dataset import DatasetError

        name = (lambda c: f"{classnames[c]!r}") if classnames else (lambda c: f"class {c}")
        listed = ", ".join(f"{name(c)} has {n}" for c, n in list(short.items())[:5])
        raise DatasetError(f"{shots}-shot sampling needs {shots} training images per class, but {len(short)} class(es) "
                           f"hold fewer ({listed}{', ...' if len(short) > 5 else ''}); lower --shots, or pass "
                           "--allow-fewer-shots true to take all of theirs (recorded in metrics.json)")
    chosen: list[int] = []
    for label, idx in _by_class(targets).items():
        order = np.random.default_rng([seed, label]).permutation(len(idx))
        chosen.extend(idx[j] for j in order[:shots])
    if short:
        msg = (
            f"{len(short)} class(es) have fewer than {shots} images; taking all of them "
            f"(class: count {', '.join(f'{c}: {n}' for c, n in list(short.items())[:10])})"
        )
        log.warning(msg)
        warnings.warn(msg, stacklevel=2)
    return sorted(chosen)


def validation_indices(targets: Sequence[int], val_shots: int, seed: int, reserved: int = 0) -> list[int]:
    """``val_shots`` validation images per class from the train split (issue 11 §5; CoOp uses min(k, 4)).

    They are the *last* ``val_shots`` of the class's permutation for ``seed`` — the permutation whose
    first ``shots`` images are the few-shot training pick (:func:`few_shot_indices`) — so they never
    overlap the first ``reserved`` images (the training shots, or the easy-to-hard selection pool), and
    a class large enough gives the same validation images for every k. A class with fewer than
    ``reserved + val_shots`` images gives what is left after the reserved ones. The result is sorted.
    """
    chosen: list[int] = []
    for label, idx in _by_class(targets).items():
        order = np.random.default_rng([seed, label]).permutation(len(idx))
        start = max(reserved, len(idx) - val_shots)
        chosen.extend(idx[j] for j in order[start:])
    return sorted(chosen)


def subset_indices(
    n_total: int, n: int | None, seed: int, targets: Sequence[int] | None = None
) -> list[int]:
    """A seeded random subset of ``range(n_total)`` of size ``n`` (all when ``n`` is None/≥ total).

    With ``targets`` the subset is stratified: classes take turns giving their next shuffled
    image, so every class is represented as evenly as ``n`` allows. The result is sorted.
    """
    if n is None or n >= n_total:
        return list(range(n_total))
    if n < 0:
        raise ValueError(f"subset size must be non-negative, got {n}")
    rng = np.random.default_rng(seed)
    if targets is None:
        return sorted(int(i) for i in rng.choice(n_total, size=n, replace=False))
    if len(targets) != n_total:
        raise ValueError(f"{len(targets)} targets for {n_total} items")
    queues = [list(np.asarray(idx)[rng.permutation(len(idx))]) for idx in _by_class(targets).values()]
    picked: list[int] = []
    depth = 0
    while len(picked) < n:
        for q in queues:
            if depth < len(q) and len(picked) < n:
                picked.append(int(q[depth]))
        depth += 1
    return sorted(picked)
