"""Locality: how much of a ViT's attention lies on the object — the paper's Fig. 3 as a number (issue 23).

LORE's premise (paper §1, Fig. 3, "locality vanishing") is that a supervised ViT's high-attention tokens
scatter over the background of downstream images and that LORE's prompts pull them back onto the object.
For an image with an object mask this module measures, for one attention map over the patches:

- **share in mask** (:func:`mask_share`): the attention mass inside the object, Σ_m a_m·f_m / Σ_m a_m, where
  a_m is the attention on patch m and f_m ∈ [0, 1] the share of patch m's pixels that lie in the object.
  The CLS token's last-block attention also goes to itself, to register tokens and to prompts; only the
  mass on the patches is compared, renormalised over them (so B-B and a prompted model are comparable);
- **pointing game** (:func:`pointing_hit`): whether the attention's argmax patch lies in the object
  (f_m ≥ ½, the patch is mostly object; the first argmax on ties);
- their **chance levels** (:func:`chance_levels`): a map that is uniform over the patches scores the mask's
  own area share Σ_m f_m / M; a patch drawn at random hits with the share of mostly-object patches.

**Masks at two resolutions** (:func:`patch_fractions`). A mask of the patch grid's shape (h, w) is taken as
f itself (values in [0, 1]). A pixel mask (H, W) is of the image the model sees (after the transform,
:func:`transform_mask` brings a mask of the original image there: the same resize and centre crop, bilinear
on the 0/1 mask, so a pixel on the border counts partly); the ViT's patch embedding reads the top-left
h·p × w·p pixels (sizes floored to the patch), and f_m is the mean of patch m's p × p pixels.
Any other shape is an error.

:func:`bootstrap_interval` gives a mean with its percentile-bootstrap 95 % interval over images, seeded;
the paired difference adapter − B-B is the same function on per-image differences.

The maps come from :meth:`lorevit.backbone.PromptedViT.forward_tokens` (``return_attention``): the CLS row of
the last block's softmax attention, mean over heads, recomputed from the block's own timm modules only when
asked (normal runs keep timm's fused attention); tests check it equals timm's non-fused ``Attention``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lorevit.errors import UserError

POINTING_FRACTION = 0.5  # a patch "is object" for the pointing game when at least half its pixels are
FASHION_MNIST_THRESHOLD = 25  # uint8 pixel value: > 25 (≈ 0.1) is the garment (the background is 0, faint noise)
MASKS_FOLDER = "masks"  # <dataset root>/masks/<image path relative to the root, as .png>


class LocalityError(UserError, ValueError):
    """A mask or a model the locality score cannot use; the message says which and what to do."""


# ----------------------------------------------------------------------------- masks → patch fractions


def patch_fractions(mask: torch.Tensor | np.ndarray, grid: tuple[int, int], patch: tuple[int, int],
                    name: str = "mask") -> torch.Tensor:
    """The share f (h·w,) of each patch inside the object, from a mask at patch (h, w) or pixel resolution.

    A pixel mask must cover the grid (H ≥ h·p_h, W ≥ w·p_w): its top-left h·p_h × w·p_w pixels are the ones the
    patch embedding reads (timm floors the sizes); each patch's value is the mean of its pixels.
    """
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).float()
    if m.dim() != 2:
        raise LocalityError(f"{name} has shape {tuple(m.shape)}: a mask is 2-D, (H, W) of the image or "
                            f"{grid[0]}×{grid[1]} patches")
    h, w = grid
    ph, pw = patch
    if tuple(m.shape) == (h, w):
        f = m
    elif m.shape[0] >= h * ph and m.shape[1] >= w * pw and m.shape[0] < (h + 1) * ph and m.shape[1] < (w + 1) * pw:
        f = F.avg_pool2d(m[None, None, : h * ph, : w * pw], (ph, pw))[0, 0]  # h, w
    else:
        raise LocalityError(f"{name} is {m.shape[1]}×{m.shape[0]} (W×H); the model sees {w * pw}×{h * ph} px in "
                            f"{w}×{h} patches: give a mask of the image's own size (or of the patch grid)")
    if f.min() < 0 or f.max() > 1:
        raise LocalityError(f"{name} has values outside [0, 1]; give 0/1 (or 0/255 PNG) masks")
    if f.sum() <= 0:
        raise LocalityError(f"{name} is empty (no pixel of the object inside the {w * pw}×{h * ph} px the model "
                            "sees): the share in mask is undefined; drop the image or fix its mask")
    return f.flatten()  # M


def transform_mask(mask: np.ndarray, img_size: int) -> torch.Tensor:
    """A 0/1 mask (H, W) of an original image → the pixels of the eval transform (resize the short side to
    ``img_size``, centre crop ``img_size``², as :func:`lorevit.data.transforms.image_transforms`), as values in
    [0, 1]: bilinear (PIL, antialiased) on the mask, so border pixels count by the share they cover."""
    from PIL import Image
    from torchvision.transforms import functional as TF
    from torchvision.transforms import InterpolationMode

    image = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255)
    image = TF.center_crop(TF.resize(image, img_size, interpolation=InterpolationMode.BILINEAR), img_size)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)  # img_size, img_size


def read_mask_png(path: Path) -> np.ndarray:
    """A mask PNG → bool (H, W): nonzero is object; in palette PNGs (DAVIS/VOC ids) 255 is void → background."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            palette = image.mode == "P"
            values = np.asarray(image)
    except (OSError, UnidentifiedImageError) as err:
        raise LocalityError(f"cannot read mask {path}: {err}") from err
    if values.ndim == 3:
        values = values[..., :3].max(-1)
    return (values > 0) & (values != 255) if palette else values > 0


def mask_path(root: Path, image: str) -> Path:
    """``<root>/masks/<image relative to root>.png``, refused when the image is not under root (no '..')."""
    try:
        relative = Path(image).resolve().relative_to(root.resolve())
    except ValueError as err:
        raise LocalityError(f"image {image} is not under the dataset root {root}: its mask cannot be found in "
                            f"{root / MASKS_FOLDER}") from err
    return root / MASKS_FOLDER / relative.with_suffix(".png")


def dataset_mask(data, i: int) -> np.ndarray | None:
    """The object mask (H, W bool) of image ``i`` of a :class:`lorevit.data.LabeledDataset`, or None when it has
    none: Fashion-MNIST's pixels above :data:`FASHION_MNIST_THRESHOLD`; for image files, the PNG under the
    root's ``masks/`` folder (checked to be the image's own size)."""
    from pathlib import Path

    if data.name == "fashion-mnist" and data.in_memory:
        return np.asarray(data.items[i]) > FASHION_MNIST_THRESHOLD
    if data.in_memory or data.root is None or not (Path(data.root) / MASKS_FOLDER).is_dir():
        return None
    path = mask_path(Path(data.root), data.items[i])
    return read_mask_png(path) if path.is_file() else None


# ----------------------------------------------------------------------------- the scores


def mask_share(attention: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Share of the attention mass on the object: Σ a·f / Σ a per image.  attention, fractions: B, M → B."""
    a = attention.float()
    return (a * fractions).sum(-1) / a.sum(-1).clamp_min(1e-12)


def pointing_hit(attention: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Pointing game: is the argmax patch (the first on ties) mostly object (f ≥ ½)?  B, M → B (0./1.)."""
    top = attention.float().argmax(-1, keepdim=True)  # B, 1
    return (fractions.gather(-1, top)[..., 0] >= POINTING_FRACTION).float()


def chance_levels(fractions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(share, pointing) of chance: a uniform map's share is the mask's area share mean(f); a random patch
    hits with the share of patches that are mostly object.  B, M → B, B."""
    return fractions.mean(-1), (fractions >= POINTING_FRACTION).float().mean(-1)


@dataclass
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}

    def text(self, signed: bool = False) -> str:
        fmt = "{:+.3f}" if signed else "{:.3f}"
        return f"{fmt.format(self.mean)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


def bootstrap_interval(values: Sequence[float] | np.ndarray, seed: int = 0, resamples: int = 2000,
                       level: float = 0.95) -> Interval:
    """The mean of per-image values and its percentile-bootstrap interval (``resamples`` draws of the images
    with replacement, numpy's seeded generator): the same seed gives the same interval."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise LocalityError("no image to score: the selection is empty")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(x.mean()), float(low), float(high), int(x.size))


# ----------------------------------------------------------------------------- maps of a model


def has_cls_attention(model) -> bool:
    """Whether the model's class decision reads the ViT's CLS token through a last block whose attention the
    Black Box can give (timm's ``Attention`` with a ``qkv``), and the method says so (``Method.cls_attention``)."""
    if not getattr(model.method, "cls_attention", True):
        return False
    attn = getattr(model.backbone.vit.blocks[-1], "attn", None)
    return attn is not None and hasattr(attn, "qkv") and hasattr(attn, "num_heads")


def check_cls_attention(model, label: str) -> None:
    if not has_cls_attention(model):
        raise LocalityError(f"{label}: method {model.method.name!r} has no last-block CLS attention to score "
                            "(its image side does not go through the ViT's CLS token); score an adapter of a "
                            "method that does (lore, vpt-*, linear, lora, ...)")


def changes_the_vit(model) -> bool:
    """Whether the method changes the frozen ViT from inside (kind 2: inserted modules, unfrozen weights), so the
    Black Box's own maps need a clean copy of the ViT."""
    if len(getattr(model.method, "inserted", ())) > 0:
        return True
    return any(p.requires_grad for p in model.backbone.parameters())


@torch.no_grad()
def cls_attention_maps(backbone, images: torch.Tensor, prompts_of=None) -> torch.Tensor:
    """Last-block CLS attention over the patches, mean over heads (B, M); ``prompts_of(e0)`` gives prompts."""
    e0 = backbone.embed_patches(images)  # B, M, d
    prompting = None if prompts_of is None else prompts_of(e0)
    return backbone.forward_tokens(e0, None if prompting is None else prompting.prompts, return_attention=True,
                                   grid=backbone.grid_of(images) if backbone.dynamic_size else None,
                                   appended=None if prompting is None else prompting.appended).attention.mean(1)


def patch_layout(backbone, images: torch.Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, patch size) the backbone reads ``images`` (B, 3, H, W) in."""
    ph, pw = backbone.patch_size
    return (images.shape[-2] // ph, images.shape[-1] // pw), (ph, pw)


def image_scores(attention: torch.Tensor, fractions: torch.Tensor) -> dict[str, list[float]]:
    """Per image: share in mask and pointing hit of a map (B, M) against f (B, M)."""
    return {"share": mask_share(attention, fractions).tolist(), "pointing": pointing_hit(attention, fractions).tolist()}


def square_grid(m: int) -> tuple[int, int]:
    side = math.isqrt(m)
    return side, m // side
