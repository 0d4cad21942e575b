"""``lorevit bench locality``: does an adapter keep its attention on the object? (paper Fig. 3 as a number)

For images with an object mask, the last-block CLS attention (mean over heads) of the Black Box (the
frozen ViT, no prompts, no inserted modules) and of each adapter, and for LORE KLA's attention of the true
and of the predicted class's knowledge query, scored by :mod:`lorevit.tools.locality`: the share of the
attention mass inside the mask and the pointing-game hit rate, each as mean with a 95 % bootstrap interval
over images, the chance level (the mask's area share) beside them, and the paired difference adapter − B-B.

Where the masks come from (``--dataset``):

- ``fashion-mnist``: the object is every pixel above :data:`FASHION_MNIST_THRESHOLD` (uint8; the background
  is 0 with faint noise);
- ``davis`` (``--data-root`` = a DAVIS-2017 folder) and ``video-standins`` (the moving cut-outs of
  :mod:`lorevit.tasks.standins.video`, built under the stand-ins folder): per frame, every annotated object
  (ids 1–254; 255 is void, counted as background); frames with no object are skipped and counted;
- any other dataset lorevit reads from image files (``imagefolder``, ``csv``, ...): a ``masks/`` folder in the
  dataset's root mirrors the images' paths, ``<root>/masks/<path of the image relative to root, .png>``,
  e.g. ``test/cat/001.jpg`` → ``masks/test/cat/001.png``, the image's own size, nonzero = object.

SPair-71k's boxes are not read yet (see docs/locality.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from lorevit.errors import ConfigError
from lorevit.tools.locality import (FASHION_MNIST_THRESHOLD, MASKS_FOLDER, LocalityError, bootstrap_interval,
                                    chance_levels, changes_the_vit, check_cls_attention, cls_attention_maps,
                                    image_scores, mask_path, patch_fractions, patch_layout, read_mask_png,
                                    transform_mask)
from lorevit.utils.io import write_json, write_text

VIDEO_DATASETS = ("davis", "video-standins")
BB = "B-B"


@dataclass
class LocalitySettings:
    adapters: list[str]
    dataset: str | None = None  # None: the first adapter's dataset
    data_root: str | None = None
    split: str = "test"
    limit: int | None = 500  # images (frames), a seeded subset; None: all
    seed: int = 0
    batch_size: int = 50
    resamples: int = 2000  # bootstrap draws
    device: str = "cpu"
    standins_root: str | None = None  # where video-standins are built (default: lorevit's stand-ins folder)
    weights: str | None = "unset"  # as load_adapter's
    strict: bool = False


@dataclass
class Item:
    image: "object"  # PIL RGB image, original size
    mask: np.ndarray  # H, W bool, the image's own size
    label: int | None  # the true class, when the dataset has the adapter's classes
    name: str


# ----------------------------------------------------------------------------- mask sources


def _fashion_mnist(data, indices, same_classes: bool) -> Iterator[Item]:  # the object: pixels above the threshold
    for i in indices:
        yield Item(data.load_image(i), np.asarray(data.items[i]) > FASHION_MNIST_THRESHOLD,
                   data.targets[i] if same_classes else None, data.describe(i))


def _masked_files(data, indices, same_classes: bool) -> Iterator[Item]:
    root = Path(data.root)
    if not (root / MASKS_FOLDER).is_dir():
        raise LocalityError(f"dataset {data.name!r} under {root} has no object masks: put a {MASKS_FOLDER}/ folder "
                            f"in {root} that mirrors the images' paths (test/<class>/x.jpg → "
                            f"{MASKS_FOLDER}/test/<class>/x.png), or use --dataset fashion-mnist / davis / video-standins")
    for i in indices:
        path = mask_path(root, data.items[i])
        if not path.is_file():
            raise LocalityError(f"mask {path} of image {data.items[i]} is missing; every scored image needs one "
                                f"(or lower --limit is no help: give each image of the split a mask)")
        image = data.load_image(i)
        mask = read_mask_png(path)
        if mask.shape != (image.size[1], image.size[0]):
            raise LocalityError(f"mask {path} is {mask.shape[1]}×{mask.shape[0]}, its image {data.items[i]} is "
                                f"{image.size[0]}×{image.size[1]}: a mask has its image's own size")
        yield Item(image, mask, data.targets[i] if same_classes else None, str(data.items[i]))


def _davis_frames(root: Path, limit: int | None, seed: int, say) -> tuple[list[tuple[Path, Path, str]], int]:
    from lorevit.tasks.errors import TaskError
    from lorevit.tasks.video.davis import Davis, read_mask
    from lorevit.data import subset_indices

    try:
        frames = [(f, a, f"{s.name}/{f.stem}") for s in Davis(root, need_frames=True).sequences("val")
                  for f, a in zip(s.frames, s.annotations) if a.is_file()]
    except TaskError as err:
        raise LocalityError(str(err)) from err
    kept, empty = [], 0
    for frame in frames:  # frames where every object is out of view have no mask to score
        ids = read_mask(frame[1])
        if ((ids > 0) & (ids != 255)).any():
            kept.append(frame)
        else:
            empty += 1
    chosen = [kept[i] for i in subset_indices(len(kept), limit, seed)]
    if empty:
        say(f"[locality] {empty} frame(s) without any object skipped")
    return chosen, empty


def _video(frames) -> Iterator[Item]:
    from PIL import Image

    from lorevit.tasks.video.davis import read_mask

    for frame, annotation, name in frames:
        with Image.open(frame) as image:
            rgb = image.convert("RGB")
        ids = read_mask(annotation)
        mask = (ids > 0) & (ids != 255)
        if mask.shape != (rgb.size[1], rgb.size[0]):
            raise LocalityError(f"annotation {annotation} is {mask.shape[1]}×{mask.shape[0]}, its frame {frame} is "
                                f"{rgb.size[0]}×{rgb.size[1]}")
        yield Item(rgb, mask, None, name)


def masked_items(settings: LocalitySettings, dataset: str, classnames: list[str], data_root: str | None,
                 say: Callable[[str], None]) -> tuple[Iterator[Item], int, dict]:
    """The scored images with their masks (lazily), how many, and where the masks came from."""
    from lorevit.data import build_dataset, subset_indices
    from lorevit.data.registry import get_spec

    if dataset in VIDEO_DATASETS:
        if dataset == "video-standins":
            from lorevit.tasks.standins.video import build
            from lorevit.utils.paths import sub_dir

            base = Path(settings.standins_root).expanduser() if settings.standins_root else sub_dir("standins")
            build(base / "video", say=say)
            root = base / "video" / "DAVIS"
        else:
            if not data_root:
                raise ConfigError("--dataset davis needs --data-root, the DAVIS-2017 folder (JPEGImages/480p/, "
                                  "Annotations/480p/, ImageSets/2017/val.txt)")
            root = Path(data_root).expanduser()
        frames, empty = _davis_frames(root, settings.limit, settings.seed, say)
        if not frames:
            raise LocalityError(f"{root}: no annotated frame holds an object")
        return _video(frames), len(frames), {"masks": "DAVIS annotations (ids 1-254, per frame)", "root": str(root),
                                             "skipped_empty_frames": empty}
    name = get_spec(dataset).name
    data = build_dataset(name, settings.split, root=data_root)
    same = list(data.classnames) == list(classnames)
    # the training run's own test subset for the same size and seed (`test_subset`, `test_seed`): unstratified
    indices = subset_indices(len(data), settings.limit, settings.seed)
    if name == "fashion-mnist":
        return (_fashion_mnist(data, indices, same), len(indices),
                {"masks": f"pixels > {FASHION_MNIST_THRESHOLD} (uint8)", "split": settings.split})
    if data.in_memory:
        raise LocalityError(f"dataset {name!r} is read into memory (no image files), so it has no masks/ folder; "
                            "use an imagefolder or csv dataset with masks, fashion-mnist, davis or video-standins")
    return (_masked_files(data, indices, same), len(indices),
            {"masks": f"{MASKS_FOLDER}/ folder (nonzero = object)", "root": str(data.root), "split": settings.split})


# ----------------------------------------------------------------------------- the run


def _label(cfg, model, taken: set[str], path: str) -> str:
    label = cfg.method
    if getattr(model.method, "has_white_box", False) and cfg.white_box != "paper":
        label += f" [{cfg.white_box}]"
    if label in taken:
        label += f" ({Path(path).name})"
    taken.add(label)
    return label


def _backbone_key(cfg) -> tuple:
    return cfg.backbone, cfg.img_size, repr(sorted(cfg.backbone_kwargs.items()))


def _batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _summary(values: dict[str, list[float]], seed: int, resamples: int) -> dict:
    return {k: bootstrap_interval(v, seed, resamples).as_dict() for k, v in values.items()}


@torch.no_grad()
def run_locality(settings: LocalitySettings, output: str | Path, progress: Callable[[str], None] = print) -> dict:
    """Score B-B and every adapter on the same masked images; write locality.{json,md,png} into ``output``."""
    from lorevit.data.transforms import image_transforms
    from lorevit.backbone import create_backbone
    from lorevit.factory import load_adapter, resolve_weights
    from lorevit.knowledge import class_features
    from lorevit.utils.device import resolve_device

    if not settings.adapters:
        raise ConfigError("bench locality needs --adapter DIR (repeatable)")
    if settings.limit is not None and settings.limit < 1:
        raise ConfigError("--limit must be a positive integer")
    if settings.batch_size < 1 or settings.resamples < 1:
        raise ConfigError("--batch-size and --resamples must be positive integers")
    device = resolve_device(settings.device)
    models, labels, taken = [], [], set()
    for path in settings.adapters:
        model, cfg = load_adapter(path, weights=settings.weights, strict=settings.strict)
        label = _label(cfg, model, taken, path)
        check_cls_attention(model, f"adapter {path}")
        models.append((label, model.to(device).eval(), cfg, path))
        labels.append(label)
    first_label, first, first_cfg, first_path = models[0]
    for label, model, cfg, path in models[1:]:
        if _backbone_key(cfg) != _backbone_key(first_cfg) or list(model.classnames) != list(first.classnames):
            raise ConfigError(f"adapter {path} differs from {first_path} in backbone, image size or classes: score "
                              "adapters of one backbone, size and class list together (one B-B, one chance level)")
    if any(changes_the_vit(m) for _, m, _, _ in models):  # the kind-2 adapters changed their own ViT: a clean one
        blackbox = create_backbone(first_cfg.backbone, resolve_weights(first_cfg, settings.weights, first_path),
                                   first_cfg.img_size, **first_cfg.backbone_kwargs).to(device).eval()
    else:
        blackbox = first.backbone
    for label, model, cfg, _ in models:
        if getattr(model.method, "uses_knowledge", False) and hasattr(model.method, "prototypes"):
            model.method.set_knowledge(class_features(cfg.knowledge, model.classnames).to(device))
    dataset = settings.dataset or first_cfg.dataset
    data_root = settings.data_root if settings.data_root is not None else (
        first_cfg.data_root if dataset == first_cfg.dataset else None)
    items, count, source = masked_items(settings, dataset, list(first.classnames), data_root, progress)
    transform = image_transforms(blackbox.data_config, first_cfg.img_size, train=False)
    progress(f"[locality] {count} images of {dataset} ({source['masks']}); rows: {BB}, {', '.join(labels)}")

    per_image: dict[str, dict[str, list[float]]] = {BB: {"share": [], "pointing": []}}
    chance = {"share": [], "pointing": []}
    correct: dict[str, list[float]] = {label: [] for label in labels}
    names: list[str] = []
    done = 0
    for batch in _batches(items, settings.batch_size):
        images = torch.stack([transform(item.image) for item in batch]).to(device)  # B, 3, S, S
        grid, patch = patch_layout(blackbox, images)
        fractions = torch.stack([patch_fractions(transform_mask(item.mask, first_cfg.img_size), grid, patch,
                                                 f"mask of {item.name}") for item in batch]).to(device)  # B, M
        truth = [item.label for item in batch]
        known = all(t is not None for t in truth)
        names += [item.name for item in batch]
        share, pointing = chance_levels(fractions)
        chance["share"] += share.tolist()
        chance["pointing"] += pointing.tolist()
        for key, values in image_scores(cls_attention_maps(blackbox, images), fractions).items():
            per_image[BB][key] += values
        for label, model, cfg, _ in models:
            out = model(images, return_attention=True)
            predicted = out.logits.argmax(-1)
            maps = {label: out.tokens.attention.mean(1)}  # B, M
            method = model.method
            if getattr(method, "uses_knowledge", False) and hasattr(method, "prototypes"):
                e_hat = method.lin(model.backbone.embed_patches(images))  # Ê: B, M, d
                if known:
                    maps[f"{label} KLA (true class)"] = method.prototypes(
                        e_hat, torch.tensor(truth, device=device)[:, None])[1][:, 0]
                maps[f"{label} KLA (predicted class)"] = method.prototypes(e_hat, predicted[:, None])[1][:, 0]
            for row, attention in maps.items():
                scores = image_scores(attention, fractions)
                slot = per_image.setdefault(row, {"share": [], "pointing": []})
                for key, values in scores.items():
                    slot[key] += values
            if known:
                correct[label] += (predicted.cpu() == torch.tensor(truth)).float().tolist()
        done += len(batch)
        progress(f"[locality] {done}/{count}")
    report = _report(settings, dataset, source, per_image, chance, correct, labels, names, first_cfg)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "locality.json", report)
    write_text(out / "locality.md", locality_markdown(report))
    plot_locality(report, out / "locality.png")
    return report


def _report(settings, dataset, source, per_image, chance, correct, labels, names, cfg) -> dict:
    seed, draws = settings.seed, settings.resamples
    rows = {}
    for row, values in per_image.items():
        entry = _summary(values, seed, draws)
        if row != BB:
            entry["minus_bb"] = _summary({k: np.subtract(v, per_image[BB][k]) for k, v in values.items()}, seed, draws)
        if row in correct and correct[row]:
            entry["accuracy"] = float(np.mean(correct[row]))
        rows[row] = entry
    return {
        "dataset": dataset, "source": source, "images": len(names), "adapters": dict(zip(labels, settings.adapters)),
        "backbone": cfg.backbone, "img_size": cfg.img_size, "seed": seed, "resamples": draws, "interval": 0.95,
        "chance": _summary(chance, seed, draws), "rows": rows,
        "per_image": {"names": names, "chance": chance, **per_image},
    }


def locality_markdown(report: dict) -> str:
    chance = report["chance"]

    def cell(entry: dict, key: str) -> str:
        e = entry[key]
        return f"{e['mean']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"

    def diff(entry: dict, key: str) -> str:
        if "minus_bb" not in entry:
            return "—"
        e = entry["minus_bb"][key]
        return f"{e['mean']:+.3f} [{e['low']:+.3f}, {e['high']:+.3f}]"

    lines = [f"# Locality on {report['dataset']} ({report['images']} images, masks: {report['source']['masks']})", "",
             f"Backbone {report['backbone']} at {report['img_size']} px. Mean and 95 % bootstrap interval over images "
             f"({report['resamples']} draws, seed {report['seed']}); last-block CLS attention, mean over heads, "
             "renormalised over the patches.", "",
             "| attention | share in mask | − B-B | pointing game | − B-B | accuracy |",
             "|---|---|---|---|---|---|",
             f"| chance (uniform map / random patch) | {cell(chance, 'share')} | | {cell(chance, 'pointing')} | | |"]
    for row, entry in report["rows"].items():
        accuracy = f"{100 * entry['accuracy']:.1f} %" if "accuracy" in entry else ""
        lines.append(f"| {row} | {cell(entry, 'share')} | {diff(entry, 'share')} | {cell(entry, 'pointing')} | "
                     f"{diff(entry, 'pointing')} | {accuracy} |")
    return "\n".join(lines) + "\n"


def plot_locality(report: dict, path: str | Path) -> Path:
    """Share in mask and pointing game per row with their intervals, the chance level as a dashed line."""
    from lorevit.utils.plotting import _pyplot, _save

    plt = _pyplot()
    rows = list(report["rows"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.4), squeeze=False)
    for ax, key, title in zip(axes[0], ("share", "pointing"), ("share of attention in the mask", "pointing game")):
        means = [report["rows"][r][key]["mean"] for r in rows]
        low = [m - report["rows"][r][key]["low"] for r, m in zip(rows, means)]
        high = [report["rows"][r][key]["high"] - m for r, m in zip(rows, means)]
        ax.barh(range(len(rows)), means, xerr=[low, high], color="tab:blue", alpha=0.7, capsize=3)
        ax.axvline(report["chance"][key]["mean"], color="k", linestyle="--", linewidth=1, label="chance")
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(rows if key == "share" else [""] * len(rows), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{report['dataset']}: {report['images']} images, 95 % bootstrap intervals", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
