"""Semi-supervised label propagation with patch-token affinities, as DINO's evaluation does it.

TASKS_SPEC §3, "DINO label propagation" (facebookresearch/dino ``eval_video_segmentation.py``); its
defaults are the protocol (§5, "DAVIS"):

- frames: short side resized to 480, the long side to ⌊(480·long/short)/64⌋·64 (854 → 832) for patch sizes
  dividing 64 (8, 16); for any other patch p (DINOv2's 14) both sides to multiples of p (854×480 → 840×476),
  so the grid covers the working frame and masks map back in place (issue 25 §4); bilinear
  (half-pixel centres, no antialiasing, rounded to 8 bits as cv2 does), then normalised with the
  **backbone's own** mean/std (§5; ``normalisation="dino"`` gives DINO's ImageNet mean with its
  std quirk (0.228, 0.224, 0.225));
- features: last-block patch tokens after the final norm (:class:`~lorevit.tasks.features.FeatureExtractor`),
  grid h × w = ⌊H′/p⌋ × ⌊W′/p⌋ for any patch size p, each token L2-normalised;
- first mask: PIL NEAREST resize to (⌊W′/p⌋, ⌊H′/p⌋), one-hot with C = max id + 1 after the resize
  (void 255 counts as background here);
- context: the first frame (its one-hot labels) plus a FIFO of the **7** latest soft predictions
  (features and C × h × w soft labels, before upsampling and min–max);
- affinity exp(cos / **0.1**) between every context and target patch, zero outside a **12**-patch
  Chebyshev neighbourhood (25 × 25 window), **top-5** per target over all context frames jointly (ties
  kept), each target's weights normalised to sum 1; the soft label is the weighted sum;
- output: bilinear ×p upsampling (align_corners False), per-channel min–max (channels with max > 0),
  argmax, PIL NEAREST resize to the frame's original size; frame 0's output is the ground truth.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lorevit.utils.progress import progress_bar
from lorevit.tasks.errors import TaskError
from lorevit.tasks.video.davis import VOID, Sequence, read_mask, write_mask

DINO_MEAN = (0.485, 0.456, 0.406)
DINO_STD = (0.228, 0.224, 0.225)  # DINO's quirk: 0.228, not ImageNet's 0.229 (use normalisation="dino")


@dataclass
class PropagationConfig:
    """DINO's defaults (``eval_video_segmentation.py``)."""
    n_last_frames: int = 7
    size_mask_neighborhood: int = 12
    topk: int = 5
    temperature: float = 0.1
    short_side: int = 480
    multiple: int = 64
    normalisation: str = "backbone"  # "backbone" (§5 default) | "dino" (ImageNet mean, std 0.228/0.224/0.225)

    def __post_init__(self):
        if self.normalisation not in ("backbone", "dino"):
            raise TaskError(f"normalisation must be 'backbone' or 'dino', got {self.normalisation!r}")
        for name in ("n_last_frames", "size_mask_neighborhood"):
            if getattr(self, name) < 0:
                raise TaskError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("topk", "short_side", "multiple"):
            if getattr(self, name) < 1:
                raise TaskError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not self.temperature > 0:
            raise TaskError(f"temperature must be > 0, got {self.temperature}")


# -- frames and the first mask -----------------------------------------------------------------------

def working_size(width: int, height: int, short_side: int = 480, multiple: int = 64,
                 patch: int | None = None) -> tuple[int, int]:
    """(W′, H′): DINO's ``read_frame`` size; the short side → ``short_side``, the long side floored to ``multiple``.

    DINO's rule (64) suits patch sizes that divide it (8, 16): the patch grid then covers the whole working frame.
    For any other ``patch`` (DINOv2's 14) both sides are floored to multiples of the patch instead (854×480 →
    840×476): the grid covers every working pixel, so the prediction, upsampled by ``patch``, is the working frame
    and maps back to the original size exactly (with 64, 854×480 → 832×480 and a 59×34 grid covering 826×476,
    stretched to 854×480, masks moved by up to 6×4 px)."""
    if patch is not None and multiple % patch:
        short = short_side // patch * patch
        long = int((short * max(width, height)) / min(width, height)) // patch * patch
        return (short, long) if height > width else (long, short)
    if height > width:
        return short_side, int(((short_side * height) / width) // multiple * multiple)
    return int(((short_side * width) / height) // multiple * multiple), short_side


def resize_bilinear(pixels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """H, W, 3 uint8 → 3, H′, W′ float in [0, 255], bilinear with half-pixel centres, rounded like cv2."""
    image = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float()[None]  # 1, 3, H, W
    if image.shape[-1] != size[0] or image.shape[-2] != size[1]:
        image = F.interpolate(image, size=(size[1], size[0]), mode="bilinear", align_corners=False)
        image = image.round_().clamp_(0, 255)
    return image[0]


def load_frame(path: Path, size: tuple[int, int], mean, std) -> torch.Tensor:
    """A JPEG → normalised 3, H′, W′ tensor."""
    try:
        with Image.open(path) as image:
            pixels = np.array(image.convert("RGB"))  # writable: torch.from_numpy shares it
    except (FileNotFoundError, OSError) as err:
        raise TaskError(f"frame {path} cannot be read ({err})") from err
    image = resize_bilinear(pixels, size).div_(255.0)
    return (image - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def first_labels(mask: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """The first frame's ids (H, W) → one-hot C, h, w at patch resolution (PIL NEAREST, C after resizing)."""
    ids = np.array(mask, dtype=np.uint8)
    ids[ids == VOID] = 0
    small = np.asarray(Image.fromarray(ids).resize((grid[1], grid[0]), Image.NEAREST))
    small = torch.from_numpy(small.astype(np.int64))  # h, w
    return F.one_hot(small, int(small.max()) + 1).permute(2, 0, 1).float()  # C, h, w


# -- one propagation step ----------------------------------------------------------------------------

def neighbourhood(grid: tuple[int, int], size: int) -> torch.Tensor:
    """N × N (N = h·w) float mask: 1 where two patches are within ``size`` patches (Chebyshev)."""
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    near = ((ys[:, None] - ys[None]).abs() <= size) & ((xs[:, None] - xs[None]).abs() <= size)
    return near.float()  # target, source


def propagate_step(target: torch.Tensor, context: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None,
                   topk: int = 5, temperature: float = 0.1) -> torch.Tensor:
    """Soft labels of one target frame.

    target: N, d and context: K, N, d (L2-normalised features); labels: K, C, N (the context's soft
    labels); mask: N × N neighbourhood (target, source) or None. Returns C, N.
    """
    k, n, d = context.shape
    aff = target @ context.reshape(k * n, d).T  # N (targets), K·N (sources)
    aff.div_(temperature).exp_()
    if mask is not None:
        aff.view(n, k, n).mul_(mask[:, None, :])
    kth = torch.topk(aff, min(topk, k * n), dim=1).values[:, -1:]  # N, 1
    aff.mul_(aff >= kth)  # values below the k-th largest zeroed, ties kept (DINO)
    aff.div_(aff.sum(1, keepdim=True))
    sources = labels.permute(0, 2, 1).reshape(k * n, -1)  # K·N, C
    return (aff @ sources).T  # C, N


def to_mask(soft: torch.Tensor, patch: int, size: tuple[int, int]) -> np.ndarray:
    """Soft labels C, h, w → ids H, W (original size): ×p bilinear, per-channel min–max, argmax, NEAREST."""
    up = F.interpolate(soft[None], scale_factor=patch, mode="bilinear", align_corners=False)[0]  # C, h·p, w·p
    top = up.amax(dim=(1, 2))
    low = up.amin(dim=(1, 2))
    norm = torch.where((top > 0)[:, None, None], (up - low[:, None, None]) / (top - low)[:, None, None], up)
    ids = torch.max(norm, dim=0).indices.to(torch.uint8).numpy()  # torch.max, as DINO (NaN-propagating)
    return np.asarray(Image.fromarray(ids).resize(size, Image.NEAREST))


class Propagator:
    """The context queue of one sequence: ``Propagator(first_feats, first_onehot, cfg).step(feats)``."""

    def __init__(self, first: torch.Tensor, first_onehot: torch.Tensor, cfg: PropagationConfig):
        h, w, d = first.shape  # first: h, w, d features; first_onehot: C, h, w
        self.grid, self.cfg = (h, w), cfg
        self.first = (F.normalize(first.reshape(h * w, d).float(), dim=1), first_onehot.reshape(len(first_onehot), -1))
        self.queue: deque = deque(maxlen=cfg.n_last_frames)
        self.mask = neighbourhood(self.grid, cfg.size_mask_neighborhood) if cfg.size_mask_neighborhood > 0 else None

    def step(self, features: torch.Tensor) -> torch.Tensor:
        """Features h, w, d of the next frame → its soft labels C, h, w (and into the queue)."""
        if tuple(features.shape[:2]) != self.grid:
            raise TaskError(f"a frame's patch grid {tuple(features.shape[:2])} differs from the first frame's "
                            f"{self.grid}: all frames of a sequence must have one size")
        target = F.normalize(features.reshape(-1, features.shape[-1]).float(), dim=1)  # N, d
        entries = [self.first, *self.queue]
        context = torch.stack([e[0] for e in entries])  # K, N, d
        labels = torch.stack([e[1] for e in entries])  # K, C, N
        soft = propagate_step(target, context, labels, self.mask, self.cfg.topk, self.cfg.temperature)
        if self.cfg.n_last_frames > 0:
            self.queue.append((target, soft))  # deque(maxlen): the oldest is dropped first
        return soft.reshape(-1, *self.grid)


# -- whole sequences ---------------------------------------------------------------------------------

@dataclass
class Timing:
    """Seconds per stage over ``frames`` frames (frame 0 included: its features are the context)."""
    frames: int = 0
    read: float = 0.0  # JPEG decoding + resizing + normalisation
    features: float = 0.0  # the ViT
    propagation: float = 0.0  # affinities, top-k, labels, upsampling, argmax, resize back
    write: float = 0.0  # PNG encoding
    per_sequence: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.read + self.features + self.propagation + self.write

    def add(self, other: "Timing", name: str) -> None:
        for key in ("frames", "read", "features", "propagation", "write"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.per_sequence[name] = {"frames": other.frames, "seconds": round(other.total, 3)}

    def summary(self) -> dict:
        total = self.total
        out = {k: round(v, 3) for k, v in asdict(self).items() if k not in ("per_sequence",)}
        out["total"] = round(total, 3)
        out["frames_per_s"] = round(self.frames / total, 4) if total > 0 else None
        out["feature_frames_per_s"] = round(self.frames / self.features, 4) if self.features > 0 else None
        out["share_features"] = round(self.features / total, 4) if total > 0 else None
        out["share_non_vit"] = round(1 - self.features / total, 4) if total > 0 else None  # target ≤ 0.25
        out["share_propagation"] = round(self.propagation / total, 4) if total > 0 else None
        out["per_sequence"] = self.per_sequence
        return out


FeatureFn = Callable[[torch.Tensor], torch.Tensor]  # B, 3, H, W (normalised) → B, h, w, d


def extractor_features(extractor) -> FeatureFn:
    return lambda images: extractor(images).patches


def normalisation(extractor, cfg: PropagationConfig) -> tuple[tuple, tuple]:
    return (DINO_MEAN, DINO_STD) if cfg.normalisation == "dino" else (tuple(extractor.mean), tuple(extractor.std))


def propagate_sequence(sequence: Sequence, features: FeatureFn, patch: int, mean, std, output: Path,
                       cfg: PropagationConfig = PropagationConfig(), batch_size: int = 4,
                       bar=None) -> Timing:
    """Propagate frame 0's mask through ``sequence``; writes ``output/<seq>/<frame>.png`` for every frame."""
    timing = Timing()
    first_mask = read_mask(sequence.annotations[0], "annotation")
    with Image.open(sequence.frames[0]) as image:
        width, height = image.size
    if first_mask.shape != (height, width):
        raise TaskError(f"annotation {sequence.annotations[0]} is {first_mask.shape[1]}×{first_mask.shape[0]} but "
                        f"frame {sequence.frames[0]} is {width}×{height}")
    size = working_size(width, height, cfg.short_side, cfg.multiple, patch)
    if size[0] < patch or size[1] < patch:
        raise TaskError(f"frames of {sequence.name!r} resize to {size[0]}×{size[1]}, smaller than one {patch} px patch")
    folder = output / sequence.name
    folder.mkdir(parents=True, exist_ok=True)
    write_mask(folder / f"{sequence.frame_ids[0]}.png", first_mask)
    propagator = None
    for start in range(0, len(sequence), batch_size):
        tic = time.perf_counter()
        paths = sequence.frames[start: start + batch_size]
        images = torch.stack([load_frame(p, size, mean, std) for p in paths])  # B, 3, H′, W′
        timing.read += time.perf_counter() - tic
        tic = time.perf_counter()
        feats = features(images).cpu()  # B, h, w, d
        timing.features += time.perf_counter() - tic
        for offset, frame_feats in enumerate(feats):
            index = start + offset
            if propagator is None:  # frame 0: the context's ground truth
                propagator = Propagator(frame_feats, first_labels(first_mask, tuple(frame_feats.shape[:2])), cfg)
                continue
            tic = time.perf_counter()
            soft = propagator.step(frame_feats)
            ids = to_mask(soft, patch, (width, height))
            timing.propagation += time.perf_counter() - tic
            tic = time.perf_counter()
            write_mask(folder / f"{sequence.frame_ids[index]}.png", ids)
            timing.write += time.perf_counter() - tic
        if bar is not None:
            bar.update(len(paths))
    timing.frames = len(sequence)
    return timing


@torch.no_grad()
def propagate_folder(sequences: list[Sequence], extractor, output: str | Path,
                     cfg: PropagationConfig = PropagationConfig(), batch_size: int = 4, progress: bool = True,
                     features: FeatureFn | None = None) -> Timing:
    """Every sequence's predictions under ``output``; returns the timing of all of them."""
    output = Path(output)
    mean, std = normalisation(extractor, cfg)
    features = features or extractor_features(extractor)
    total = Timing()
    bar = progress_bar(progress and f"propagation ({getattr(extractor, 'label', '')})",
                       sum(len(s) for s in sequences), unit="frame")
    for sequence in sequences:
        total.add(propagate_sequence(sequence, features, extractor.patch_size, mean, std, output, cfg, batch_size, bar),
                  sequence.name)
    if bar is not None:
        bar.close()
    return total


def copy_first_frame(sequences: list[Sequence], output: str | Path) -> None:
    """The trivial baseline: frame 0's ground truth as the prediction of every frame."""
    output = Path(output)
    for sequence in sequences:
        first = read_mask(sequence.annotations[0], "annotation")
        first[first == VOID] = 0
        for frame in sequence.frame_ids:
            write_mask(output / sequence.name / f"{frame}.png", first)


__all__ = ["PropagationConfig", "Propagator", "Timing", "copy_first_frame", "first_labels", "load_frame",
           "neighbourhood", "propagate_folder", "propagate_sequence", "propagate_step", "to_mask", "working_size"]
