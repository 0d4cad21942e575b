"""Tiny DAVIS-2017 trees written in the real on-disk format, and a feature function with a known answer."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lorevit.tasks.video.davis import write_mask

H, W = 64, 128  # short side 64: with --short-side 64 frames keep their size
PATCH = 8


def write_davis(root: Path, sequences: dict[str, tuple[list[np.ndarray], list[np.ndarray]]],
                split: str = "val", quality: int = 95) -> Path:
    """root/DAVIS with JPEGImages/480p, Annotations/480p and ImageSets/2017/<split>.txt."""
    davis = root / "DAVIS"
    for name, (frames, masks) in sequences.items():
        (davis / "JPEGImages" / "480p" / name).mkdir(parents=True, exist_ok=True)
        for t, (frame, mask) in enumerate(zip(frames, masks)):
            Image.fromarray(frame).save(davis / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", quality=quality)
            write_mask(davis / "Annotations" / "480p" / name / f"{t:05d}.png", mask)
    (davis / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (davis / "ImageSets" / "2017" / f"{split}.txt").write_text("".join(f"{n}\n" for n in sequences))
    return davis


def moving_squares(n: int = 6, seed: int = 0, objects: int = 2) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Textured squares moving right by 4 px a frame over a smooth background; exact masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    background = np.stack([xx * 2, yy * 3, 255 - xx * 2], -1).clip(0, 255).astype(np.uint8)
    textures = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(objects)]
    frames, masks = [], []
    for t in range(n):
        frame, mask = background.copy(), np.zeros((H, W), np.uint8)
        for i, texture in enumerate(textures):
            y, x = 8 + 28 * i, 8 + 4 * t + 40 * i
            frame[y: y + 16, x: x + 16] = texture
            mask[y: y + 16, x: x + 16] = i + 1
        frames.append(frame)
        masks.append(mask)
    return frames, masks


def patch_pixels(images: torch.Tensor, patch: int = PATCH) -> torch.Tensor:
    """A feature function with a known answer: each patch's own pixels (B, 3, H, W → B, h, w, 3p²); like a ViT, the
    grid is ⌊H/p⌋ × ⌊W/p⌋ (pixels beyond it are not seen)."""
    b, _, h, w = images.shape
    h, w = h // patch, w // patch
    x = images[:, :, : h * patch, : w * patch].unfold(2, patch, patch).unfold(3, patch, patch)  # B, 3, h, w, p, p
    return x.permute(0, 2, 3, 1, 4, 5).reshape(b, h, w, -1)


class PatchPixels:
    """Stands in for a FeatureExtractor (patch size, normalisation, label) around :func:`patch_pixels`."""
    patch_size = PATCH
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)
    label = "patch-pixels"
    dim = 3 * PATCH * PATCH
    provenance = {"source": "test", "backbone": "patch-pixels"}
    device = torch.device("cpu")

    def __call__(self, images):
        from lorevit.tasks.features import Features

        patches = patch_pixels(images)
        return Features(patches.mean((1, 2)), patches)
