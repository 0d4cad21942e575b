"""Stand-ins of the benchmark protocols' datasets (issue 21 §3), written in the official on-disk layouts from real
installed images, so the real readers of :mod:`lorevit.data.benchmarks` run unchanged:

- ``vtab-1k/{svhn,eurosat,clevr_count}/``: NOAH's layout (``train800.txt``, ``val200.txt``, ``train800val200.txt``,
  ``test.txt``, ``images/<split>/NNNNNN.jpg``), one task per VTAB group, from Fashion-MNIST (10, 10 and its first 8
  classes; disjoint image ranges per task);
- ``CUB_200_2011/``: VPT's FGVC layout (``images/NNN.Name/*.jpg`` + ``{train,val,test}.json`` with sparse class
  ids, remapped by the reader) of random crops of OpenCV's documentation photos, one photo per class;
- ``food-101/``: CoOp's layout (``images/<class>/*.jpg`` + ``split_zhou_Food101.json``) of Fashion-MNIST's 10
  classes: CoOp's few-shot protocol, its base-to-novel split (5 base, 5 new) and the cross-dataset target;

- ``imagenet/`` in CoOp's ImageNet layout (``classnames.txt``, ``images/{train,val}/<wnid>/``) and the four
  domain-generalisation targets in their official layouts — ``imagenetv2/imagenetv2-matched-frequency-format-val/
  <0…999>/``, ``imagenet-sketch/images/<wnid>/``, ``imagenet-adversarial/imagenet-a/<200 wnids>/``,
  ``imagenet-rendition/imagenet-r/<200 wnids>/`` — of Fashion-MNIST's 10 classes, each mapped to a wnid that is in
  both the ImageNet-A and the ImageNet-R list (:data:`FASHION_WNIDS`), so a 1000-way head, the 200-class logit
  masks and the folder checks of the readers all apply (the other class folders are there and empty). The targets
  are held-out Fashion-MNIST test images, each set disjoint from the others and from ImageNet's val:
  V2 = other held-out images, unchanged (a new sample of the same source: no intended shift);
  Sketch = an edge map (Sobel magnitude, dark lines on white: :func:`sketch`);
  R = a rendition-like change of style (4 flat tones in a seeded random two-colour palette: :func:`rendition`);
  A = held-out images that a fixed linear probe on raw pixels gets wrong (:func:`pixel_probe`), as ImageNet-A holds
  images a fixed ResNet-50 got wrong — filtered against a fixed model, not against the model under test.

What they do not show: the accuracy of any method on the real benchmarks (28-px grey clothes and crops of a dozen
photos are nothing like VTAB's or CUB's images; ten populated classes of 1000 are not ImageNet, an edge map of a
28-px silhouette is not a sketch, a recoloured one is not a painting, a pixel probe's mistakes are not natural
adversarial examples); they check that every protocol's reading, tuning, bookkeeping, averaging and tables run end
to end. The quick sizes (80/20 instead of 800/200) are logged by the VTAB reader.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from lorevit.tasks.errors import TaskError

VTAB_STANDINS = (("svhn", 10, 0), ("eurosat", 10, 3000), ("clevr_count", 8, 6000))  # task, classes, image offset
FGVC_PHOTOS = ("apple.jpg", "baboon.jpg", "butterfly.jpg", "fruits.jpg", "home.jpg", "messi5.jpg", "orange.jpg",
               "building.jpg", "graf1.png", "lena.jpg", "HappyFish.jpg", "board.jpg")
MARKER = "STANDIN.txt"
# Fashion-MNIST class → a wnid of both ImageNet-A's and ImageNet-R's 200 (lorevit/data/classlists); only the sandal
# is the same thing, the others are placeholders whose names classnames.txt replaces by Fashion-MNIST's
FASHION_WNIDS = (
    ("T-shirt/top", "n01498041"), ("Trouser", "n01531178"), ("Pullover", "n01534433"), ("Dress", "n01614925"),
    ("Coat", "n01616318"), ("Sandal", "n04133789"), ("Shirt", "n01677366"), ("Sneaker", "n01694178"),
    ("Bag", "n01770393"), ("Ankle boot", "n01774750"),
)
# the datasets each protocol runs on the stand-ins (None: every one found); coop-fewshot and base2novel keep to
# food-101 (the ImageNet stand-in, ten populated classes of 1000, is there for xd and dg)
QUICK_DATASETS = {"coop-fewshot": ("food101",), "base2novel": ("food101",), "xd": ("food101",)}


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


# ---------------------------------------------------------------------------- ImageNet and its four shifts
def sketch(image: np.ndarray) -> np.ndarray:
    """The Sketch stand-in's shift: the Sobel gradient magnitude of a grey image (H, W uint8), scaled to its maximum
    and inverted — dark strokes on white, as ImageNet-Sketch's drawings — H, W uint8."""
    g = np.pad(image.astype(np.float32) / 255.0, 1, mode="edge")
    gx = (g[:-2, 2:] + 2 * g[1:-1, 2:] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[1:-1, :-2] + g[2:, :-2])
    gy = (g[2:, :-2] + 2 * g[2:, 1:-1] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[:-2, 1:-1] + g[:-2, 2:])
    magnitude = np.hypot(gx, gy)
    magnitude = magnitude / max(float(magnitude.max()), 1e-6)
    return np.round(255.0 * (1.0 - magnitude)).astype(np.uint8)


def rendition(image: np.ndarray, rng: np.random.Generator, tones: int = 4) -> np.ndarray:
    """The R stand-in's shift: a grey image (H, W uint8) posterised to ``tones`` flat levels and painted in a random
    two-colour palette (dark → light, from ``rng``), a cartoon-like rendition of the same shape — H, W, 3 uint8."""
    levels = np.floor(image.astype(np.float32) / 256.0 * tones) / max(tones - 1, 1)  # 0 … 1 in ``tones`` steps
    dark, light = rng.integers(0, 110, 3), rng.integers(150, 256, 3)
    if rng.random() < 0.5:  # the background light and the object dark, as often in drawings
        dark, light = light, dark
    return np.round(dark + levels[..., None] * (light - dark)).clip(0, 255).astype(np.uint8)


def pixel_probe(images: np.ndarray, targets: np.ndarray, classes: int, ridge: float = 10.0):
    """The A stand-in's fixed filter model: a ridge-regression linear probe on raw pixels (one-hot targets,
    ``W = (XᵀX + λI)⁻¹ XᵀY`` with a bias column), fitted on ``images`` (N, H, W); returns ``predict(images) → labels``."""
    def features(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float64) / 255.0
        return np.hstack([flat, np.ones((len(x), 1))])

    X = features(images)
    Y = np.eye(classes)[np.asarray(targets, dtype=int)]
    W = np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ Y)
    return lambda x: (features(x) @ W).argmax(1)


def _write_classnames(path: Path, wnids: list[str], names: dict[str, str]) -> None:
    """CoOp's ``classnames.txt``: ``<wnid> <name>`` for every wnid (the mapped ones named as Fashion-MNIST's)."""
    from lorevit.data.names import imagenet_classnames

    readable = imagenet_classnames(wnids)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{w} {names.get(w, n)}\n" for w, n in zip(wnids, readable)))


IMAGENET_TARGETS = {  # dataset → (its folder under the root, its 200-class list or None)
    "imagenet-v2": ("imagenetv2/imagenetv2-matched-frequency-format-val", None),
    "imagenet-sketch": ("imagenet-sketch/images", None),
    "imagenet-a": ("imagenet-adversarial/imagenet-a", "a"), "imagenet-r": ("imagenet-rendition/imagenet-r", "r"),
}


def imagenet_folders(root: Path) -> None:
    """Every class folder of the ImageNet stand-ins, most of them empty (git keeps no empty folder, so a checked-in
    copy gets them back here): ImageNet's 1000 wnids (train, val), V2's 0…999, Sketch's 1000, A's and R's 200."""
    from lorevit.data.benchmarks import imagenet_200_mask, imagenet_wnids

    wnids = imagenet_wnids()
    for split in ("train", "val"):
        for w in wnids:
            (root / "imagenet" / "images" / split / w).mkdir(parents=True, exist_ok=True)
    for dataset, (rel, variant) in IMAGENET_TARGETS.items():
        keys = [str(i) for i in range(len(wnids))] if dataset == "imagenet-v2" else \
            [wnids[i] for i in imagenet_200_mask(variant)] if variant else wnids
        for key in keys:
            (root / rel / key).mkdir(parents=True, exist_ok=True)


def build_imagenet(root: Path, sizes=(20, 10, 10), seed: int = 0) -> list[str]:
    """ImageNet in CoOp's layout and V2 / Sketch / A / R in theirs, of Fashion-MNIST's classes (:data:`FASHION_WNIDS`);
    ``sizes`` = (train, val, per-target) images per class (A: up to that many, as many as the probe gets wrong)."""
    from lorevit.data.benchmarks import imagenet_200_mask, imagenet_wnids

    train, test = _fashion("train"), _fashion("test")
    wnids = imagenet_wnids()
    index = {w: i for i, w in enumerate(wnids)}
    wnid_of = [w for _, w in FASHION_WNIDS]
    names = {w: n for n, w in FASHION_WNIDS}
    for variant in ("a", "r"):
        kept = {wnids[i] for i in imagenet_200_mask(variant)}
        assert set(wnid_of) <= kept, f"FASHION_WNIDS must lie in ImageNet-{variant.upper()}'s 200 classes"
    rng = np.random.default_rng(seed)
    n_train, n_val, n_target = sizes

    def folder_name(dataset: str, wnid: str) -> str:
        return str(index[wnid]) if dataset == "imagenet-v2" else wnid  # V2: the sorted-wnid index

    base = root / "imagenet"
    imagenet_folders(root)
    _write_classnames(base / "classnames.txt", wnids, names)
    for dataset, (rel, variant) in IMAGENET_TARGETS.items():
        keys = [wnids[i] for i in imagenet_200_mask(variant)] if variant else wnids
        _write_classnames(root / rel / "classnames.txt", keys, names)  # the base folder the reader looks in
    for n, i in enumerate(_per_class(train.targets, 10, n_train, 12000)):
        w = wnid_of[int(train.targets[i])]
        _save(train.items[i], base / "images" / "train" / w / f"{w}_{n:05d}.JPEG")
    # held-out test images: val, V2, Sketch and R disjoint and class-interleaved, A from the images after them
    pick = _per_class(test.targets, 10, n_val + 3 * n_target, 6000)
    groups = {"val": pick[:10 * n_val]}
    for g, dataset in enumerate(("imagenet-v2", "imagenet-sketch", "imagenet-r")):
        start = 10 * (n_val + g * n_target)
        groups[dataset] = pick[start:start + 10 * n_target]
    for n, i in enumerate(groups["val"]):
        w = wnid_of[int(test.targets[i])]
        _save(test.items[i], base / "images" / "val" / w / f"ILSVRC2012_val_{n:08d}.JPEG")
    shifts = {"imagenet-v2": (lambda x: x, "jpeg"), "imagenet-sketch": (sketch, "JPEG"),
              "imagenet-r": (lambda x: rendition(x, rng), "jpg")}
    for dataset, (shift, ext) in shifts.items():
        for n, i in enumerate(groups[dataset]):
            w = wnid_of[int(test.targets[i])]
            _save(shift(test.items[i]), root / IMAGENET_TARGETS[dataset][0] / folder_name(dataset, w) / f"{n:05d}.{ext}")
    # A: the probe (fitted on training images no other stand-in uses) gets these held-out images wrong
    fit = np.arange(20000, 30000)
    predict = pixel_probe(train.items[fit], np.asarray(train.targets)[fit], 10)
    pool = np.arange(max(pick) + 1, len(test.targets))
    labels = np.asarray(test.targets)[pool]
    right = predict(test.items[pool]) == labels
    wrong = pool[~right]
    counts = {}
    for c, (name, w) in enumerate(FASHION_WNIDS):
        chosen = [int(i) for i in wrong if int(test.targets[i]) == c][:n_target]
        counts[name] = len(chosen)
        for n, i in enumerate(chosen):
            _save(test.items[i], root / IMAGENET_TARGETS["imagenet-a"][0] / w / f"{n:05d}.jpg")
    accuracy = float(right.mean())
    (root / IMAGENET_TARGETS["imagenet-a"][0] / "README.txt").write_text(
        "lorevit stand-in of ImageNet-A: held-out Fashion-MNIST test images that a ridge linear probe on raw pixels "
        f"(fitted on 10,000 Fashion-MNIST training images) gets wrong; the probe's accuracy on the pool: {accuracy:.3f}; "
        f"images per class: {json.dumps(counts)}\n")
    return ["imagenet", *IMAGENET_TARGETS]


PARTS = {  # part → (its folders under the root, the file its builder writes last, its builder, sizes quick / full)
    "vtab": (("vtab-1k",), "vtab-1k/clevr_count/train800val200.txt", build_vtab, ((8, 2, 10), (80, 20, 50))),
    "fgvc": (("CUB_200_2011",), "CUB_200_2011/test.json", build_fgvc, ((6, 2, 4), (20, 5, 20))),
    "coop": (("food-101",), "food-101/split_zhou_Food101.json", build_coop, ((16, 4, 10), (16, 4, 50))),
    "imagenet": (("imagenet", "imagenetv2", "imagenet-sketch", "imagenet-adversarial", "imagenet-rendition"),
                 "imagenet-adversarial/imagenet-a/README.txt", build_imagenet, ((20, 10, 10), (50, 50, 50))),
}


def build(root: str | Path, say: Callable[[str], None] | None = None, quick: bool = True) -> Path:
    """Write the protocol stand-ins under ``root``, or find them: ``root/STANDIN.txt`` lists the parts already
    complete; a part it does not list, or whose last file is absent (a stand-in folder of an older lorevit, one a
    killed build left half-written, a checkout without the ignored files), is written again from scratch."""
    root = Path(root)
    marker = root / MARKER
    done = marker.read_text().splitlines()[0].split(": ", 1)[-1].split(", ") if marker.is_file() else []
    if "vtab-svhn" in done:  # an older marker (written once its three parts were complete) lists datasets
        done = ["vtab", "fgvc", "coop"]
    done = [p for p in done if p in PARTS and (root / PARTS[p][1]).is_file()]
    missing = [p for p in PARTS if p not in done]
    if "imagenet" in done:
        imagenet_folders(root)
    if not missing:
        return root
    say = say or (lambda _m: None)
    made = []
    for part in missing:
        folders, _, builder, sizes = PARTS[part]
        for folder in folders:
            shutil.rmtree(root / folder, ignore_errors=True)
        made += builder(root, sizes[0] if quick else sizes[1])
        done.append(part)
        root.mkdir(parents=True, exist_ok=True)
        marker.write_text("lorevit protocol stand-ins (lorevit.tasks.standins.protocols): " + ", ".join(done) + "\n"
                          "Fashion-MNIST and OpenCV documentation photos in the official layouts; not the benchmarks.\n")
    say(f"stand-ins written under {root}: {', '.join(made)}")
    return root
