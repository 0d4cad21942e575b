"""What a task gives ``lorevit bench tasks`` (:mod:`lorevit.bench.tasks`): each task's ``lorevit.tasks.<task>.bench``
module has ``bench(ctx: BenchContext) -> list[TaskResult]``, and its offline stand-ins
(:mod:`lorevit.tasks.standins`) ``build(root, say) -> list[str]``; :func:`extractors_for` gives the two feature
sources, B-B and LORE, as the very same frozen ViT.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lorevit.tasks.features import FeatureExtractor


@dataclass
class BenchContext:
    extractors: dict[str, FeatureExtractor]  # {"B-B": ..., "LORE": ...}, in table order
    data_root: Path | None  # a user's real datasets (roxford5k/, rparis6k/, SPair-71k/, DAVIS/), if any
    standins_root: Path  # where the stand-ins live (built there when missing)
    work_dir: Path  # per-task outputs (predictions, figures)
    quick: bool = False  # a small slice of every dataset: smoke tests
    say: Callable[[str], None] = print


@dataclass
class TaskResult:
    task: str  # "retrieval"
    dataset: str  # "roxford5k", "standin-fashion-mnist", ...
    kind: str  # "real" | "stand-in"
    columns: list[str]  # metric names in table order, e.g. ["mAP-M", "mAP-H"]
    rows: dict[str, dict[str, float]]  # row ("B-B", "LORE", a baseline) → metric → value
    scale: str = "fraction"  # how the values are written: "fraction" (mAP) or "percent" (PCK, J&F)
    throughput: dict[str, float] = field(default_factory=dict)  # row → items/s
    unit: str = "images/s"
    notes: str = ""
    details: dict = field(default_factory=dict)  # anything else worth keeping in tasks.json


def extractors_for(adapter: str | Path, device="cpu", base_size: int | None = None, weights: str | None = "unset",
                   strict: bool = False) -> dict[str, FeatureExtractor]:
    """LORE from ``adapter`` (a run, a hub-style folder or a Hub repo id; ``weights``/``strict``: a local copy of its
    backbone's weights, fingerprint-checked, as the other task commands) and B-B as the very same frozen ViT."""
    from lorevit.tasks.features import load_extractor

    lore = load_extractor(adapter, weights=weights, base_size=base_size, device=device, strict=strict)
    provenance = {"source": "black-box", "backbone": lore.provenance["backbone"], "weights": lore.provenance["weights"]}
    return {"B-B": FeatureExtractor(lore.backbone, None, provenance), "LORE": lore}
