"""``lorevit bench data``: does the data loader keep up with a LORE training step?

On one machine, side by side:

- **loader**: images/s the training ``DataLoader`` delivers for a full-data ImageFolder of real JPEG
  files (decode + RandomResizedCrop + flip + normalise, the training transform), for each worker count
  asked for (0 = decoding in the main process, and the ``num_workers: null`` default for this machine);
- **step**: images/s a LORE training step consumes (forward + L_task + λ L_kp + backward + SGD) on
  random images of the same size and batch, on the chosen device;
- their **ratio** (loader / step): below 1 the accelerator waits for data.

Offline, the ImageFolder is made of real photos (scikit-image's and Debian opencv-doc's) cut into
ImageNet-sized JPEGs; ``--data-root`` measures your own ``train/<class>/*`` tree instead.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from lorevit.backbone import create_backbone
from lorevit.config import Config, OFFLINE_BACKBONE, OFFLINE_KNOWLEDGE, OFFLINE_WEIGHTS
from lorevit.errors import ConfigError
from lorevit.utils.device import resolve_device
from lorevit.utils.io import write_json, write_text
from lorevit.factory import create_model
from lorevit.bench.complexity import interleaved_times, make_train_step
from lorevit.tasks.standins.photos import OPENCV_DATA

PHOTO_DIRS = (OPENCV_DATA,)  # the stand-ins' one photo source (lorevit.tasks.standins.photos)
PHOTO_SUFFIXES = (".jpg", ".png")


@dataclass
class DataBenchSettings:
    data_root: str | None = None  # an ImageFolder (train/<class>/*); None: build the real-JPEG one
    images: int = 2000  # size of the built ImageFolder
    classes: int = 20
    img_size: int = 224
    batch_size: int = 32
    workers: tuple[int | None, ...] = (0, 2, None)  # None: the machine's default (Config.num_workers null)
    batches: int = 20  # loader batches timed per worker count (after one warm-up batch)
    backbone: str = OFFLINE_BACKBONE
    weights: str | None = OFFLINE_WEIGHTS
    backbone_kwargs: dict = field(default_factory=dict)
    step_repeats: int = 3
    device: str = "auto"
    seed: int = 0


def _photos() -> list[Path]:
    """Real photos installed with the project's dependencies (scikit-image's data, Debian opencv-doc)."""
    import skimage

    folders = [Path(skimage.__file__).parent / "data", *map(Path, PHOTO_DIRS)]
    found = [p for d in folders if d.is_dir() for p in sorted(d.iterdir()) if p.suffix.lower() in PHOTO_SUFFIXES]
    return [p for p in found if p.stat().st_size > 20_000]  # photos, not icons or masks


def build_jpeg_folder(root: Path, images: int, classes: int, seed: int = 0, say: Callable[[str], None] = print) -> Path:
    """``root/train/<class>/*.jpg``: ImageNet-sized (≈500×375) JPEG crops of real photos, deterministic."""
    from PIL import Image

    done = root / f".complete-{images}-{classes}-{seed}"
    if done.is_file():
        return root
    photos = []
    for path in _photos():
        with Image.open(path) as image:
            if min(image.size) >= 256:
                photos.append(image.convert("RGB"))
    if not photos:
        raise ConfigError("bench data needs real photos (scikit-image, opencv-doc): run `make setup`, or pass --data-root")
    say(f"building {images} JPEGs from {len(photos)} real photos in {root}")
    rng = np.random.default_rng(seed)
    for i in range(images):
        c = i % classes
        photo = photos[(i * 7 + c) % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = photo.crop((x, y, x + cw, y + ch)).resize((500, 375), Image.BICUBIC)
        folder = root / "train" / f"class_{c:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        crop.save(folder / f"{i:06d}.jpg", quality=90)
    done.write_text("")
    return root


def loader_rate(cfg: Config, data_config: dict, batches: int) -> float:
    """Images/s the training loader delivers (its own workers, its own transform), after one warm-up batch."""
    from torch.utils.data import DataLoader

    from lorevit.data import build_dataset, collate_skip_bad
    from lorevit.data.transforms import image_transforms
    from lorevit.training.loaders import Indexed, loader_workers

    dataset = build_dataset("imagefolder", "train", root=cfg.data_root,
                            transform=image_transforms(data_config, cfg.img_size, train=True))
    workers, pin = loader_workers(cfg)
    loader = DataLoader(Indexed(dataset), batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                        collate_fn=collate_skip_bad, pin_memory=pin, persistent_workers=False,
                        generator=torch.Generator().manual_seed(cfg.seed))
    it = iter(loader)
    next(it)  # warm-up: worker start-up is not throughput
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            images, _, _ = next(it)
        except StopIteration:
            break
        count += images.shape[0]
    return count / (time.perf_counter() - start)


def run_data_bench(settings: DataBenchSettings, out_dir: str | Path, say: Callable[[str], None] = print) -> dict:
    from lorevit.utils.paths import sub_dir
    from lorevit.training.loaders import loader_workers

    out = Path(out_dir)
    root = Path(settings.data_root) if settings.data_root else \
        build_jpeg_folder(sub_dir("bench-data") / "jpeg-imagefolder", settings.images, settings.classes, settings.seed, say)
    device = resolve_device(settings.device)
    accelerator = "cpu" if device.type == "cpu" else "gpu"
    backbone = create_backbone(settings.backbone, settings.weights, settings.img_size, **settings.backbone_kwargs)
    base = Config(dataset="imagefolder", data_root=str(root), img_size=settings.img_size, batch_size=settings.batch_size,
                  accelerator=accelerator, seed=settings.seed, backbone=settings.backbone)

    loader = {}
    for workers in settings.workers:
        cfg = base.replace(num_workers=workers)
        n, _ = loader_workers(cfg)
        label = f"{n} workers" + (" (default)" if workers is None else "")
        rate = loader_rate(cfg, backbone.data_config, settings.batches)
        loader[label] = round(rate, 2)
        say(f"loader, {label}: {rate:.1f} images/s")

    names = [f"class {i:03d}" for i in range(settings.classes)]
    generator = torch.Generator().manual_seed(settings.seed)
    features = F.normalize(torch.randn(settings.classes, 384, generator=generator), dim=-1)
    model = create_model("lore", names, backbone=backbone, knowledge=OFFLINE_KNOWLEDGE, knowledge_features=features).to(device)
    images = torch.randn(settings.batch_size, 3, settings.img_size, settings.img_size, generator=generator).to(device)
    labels = torch.randint(0, settings.classes, (settings.batch_size,), generator=generator).to(device)
    times = interleaved_times({"lore": make_train_step(model, images, labels)}, settings.step_repeats, 1, device)["lore"]
    step_rate = settings.batch_size / statistics.median(times)
    say(f"LORE training step: {step_rate:.1f} images/s ({statistics.median(times):.3f} s per batch of {settings.batch_size})")

    report = {
        "setup": {"data_root": str(root), "images": settings.images if not settings.data_root else None,
                  "img_size": settings.img_size, "batch_size": settings.batch_size, "device": str(device),
                  "backbone": settings.backbone, "weights": settings.weights, "torch_threads": torch.get_num_threads(),
                  "batches_timed": settings.batches, "step_repeats": settings.step_repeats},
        "loader_images_per_s": loader,
        "step_images_per_s": round(step_rate, 2),
        "ratio_loader_over_step": {k: round(v / step_rate, 3) for k, v in loader.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "data.json", report)
    write_text(out / "data.md", data_markdown(report))
    return report


def data_markdown(report: dict) -> str:
    s = report["setup"]
    lines = ["# Data loading vs a LORE training step", "",
             f"ImageFolder `{s['data_root']}` of JPEGs, training transform at {s['img_size']} px, batch "
             f"{s['batch_size']}, device {s['device']} ({s['torch_threads']} torch threads); step: "
             f"`{s['backbone']}` ({s['weights']}).", "",
             "| loader | images/s delivered | LORE step images/s | loader / step |", "|---|---:|---:|---:|"]
    for label, rate in report["loader_images_per_s"].items():
        lines.append(f"| {label} | {rate:.1f} | {report['step_images_per_s']:.1f} | "
                     f"{report['ratio_loader_over_step'][label]:.2f} |")
    lines += ["", "Above 1 the loader keeps up with training; below 1 the step waits for data."]
    return "\n".join(lines) + "\n"
