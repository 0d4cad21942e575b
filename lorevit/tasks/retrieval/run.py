"""One retrieval evaluation: features of database and queries → ranks → E/M/H mAP (TASKS_SPEC §1, §5)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lorevit.utils.progress import progress_bar
from lorevit.tasks.features import FeatureExtractor, same_size_batches, setup_record
from lorevit.tasks.retrieval.dataset import RetrievalDataset, iter_tensors, size_sorted
from lorevit.tasks.retrieval.evaluate import KAPPAS, evaluate, rank

MULTISCALE = (1.0, 1 / math.sqrt(2), 0.5)  # DINO's --multiscale 1


@dataclass
class Embedding:
    features: np.ndarray  # N, d (not normalised; rank() normalises)
    seconds: float  # model time only (decoding excluded)
    wall_seconds: float  # decoding + model

    @property
    def images_per_s(self) -> float:
        return len(self.features) / self.seconds if self.seconds > 0 else float("nan")


def embed(extractor: FeatureExtractor, paths, imsize: int | None, boxes=None, batch_size: int = 16,
          scales: Sequence[float] = (1.0,), progress: str | bool = False) -> Embedding:
    """CLS features (N, d) of the images at ``paths``, in their order.

    Images are read in an order that groups equal sizes (so equal thumbnails share a batch) and put
    back in ``paths`` order. ``scales`` other than (1,) average the CLS over resized copies
    (bilinear), then the mean is returned (DINO's multiscale; ranking L2-normalises it).
    """
    start = time.perf_counter()
    order = size_sorted(paths, boxes)
    tensors = iter_tensors(paths, order, imsize, extractor.mean, extractor.std, boxes)
    if tuple(scales) == (1.0,):
        out = extractor.extract(tensors, batch_size, keep="cls", progress=progress, total=len(paths))
        items, seconds = out.items, out.seconds
    else:
        items, seconds = _multiscale(extractor, tensors, batch_size, scales, progress, len(paths))
    feats = torch.stack(items).float().numpy() if items else np.zeros((0, extractor.dim), np.float32)  # N, d
    restored = np.empty_like(feats)
    restored[np.asarray(order, dtype=np.int64)] = feats
    return Embedding(restored, seconds, time.perf_counter() - start)


@torch.no_grad()
def _multiscale(extractor, tensors, batch_size, scales, progress, total):
    items, seconds = [], 0.0
    bar = progress_bar(progress, total)
    for batch in same_size_batches(tensors, batch_size):  # B, 3, H, W
        t0 = time.perf_counter()
        acc = 0
        for s in scales:
            x = batch if s == 1 else F.interpolate(batch, scale_factor=s, mode="bilinear", align_corners=False)
            acc = acc + extractor(x).cls.cpu()  # B, d
        items.extend(acc / len(scales))
        seconds += time.perf_counter() - t0
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return items, seconds


def run_retrieval(extractor: FeatureExtractor, dataset: RetrievalDataset, imsize: int | None = 224,
                  crop_queries: bool = False, multiscale: bool = False, batch_size: int = 16,
                  kappas: Sequence[int] = KAPPAS, progress: bool = True) -> dict:
    """Embed database and queries, rank by one matrix product, evaluate E/M/H. Returns the results dict."""
    scales = MULTISCALE if multiscale else (1.0,)
    tag = f"{dataset.name} {extractor.label}"
    db = embed(extractor, dataset.db_paths(), imsize, None, batch_size, scales, progress and f"{tag} database")
    boxes = [g["bbx"] for g in dataset.gnd] if crop_queries else None
    q = embed(extractor, dataset.query_paths(), imsize, boxes, batch_size, scales, progress and f"{tag} queries")
    ranks = rank(db.features, q.features)  # n_db, n_q
    metrics = evaluate(ranks, dataset.gnd, kappas)
    images = len(dataset.imlist) + len(dataset.qimlist)
    model_s = db.seconds + q.seconds
    return {"dataset": dataset.name, "n_db": len(dataset.imlist), "n_queries": len(dataset.qimlist),
            "mAP": {p: _finite(metrics[p]["mAP"]) for p in metrics},  # None: no query has a positive
            "mP@k": {p: {f"mP@{k}": _finite(metrics[p][f"mP@{k}"]) for k in kappas} for p in metrics},
            "per_query_ap": {p: metrics[p]["ap"] for p in metrics},
            "queries_with_positives": {p: metrics[p]["queries"] for p in metrics},
            "images_per_s": images / model_s if model_s > 0 else float("nan"),
            "images_per_s_with_decoding": images / (db.wall_seconds + q.wall_seconds),
            "seconds": {"model": model_s, "wall": db.wall_seconds + q.wall_seconds},
            "top10": ranks[:10].T.tolist()}


def _finite(value: float) -> float | None:
    """NaN (a protocol where no query has a positive) → None, so retrieval.json stays strict JSON."""
    return None if value is None or math.isnan(value) else float(value)


def retrieval_setup(extractor: FeatureExtractor, dataset: str, data_root: str | Path, imsize: int | None,
                    crop_queries: bool, multiscale: bool, batch_size: int) -> dict:
    """What ``retrieval.json`` says about how it was made (``setup``)."""
    query_mode = "crop to bbx (official)" if crop_queries else "full image, no crop (DINO)"
    return setup_record(
        extractor, task="retrieval", dataset=dataset, data_root=str(Path(data_root).expanduser()),
        imsize=imsize, resize="PIL thumbnail, LANCZOS, aspect kept, never upsampled", query_mode=query_mode,
        crop_queries=bool(crop_queries), multiscale=list(MULTISCALE) if multiscale else [1.0],
        feature="CLS after the final norm (pre-logits)", ranking="cosine, one matrix product, stable argsort",
        scale="fraction", batch_size=batch_size)
