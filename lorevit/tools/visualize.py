"""Figures: the paper's Fig. 3 attention grid (``lorevit visualize``) and a run's training curves.

Fig. 3, one row per image:

1. the image (as the model sees it: resized, centre-cropped);
2. the Black Box's last-block CLS attention over the patches (mean over heads) — the same frozen
   ViT, without prompts;
3. for LORE adapters, the KLA attention of the true class's knowledge query over the patches
   (the predicted class when the true one is unknown, e.g. for image files);
4. the adapted model's last-block CLS attention (mean over heads), prompts in place.

Each map is upsampled bilinearly to the image and overlaid on it.

    lorevit visualize --adapter runs/lore IMAGE [IMAGE ...] --output fig3.png
    lorevit visualize --adapter runs/lore --count 6 [--dataset NAME --data-root DIR] --output fig3.png

``plot_training_curves(metrics, path)`` draws a run's history (loss, train accuracy, and test
accuracy per epoch when the rows have ``val_top1``) from its metrics dict alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lorevit.errors import ConfigError
from lorevit.tools.locality import (changes_the_vit, dataset_mask, mask_share, patch_fractions, patch_layout,
                                    pointing_hit, transform_mask)
from lorevit.utils.plotting import _pyplot
from lorevit.utils.plotting import _save

CELL_INCHES = 2.0  # one grid cell


# ----------------------------------------------------------------------------- attention maps


def patch_grid(backbone) -> tuple[int, int]:
    grid = getattr(backbone.vit.patch_embed, "grid_size", None)
    if grid is not None:
        return int(grid[0]), int(grid[1])
    side = int(math.isqrt(backbone.num_patches))
    return side, backbone.num_patches // side


def _to_grid(values: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, M) patch weights → (B, h, w), each map scaled to [0, 1]."""
    maps = values.reshape(values.shape[0], *grid).float()
    low = maps.flatten(1).min(1).values[:, None, None]
    high = maps.flatten(1).max(1).values[:, None, None]
    return (maps - low) / (high - low).clamp_min(1e-12)


@torch.no_grad()
def attention_maps(model, images: torch.Tensor, labels: torch.Tensor | None = None,
                   knowledge_features: torch.Tensor | None = None, blackbox=None) -> dict:
    """The maps of Fig. 3 for a batch of images: ``blackbox``, ``kla`` (LORE only, else None),
    ``model`` as (B, h, w) in [0, 1], plus ``predicted``, the ``kla_classes`` used and ``raw``: the same
    maps before scaling, (B, M) (what :mod:`lorevit.tools.locality` scores).

    ``knowledge_features`` (C, d_q) are set on a LORE model that has none yet (adapters load
    without them); by default they are computed from the adapter's knowledge encoder. ``blackbox``: the
    frozen ViT for the Black Box column (default the model's own, right unless the method changed it).
    """
    model.eval()
    backbone = model.backbone
    grid = patch_grid(backbone)
    e0 = backbone.embed_patches(images)
    plain_vit = backbone if blackbox is None else blackbox
    plain = plain_vit.forward_tokens(plain_vit.embed_patches(images), None, return_attention=True).attention  # B, heads, M
    out = model(images, return_attention=True)
    predicted = out.logits.argmax(-1)
    raw = {"blackbox": plain.mean(1), "model": out.tokens.attention.mean(1)}  # B, M
    result = {"blackbox": _to_grid(raw["blackbox"], grid), "model": _to_grid(raw["model"], grid),
              "predicted": predicted, "kla": None, "kla_classes": None, "raw": raw}
    method = model.method
    if getattr(method, "uses_knowledge", False) and hasattr(method, "prototypes"):
        if knowledge_features is not None:
            method.set_knowledge(knowledge_features)
        elif method.class_queries.shape[0] == 0:
            raise ConfigError("the LORE model has no knowledge features: pass knowledge_features (C, d_q)")
        classes = labels if labels is not None else predicted
        _, weights = method.prototypes(method.lin(e0), classes[:, None])  # Ê → B, 1, M
        result["kla"], result["kla_classes"] = _to_grid(weights[:, 0], grid), classes
        raw["kla"] = weights[:, 0]
    return result


def display_images(images: torch.Tensor, data_config: dict) -> np.ndarray:
    """Normalised tensors (B, 3, H, W) → uint8-range floats (B, H, W, 3) in [0, 1] for display."""
    mean = torch.tensor(data_config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(data_config["std"]).view(1, 3, 1, 1)
    return (images.cpu() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(B, h, w) maps → (B, H, W) numpy, bilinear: each panel's map at its picture's size."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].cpu().numpy()


def plot_attention_grid(pictures: np.ndarray, maps: dict[str, torch.Tensor | None], path: str | Path,
                        row_titles: Sequence[str] = (), column_titles: dict[str, str] | None = None,
                        alpha: float = 0.55) -> Path:
    """A rows × columns PNG: the image, then each map overlaid on it; ``CELL_INCHES`` per cell."""
    plt = _pyplot()
    columns = [(key, m) for key, m in maps.items() if m is not None]
    titles = {"blackbox": "Black Box attention", "kla": "KLA attention", "model": "LORE attention"}
    titles.update(column_titles or {})
    rows, cols = pictures.shape[0], 1 + len(columns)
    size = pictures.shape[1:3]
    upsampled = {key: upsample_maps(m, size) for key, m in columns}
    fig, axes = plt.subplots(rows, cols, figsize=(cols * CELL_INCHES, rows * CELL_INCHES), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(pictures[r])
        axes[r, 0].set_title(row_titles[r] if r < len(row_titles) else "image", fontsize=6)
        for c, (key, _) in enumerate(columns, 1):
            axes[r, c].imshow(pictures[r])
            axes[r, c].imshow(upsampled[key][r], cmap="jet", alpha=alpha, vmin=0, vmax=1)
            title = titles.get(key, key)
            axes[r, c].set_title(title[r] if isinstance(title, list) else title, fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.12 / rows, wspace=0.04, hspace=0.14)
    return _save(fig, path)


@dataclass
class Fig3Setup:
    """What Fig. 3 needs from an adapter, loaded once: the model and its run's config, the eval transform, the
    knowledge features (LORE family, else None) and a clean Black Box ViT when the method changes its own (else None)."""

    model: "torch.nn.Module"
    cfg: "object"
    transform: "object"
    knowledge: torch.Tensor | None
    blackbox: "torch.nn.Module | None"

    def maps(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        """:func:`attention_maps` of a normalised batch (KLA queried with ``labels``, else the predicted classes)."""
        return attention_maps(self.model, images, labels, self.knowledge, self.blackbox)


def fig3_setup(adapter: str | Path, weights: str | None = "unset", strict: bool = False) -> Fig3Setup:
    """Load an adapter for Fig. 3 (``weights``/``strict``: as :func:`lorevit.factory.load_adapter`'s)."""
    from lorevit.data.transforms import image_transforms
    from lorevit.factory import load_adapter

    model, cfg = load_adapter(adapter, weights=weights, strict=strict)
    transform = image_transforms(model.backbone.data_config, cfg.img_size, train=False, preset=cfg.transforms)
    knowledge = None
    if getattr(model.method, "uses_knowledge", False):
        from lorevit.knowledge import class_features

        knowledge = class_features(cfg.knowledge, model.classnames)
    blackbox = None
    if changes_the_vit(model):  # its own ViT holds the method's changes: the Black Box column needs a clean one
        from lorevit.backbone import create_backbone
        from lorevit.factory import resolve_weights

        blackbox = create_backbone(cfg.backbone, resolve_weights(cfg, weights, adapter), cfg.img_size,
                                   **cfg.backbone_kwargs).eval()
    return Fig3Setup(model.eval(), cfg, transform, knowledge, blackbox)


def method_title(method: str) -> str:
    """How figures name a method: "LORE" for lore, "LORE w/o L_kp" for lore-no-kp, else its registry name."""
    return {"lore": "LORE", "lore-no-kp": "LORE w/o L_kp"}.get(method, method)


def overlay_image(picture: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """One panel of Fig. 3 as pixels: ``heat`` (H, W) in [0, 1] through the jet colour map, blended with weight
    ``alpha`` over ``picture`` (H, W, 3) in [0, 1] — what :func:`plot_attention_grid` draws — as uint8 (H, W, 3)."""
    from matplotlib import colormaps

    colours = colormaps["jet"](np.clip(heat, 0, 1))[..., :3]
    return np.round(255 * ((1 - alpha) * picture + alpha * colours)).clip(0, 255).astype(np.uint8)


def visualize(adapter: str | Path, output: str | Path, image_paths: Sequence[str] = (), dataset: str | None = None,
              data_root: str | None = None, count: int = 4, seed: int = 0, split: str = "test",
              use_predicted: bool = False, weights: str | None = "unset", strict: bool = False) -> dict:
    """Fig. 3 for an adapter and either image files or ``count`` images of a dataset split
    (``weights``/``strict``: as :func:`lorevit.factory.load_adapter`'s)."""
    from PIL import Image, UnidentifiedImageError

    setup = fig3_setup(adapter, weights, strict)
    model, cfg, transform = setup.model, setup.cfg, setup.transform
    labels, masks = None, []
    if image_paths:
        tensors, names = [], []
        for path in image_paths:
            try:
                with Image.open(path) as image:
                    tensors.append(transform(image.convert("RGB")))
            except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
                raise ConfigError(f"cannot read image {path}: {err}") from err
            names.append(Path(path).name)
    else:
        from lorevit.data import subset_indices

        if count < 1:
            raise ConfigError("--count must be a positive integer")
        data = adapter_dataset(model, cfg, dataset, data_root, split, transform)
        indices = subset_indices(len(data), min(count, len(data)), seed)
        items = [data[i] for i in indices]
        masks = [dataset_mask(data, i) for i in indices]  # None where the dataset has no mask
        tensors = [image for image, _ in items]
        labels = torch.tensor([label for _, label in items])
        names = [f"{split} #{i}" for i in indices]
    images = torch.stack(tensors)
    maps = setup.maps(images, None if use_predicted else labels)
    scores = _row_scores(maps["raw"], masks, model.backbone, images, cfg.img_size)
    predicted = maps["predicted"].tolist()
    row_titles = []
    for r, name in enumerate(names):
        text = f"{name}: pred {model.classnames[predicted[r]]}"
        if labels is not None:
            text += f", true {model.classnames[int(labels[r])]}"
        row_titles.append(text)
    column_titles = {"model": f"{method_title(cfg.method)} attention"}
    if maps["kla"] is not None:
        which = "pred" if labels is None or use_predicted else "true"
        column_titles["kla"] = [f"KLA ({which}: {model.classnames[c]})" for c in maps["kla_classes"].tolist()]
    for key, per_row in scores.items():  # the same two numbers as `lorevit bench locality`, per row
        base = column_titles.get(key, {"blackbox": "Black Box attention", "kla": "KLA attention"}.get(key, key))
        column_titles[key] = [f"{base[r] if isinstance(base, list) else base}\n" +
                              ("" if s is None else f"in mask {s[0]:.2f} · {'hit' if s[1] else 'miss'}")
                              for r, s in enumerate(per_row)]
    pictures = display_images(images, model.backbone.data_config)
    grid = {"blackbox": maps["blackbox"], "kla": maps["kla"], "model": maps["model"]}
    path = plot_attention_grid(pictures, grid, output, row_titles, column_titles)
    return {"path": str(path), "rows": len(names), "columns": 1 + sum(m is not None for m in grid.values()),
            "predicted": [model.classnames[p] for p in predicted],
            "true": None if labels is None else [model.classnames[int(t)] for t in labels],
            "locality": {key: [None if s is None else {"share": s[0], "pointing": bool(s[1])} for s in per_row]
                         for key, per_row in scores.items()}}


def _row_scores(raw: dict, masks: list, backbone, images: torch.Tensor, img_size: int) -> dict:
    """Per map and row: (share in mask, pointing hit) where the row's image has a mask, else None."""
    if not any(m is not None for m in masks):
        return {}
    grid, patch = patch_layout(backbone, images)
    scores = {}
    for key, attention in raw.items():
        per_row = []
        for r, mask in enumerate(masks):
            if mask is None:
                per_row.append(None)
                continue
            f = patch_fractions(transform_mask(mask, img_size), grid, patch, f"mask of row {r + 1}")[None]
            a = attention[r : r + 1]
            per_row.append((mask_share(a, f).item(), pointing_hit(a, f).item() > 0))
        scores[key] = per_row
    return scores


# ----------------------------------------------------------------------------- training curves


# ----------------------------------------------------------------------------- confusion matrix


# ----------------------------------------------------------------------------- CLI


def adapter_dataset(model, cfg, dataset: str | None, data_root: str | None, split: str, transform):
    """The images to look at: ``dataset`` (default: the adapter's own, from its own root), refused when its classes
    are not the adapter's."""
    from lorevit.data import build_dataset

    name = dataset or cfg.dataset
    root = data_root if data_root is not None else (cfg.data_root if dataset in (None, cfg.dataset) else None)
    data = build_dataset(name, split, root=root, transform=transform)
    if list(data.classnames) != model.classnames:
        raise ConfigError(f"dataset {name!r} has classes {list(data.classnames)[:3]}..., the adapter was trained "
                          f"on {model.classnames[:3]}...; use images of the adapter's own classes")
    return data
