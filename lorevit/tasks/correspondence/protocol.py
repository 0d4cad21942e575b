"""Run the correspondence protocol over a set of pairs (TASKS_SPEC §2 "Recommended", §5 "SPair protocol").

Every image is resized to ``image_size``² (anisotropic, bicubic) and goes through the extractor once
(cached within a category, where SPair's pairs share images); each pair is then matched at the
images' original sizes by :func:`matching.match` (the exact trick by default).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from lorevit.utils.progress import progress_bar
from lorevit.tasks.features import FeatureExtractor, to_tensor
from lorevit.tasks.correspondence.matching import identity_prediction, match
from lorevit.tasks.correspondence.metrics import ALPHAS, pck_table
from lorevit.tasks.correspondence.spair import Pair

IMAGE_SIZE = 224


@dataclass
class Evaluation:
    pairs: list[Pair]
    preds: list[np.ndarray]  # per pair: N, 2 [x, y] in the target's original pixels
    seconds: float = 0.0  # features + matching (image decoding included)
    feature_seconds: float = 0.0  # inside the model
    info: dict = field(default_factory=dict)

    @property
    def pairs_per_s(self) -> float:
        return len(self.pairs) / self.seconds if self.seconds > 0 else float("nan")

    def table(self, alphas: Sequence[float] = ALPHAS) -> dict:
        """{"0.1": {"per_image", "per_point", "category_mean", "per_category", ...}, ...} in percent."""
        return pck_table(self.preds, [p.trg_kps for p in self.pairs], [p.bbox_side for p in self.pairs],
                         [p.category for p in self.pairs], alphas)

    def predictions(self, alpha: float = 0.1) -> dict:
        """``predictions.json``: enough to recompute every score (original pixels, [x, y])."""
        return {"alpha": alpha, "pairs": [
            {"pair": p.name, "category": p.category, "pred_kps": pred.tolist(),
             "trg_kps": [[_num(v) for v in row] for row in p.trg_kps.tolist()],
             "threshold": alpha * p.bbox_side} for p, pred in zip(self.pairs, self.preds)]}


def _num(v: float):
    return int(v) if float(v).is_integer() else round(float(v), 4)


def load_image(path, size: int, mean, std) -> torch.Tensor:
    """An image file → normalised (3, size, size) tensor (anisotropic bicubic resize)."""
    from PIL import Image

    with Image.open(path) as im:
        return to_tensor(im.convert("RGB").resize((size, size), Image.BICUBIC), mean, std)


def evaluate(pairs: list[Pair], extractor: FeatureExtractor, image_size: int = IMAGE_SIZE, method: str = "trick",
             batch_size: int = 16, progress: bool | str = True, say: Callable[[str], None] | None = None) -> Evaluation:
    """Predictions of ``extractor``'s upsampled patch tokens for every pair (source → target)."""
    bar = progress_bar(progress, len(pairs), unit="pair", desc="pairs")
    preds: list[np.ndarray] = [None] * len(pairs)  # type: ignore[list-item]
    start, feature_seconds = time.perf_counter(), 0.0
    for indices in _chunks_by_category(pairs):
        images = list(dict.fromkeys(path for i in indices for path in (pairs[i].src_image, pairs[i].trg_image)))
        tensors = (load_image(path, image_size, extractor.mean, extractor.std) for path in images)
        extraction = extractor.extract(tensors, batch_size=batch_size, keep="patches")
        feature_seconds += extraction.seconds
        tokens = dict(zip(images, extraction.items))  # path → h, w, d
        for i in indices:
            p = pairs[i]
            preds[i] = match(tokens[p.src_image], p.src_size, p.src_kps, tokens[p.trg_image], p.trg_size, method)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    info = {"image_size": image_size, "method": method, "threads": torch.get_num_threads()}
    return Evaluation(pairs, preds, seconds, feature_seconds, info)


def evaluate_identity(pairs: list[Pair]) -> Evaluation:
    """The "same pixel" baseline (scaled per axis when the sizes differ): :func:`identity_prediction`."""
    start = time.perf_counter()
    preds = [identity_prediction(p.src_kps, p.src_size, p.trg_size) for p in pairs]
    return Evaluation(pairs, preds, time.perf_counter() - start, 0.0, {"method": "identity"})


def _chunks_by_category(pairs: list[Pair]) -> list[list[int]]:
    """Pair indices grouped by category (first-seen order): the token cache lives for one group."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p.category, []).append(i)
    return list(groups.values())
