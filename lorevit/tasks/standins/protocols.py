"""Stand-ins of the benchmark protocols' datasets (issue 21 §3), written in the official on-disk layouts from real
installed images, so the real readers of :mod:`lorevit.data.benchmarks` run unchanged:

- ``vtab-1k/{svhn,eurosat,clevr_count}/``: NOAH's layout (``train800.txt``, ``val200.txt``, ``train800val200.txt``,
  ``test.txt``, ``images/<split>/NNNNNN.jpg``), one task per VTAB group, from Fashion-MNIST (10, 10 and its first 8
  classes; disjoint image ranges per task);
- ``CUB_200_2011/``: VPT's FGVC layout (``images/NNN.Name/*.jpg`` + ``{train,val,test}.json`` with sparse class
  ids, remapped by the reader) of random crops of OpenCV's documentation photos, one photo per class;
- ``food-101/``: CoOp's layout (``images/<class>/*.jpg`` + ``split_zhou_Food101.json``) of Fashion-MNIST's 10
  classes: CoOp's few-shot protocol and its base-to-novel split (5 base, 5 new).

What they do not show: the accuracy of any method on the real benchmarks (28-px grey clothes and crops of a dozen
photos are nothing like VTAB's or CUB's images); they check that every protocol's reading, tuning, bookkeeping,
averaging and tables run end to end. The quick sizes (80/20 instead of 800/200) are logged by the VTAB reader.
There is no ImageNet stand-in: ``xd`` and ``dg`` need ImageNet's 1000 classes (tested on generated fixtures).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from lorevit.tasks.errors import TaskError

VTAB_STANDINS = (("svhn", 10, 0), ("eurosat", 10, 3000), ("clevr_count", 8, 6000))  # task, classes, image offset
FGVC_PHOTOS = ("apple.jpg", "baboon.jpg", "butterfly.jpg", "fruits.jpg", "home.jpg", "messi5.jpg", "orange.jpg",
               "building.jpg", "graf1.png", "lena.jpg", "HappyFish.jpg", "board.jpg")
MARKER = "STANDIN.txt"


def _fashion(split: str):
    from lorevit.data import build_dataset
    from lorevit.data.dataset import DatasetError

    try:
        return build_dataset("fashion-mnist", split)
    except DatasetError as err:
        raise TaskError(f"the protocol stand-ins are built from Fashion-MNIST: {str(err).splitlines()[0]} "
                        "(`make setup` installs Debian's dataset-fashion-mnist)") from err


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).convert("RGB").save(path, quality=95)


def _per_class(targets, classes: int, count: int, offset: int) -> list[int]:
    """``count`` indices per class (the first ones from ``offset`` on), class-interleaved."""
    by_class: dict[int, list[int]] = {c: [] for c in range(classes)}
    for i in range(offset, len(targets)):
        t = int(targets[i])
        if t < classes and len(by_class[t]) < count:
            by_class[t].append(i)
        if all(len(v) == count for v in by_class.values()):
            break
    return [by_class[c][j] for j in range(count) for c in range(classes)]


def build_vtab(root: Path, sizes=(8, 2, 10)) -> list[str]:
    """Three VTAB-1k tasks (per class: ``sizes`` = train800, val200, test images)."""
    train, test = _fashion("train"), _fashion("test")
    tasks = []
    for task, classes, offset in VTAB_STANDINS:
        folder = root / "vtab-1k" / task
        pick = _per_class(train.targets, classes, sizes[0] + sizes[1], offset)
        n_train = sizes[0] * classes
        lists = {"train800": pick[:n_train], "val200": pick[n_train:], "test": _per_class(test.targets, classes, sizes[2], offset // 3)}
        rows = {}
        for split, indices in lists.items():
            src = train if split != "test" else test
            rows[split] = []
            for n, i in enumerate(indices):
                rel = f"images/{split}/{n:06d}.jpg"
                _save(src.items[i], folder / rel)
                rows[split].append(f"{rel} {src.targets[i]}")
        # NOAH re-saves the union under its own names (train800 first, then val200)
        union = []
        for n, (i, src_row) in enumerate(zip(lists["train800"] + lists["val200"], rows["train800"] + rows["val200"])):
            rel = f"images/train800val200/{n:06d}.jpg"
            _save(train.items[i], folder / rel)
            union.append(f"{rel} {src_row.split()[1]}")
        rows["train800val200"] = union
        for split, lines in rows.items():
            (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
        tasks.append(f"vtab-{task}")
    return tasks


def build_fgvc(root: Path, sizes=(6, 2, 4), size: int = 64, seed: int = 0) -> list[str]:
    """CUB-format set: one class per OpenCV documentation photo, images = seeded random crops (+ flips)."""
    from lorevit.tasks.standins import photos

    refs = photos.available([f"cv:{p}" for p in FGVC_PHOTOS])
    if len(refs) < 4:
        raise TaskError(f"the FGVC stand-in needs OpenCV's documentation photos (found {len(refs)}): {photos.FIXES['cv']}")
    rng = np.random.default_rng(seed)
    base = root / "CUB_200_2011"
    splits: dict[str, dict[str, int]] = {"train": {}, "val": {}, "test": {}}
    for c, ref in enumerate(refs):
        photo = photos.image(ref, max_side=256)
        class_id = 3 * c + 2  # sparse ids, as VPT's files may hold: the reader remaps them sorted
        folder = f"{c + 1:03d}.{photos.stem(ref).capitalize()}"
        n = 0
        for split, count in zip(("train", "val", "test"), sizes):
            for _ in range(count):
                w, h = photo.size
                side = int(min(w, h) * rng.uniform(0.5, 0.9))
                x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
                crop = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BICUBIC)
                if rng.random() < 0.5:
                    crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
                rel = f"{folder}/{photos.stem(ref)}_{n:04d}.jpg"
                (base / "images" / folder).mkdir(parents=True, exist_ok=True)
                crop.save(base / "images" / rel, quality=95)
                splits[split][rel] = class_id
                n += 1
    for split, data in splits.items():
        (base / f"{split}.json").write_text(json.dumps(data, indent=0))
    return ["fgvc-cub"]


def build_coop(root: Path, sizes=(16, 4, 10)) -> list[str]:
    """Food101-format set of Fashion-MNIST's 10 classes with CoOp's split file (per class: train, val, test)."""
    from lorevit.data.registry import FASHION_MNIST_CLASSES

    train, test = _fashion("train"), _fashion("test")
    base = root / "food-101"
    names = [n.lower().replace("/", "_").replace("-", "_").replace(" ", "_") for n in FASHION_MNIST_CLASSES]
    split = {"train": [], "val": [], "test": []}
    pick = _per_class(train.targets, 10, sizes[0] + sizes[1], 9000)
    n_train = sizes[0] * 10
    for key, indices, src in (("train", pick[:n_train], train), ("val", pick[n_train:], train),
                              ("test", _per_class(test.targets, 10, sizes[2], 5000), test)):
        for i in indices:
            label = int(src.targets[i])
            rel = f"{names[label]}/{key}_{i:05d}.jpg"
            _save(src.items[i], base / "images" / rel)
            split[key].append([rel, label, names[label]])
    (base / "split_zhou_Food101.json").write_text(json.dumps(split))
    return ["food101"]


def build(root: str | Path, say: Callable[[str], None] | None = None, quick: bool = True) -> Path:
    """Write (or find, when ``root/STANDIN.txt`` says they are there) the protocol stand-ins under ``root``."""
    root = Path(root)
    marker = root / MARKER
    if marker.is_file():
        return root
    say = say or (lambda _m: None)
    sizes = dict(vtab=(8, 2, 10), fgvc=(6, 2, 4), coop=(16, 4, 10)) if quick else \
        dict(vtab=(80, 20, 50), fgvc=(20, 5, 20), coop=(16, 4, 50))
    made = build_vtab(root, sizes["vtab"]) + build_fgvc(root, sizes["fgvc"]) + build_coop(root, sizes["coop"])
    marker.write_text("lorevit protocol stand-ins (lorevit.tasks.standins.protocols): " + ", ".join(made) + "\n"
                      "Fashion-MNIST and OpenCV documentation photos in the official layouts; not the benchmarks.\n")
    say(f"stand-ins written under {root}: {', '.join(made)}")
    return root
