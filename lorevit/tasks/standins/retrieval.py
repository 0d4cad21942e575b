"""Offline stand-ins for Revisited Oxford/Paris, built from real images in the official layout (TASKS_SPEC §4, R1/R2).

Each is written exactly as ``<root>/<name>/{gnd_<name>.pkl, jpg/}`` (dict/list/str/int/float only,
queries in ``jpg/`` but not in ``imlist``), so :func:`~.dataset.read_dataset` reads them unchanged.

- **R1 ``standin-fashion-mnist``** (class level): 100 Fashion-MNIST *test* images (10 per class) query
  500 *train* images (50 per class; kept small so B-B + LORE run in minutes on a CPU), written at 112 px (bicubic from 28 px; the thumbnail never
  upsamples, so they enter the ViT at 112, the demo adapter's training size). Same class = positive:
  half of each class's database images are kept as they are (*easy*), half are *hard*: rotated by
  90/180/270°, shrunk to 50–70 % at a random place and tinted. No junk. Medium = class-level retrieval.
  Without Fashion-MNIST, ``standin-digits`` is built the same way from scikit-learn's 8×8 digits
  (seeded disjoint query/database pools).
- **R2 ``standin-mini``** (instance level): 25 real photos (opencv-doc, scikit-image, scikit-learn).
  Each has one query view (the photo) with a ``bbx`` over 50–70 % of it, and in the database
  (synthetic views on a 640×480 canvas, 480×640 for portrait photos, sizes relative to the photo fitted in it):
  2 *easy* views (crop, scale 0.8–1.25, rotation ≤ 10°), 2 *hard* views (perspective homography,
  scale 0.4–0.6, rotation 30–60°, colour and blur change, over a real texture), 1 *junk* view
  (3–25 % of the query box visible), plus the real second view where one exists (graf3, leuvenB,
  aloeR, motorcycle_right, aero3, box_in_scene, basketball2, rubberwhale2, Blender_Suzanne2) as
  *hard*; 20 more real photos are distractors. 25 queries, 154 database images.

Photos are read through :mod:`.photos` (references ``cv:``/``sk:``/``sl:``); the views' homographies
(:func:`~.geometry.view_homography`, :func:`~.geometry.visible_fraction`) and the warp are :mod:`.geometry`'s.
Seeded and deterministic; idempotent (a finished set — its ``gnd`` pickle, written last, and a
matching ``standin.json`` — is never rebuilt).
"""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from lorevit.utils.io import atomic_write, write_json
from lorevit.tasks.retrieval.dataset import EXT, gnd_path
from lorevit.tasks.standins import photos
from lorevit.tasks.standins.geometry import view_homography, visible_fraction, warp

VERSION = 2
SEED = 0
JPEG_QUALITY = 92
MAX_SIDE = 1024  # larger real photos are downscaled to this longer side first
VIEW_SIZE = (640, 480)  # every synthetic view (portrait photos: 480×640), like most opencv-doc photos
FMNIST = "standin-fashion-mnist"
DIGITS = "standin-digits"  # R1 from scikit-learn's digits: built only when Fashion-MNIST is not installed
MINI = "standin-mini"

# (query photo, its real second view or None): references of :mod:`.photos` ("cv:", "sk:", "sl:")
MINI_PHOTOS = [
    ("cv:graf1.png", "cv:graf3.png"), ("cv:leuvenA.jpg", "cv:leuvenB.jpg"), ("cv:aloeL.jpg", "cv:aloeR.jpg"),
    ("sk:motorcycle_left.png", "sk:motorcycle_right.png"), ("cv:aero1.jpg", "cv:aero3.jpg"),
    ("cv:box.png", "cv:box_in_scene.png"), ("cv:basketball1.png", "cv:basketball2.png"),
    ("cv:rubberwhale1.png", "cv:rubberwhale2.png"), ("cv:Blender_Suzanne1.jpg", "cv:Blender_Suzanne2.jpg"),
    ("cv:building.jpg", None), ("cv:home.jpg", None), ("cv:fruits.jpg", None), ("cv:baboon.jpg", None),
    ("cv:messi5.jpg", None), ("cv:starry_night.jpg", None), ("cv:butterfly.jpg", None), ("cv:apple.jpg", None),
    ("cv:orange.jpg", None), ("cv:squirrel_cls.jpg", None), ("sk:astronaut.png", None), ("sk:chelsea.png", None),
    ("sk:coffee.png", None), ("sk:rocket.jpg", None), ("sl:china.jpg", None), ("sl:flower.jpg", None),
]
MINI_DISTRACTORS = [
    "cv:HappyFish.jpg", "cv:blox.jpg", "cv:board.jpg", "cv:cards.png", "cv:chicky_512.png", "cv:ela_original.jpg",
    "cv:ellipses.jpg", "cv:left01.jpg", "cv:pic1.png", "cv:smarties.png", "cv:stuff.jpg", "cv:sudoku.png",
    "cv:licenseplate_motion.jpg", "sk:camera.png", "sk:coins.png", "sk:moon.png", "sk:page.png",
    "sk:hubble_deep_field.jpg", "sk:retina.jpg", "sk:ihc.png",
]
BACKGROUNDS = ["sk:brick.png", "sk:grass.png", "sk:gravel.png"]  # textures behind the warped views only


def build(root: Path, say: Callable[[str], None] = print) -> list[str]:
    """Build (if missing) the retrieval stand-ins under ``root``; returns the dataset names found or built."""
    root = Path(root)
    built = []
    for name, builder in ((FMNIST, build_fashion_mnist), (DIGITS, build_digits), (MINI, build_mini)):
        if name == DIGITS and FMNIST in built:
            continue  # one class-level set is enough: digits only stand in for a missing Fashion-MNIST
        if is_built(root, name):
            built.append(name)
            continue
        say(f"[retrieval] building stand-in {name} under {root}")
        if builder(root / name, say):
            built.append(name)
    return built


def is_built(root: Path, name: str) -> bool:
    meta = root / name / "standin.json"
    if not (gnd_path(root, name).is_file() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("version") == VERSION
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------------------------------ writing
def write_official(folder: Path, name: str, images: dict[str, Image.Image], imlist: list[str], qimlist: list[str],
                   gnd: list[dict], about: dict) -> None:
    """``folder/jpg/<n>.jpg`` for every image, then ``standin.json`` and ``gnd_<name>.pkl`` (last: it marks completion)."""
    jpg = folder / "jpg"
    jpg.mkdir(parents=True, exist_ok=True)
    for key, image in images.items():
        image.convert("RGB").save(jpg / f"{key}{EXT}", quality=JPEG_QUALITY)
    data = {"imlist": list(imlist), "qimlist": list(qimlist),
            "gnd": [{"bbx": [float(v) for v in g["bbx"]], "easy": [int(i) for i in g["easy"]],
                     "hard": [int(i) for i in g["hard"]], "junk": [int(i) for i in g["junk"]]} for g in gnd]}
    write_json(folder / "standin.json", {"version": VERSION, "seed": SEED, **about})
    atomic_write(folder / f"gnd_{name}.pkl", lambda tmp: tmp.write_bytes(pickle.dumps(data, protocol=2)))


def assemble(db: list[tuple[str, Image.Image]], queries: list[tuple[str, Image.Image, list, dict[str, list[str]]]],
             rng: np.random.Generator):
    """Shuffle the database (seeded) and turn each query's easy/hard/junk *names* into database ids."""
    order = rng.permutation(len(db))
    imlist = [db[i][0] for i in order]
    index = {n: i for i, n in enumerate(imlist)}
    images = {n: im for n, im in db}
    gnd = []
    for qname, qimage, bbx, parts in queries:
        images[qname] = qimage
        gnd.append({"bbx": bbx, **{k: sorted(index[n] for n in parts.get(k, [])) for k in ("easy", "hard", "junk")}})
    return images, imlist, [q[0] for q in queries], gnd


# ----------------------------------------------------------------------------------- R1 class level
def build_fashion_mnist(folder: Path, say=print, per_class_q: int = 10, per_class_db: int = 50, size: int = 112) -> bool:
    """R1 from Fashion-MNIST: test images query train images (disjoint by construction)."""
    from lorevit.data import build_dataset
    from lorevit.data.registry import DatasetError

    try:
        test, train = build_dataset("fashion-mnist", "test"), build_dataset("fashion-mnist", "train")
    except DatasetError as err:
        say(f"[retrieval] {FMNIST} skipped: Fashion-MNIST not found ({str(err).splitlines()[0]})")
        return False
    return build_class_level(folder, FMNIST, ("fmnist_test", "fmnist_train"), (test.items, test.targets),
                             (train.items, train.targets), "Fashion-MNIST (test queries, train database)", say,
                             per_class_q, per_class_db, size)


def build_digits(folder: Path, say=print, per_class_q: int = 10, per_class_db: int = 50, size: int = 112) -> bool:
    """R1 from scikit-learn's digits (1,797 8×8 images): a seeded split into a query pool and a database pool."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images * (255 / 16)).round().astype(np.uint8)  # N, 8, 8 (values 0..16)
    split = np.random.default_rng(SEED + 1).random(len(pixels)) < 0.3  # ~30 % may become queries
    pools = [(pixels[m], digits.target[m]) for m in (split, ~split)]
    ids = [np.flatnonzero(m) for m in (split, ~split)]
    return build_class_level(folder, DIGITS, ("digits_query", "digits_db"), *pools, "scikit-learn digits (disjoint query/database pools)",
                             say, per_class_q, per_class_db, size, ids=ids)


def build_class_level(folder: Path, name: str, prefixes: tuple[str, str], query_pool, db_pool, source: str, say=print,
                      per_class_q: int = 10, per_class_db: int = 50, size: int = 112, ids=None) -> bool:
    """Per class: ``per_class_q`` queries from ``query_pool``; ``per_class_db`` database images from
    ``db_pool``, the first half as they are (easy), the second half rotated/shrunk/tinted (hard)."""
    (q_items, q_targets), (d_items, d_targets) = query_pool, db_pool
    q_names, d_names = ids if ids is not None else (np.arange(len(q_items)), np.arange(len(d_items)))
    rng = np.random.default_rng(SEED)
    queries, db = [], []
    for c in np.unique(np.asarray(q_targets)):
        q_ids = rng.choice(np.flatnonzero(np.asarray(q_targets) == c), per_class_q, replace=False)
        d_ids = rng.choice(np.flatnonzero(np.asarray(d_targets) == c), per_class_db, replace=False)
        names = {"easy": [], "hard": []}
        for j, i in enumerate(d_ids):
            kind = "easy" if j < per_class_db // 2 else "hard"
            image = _upscale(d_items[i], size)
            if kind == "hard":
                image = _hard_class_view(image, rng)
            key = f"{prefixes[1]}_{int(d_names[i]):05d}"
            names[kind].append(key)
            db.append((key, image))
        for i in q_ids:
            image = _upscale(q_items[i], size)
            queries.append((f"{prefixes[0]}_{int(q_names[i]):05d}", image, _object_box(image), names))
    images, imlist, qimlist, gnd = assemble(db, queries, rng)
    write_official(folder, name, images, imlist, qimlist, gnd,
                   {"kind": "R1 class-level", "source": source, "size": size, "queries": len(qimlist),
                    "database": len(imlist), "easy": "same class, as is",
                    "hard": "same class, rotated 90/180/270, shrunk 50-70%, tinted", "junk": "none"})
    say(f"[retrieval] {name}: {len(qimlist)} queries, {len(imlist)} database images")
    return True


def _upscale(pixels: np.ndarray, size: int) -> Image.Image:
    return Image.fromarray(np.asarray(pixels, dtype=np.uint8)).resize((size, size), Image.BICUBIC).convert("RGB")


def _object_box(image: Image.Image) -> list[float]:
    """The box of the non-background pixels (zero-based [x1, y1, x2, y2], x2/y2 exclusive)."""
    mask = np.asarray(image.convert("L")) > 20  # H, W
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return [0.0, 0.0, float(image.width), float(image.height)]
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _hard_class_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    size = image.width
    s = int(round(size * rng.uniform(0.5, 0.7)))
    small = image.rotate(90 * int(rng.integers(1, 4)), expand=True).resize((s, s), Image.BICUBIC)
    tint = rng.uniform(0.4, 1.0, size=3)
    small = Image.fromarray((np.asarray(small, dtype=np.float32) * tint).astype(np.uint8))
    canvas = Image.new("RGB", (size, size))
    canvas.paste(small, (int(rng.integers(0, size - s + 1)), int(rng.integers(0, size - s + 1))))
    return canvas


# -------------------------------------------------------------------------------- R2 instance level
def build_mini(folder: Path, say=print) -> bool:
    pairs = [(q, v if v is None or photos.available([v]) else None) for q, v in photos.available(MINI_PHOTOS)]
    if len(pairs) < 5:
        say(f"[retrieval] {MINI} skipped: only {len(pairs)} source photos found (install opencv-doc, scikit-image)")
        return False
    backgrounds = [photos.to_float(photos.image(b, MAX_SIDE)) for b in photos.available(BACKGROUNDS)] or [None]
    rng = np.random.default_rng(SEED)
    db, queries = [], []
    for q_ref, view_ref in pairs:
        stem = photos.stem(q_ref)
        photo = photos.image(q_ref, MAX_SIDE)
        bbx = (_full_box(photo) if stem == "box" else _query_box(photo, rng))
        names = {"easy": [], "hard": [], "junk": []}
        for kind, count in (("easy", 2), ("hard", 2), ("junk", 1)):
            for j in range(count):
                bg = backgrounds[int(rng.integers(len(backgrounds)))]
                name = f"{stem}_{kind}{j + 1}"
                db.append((name, synthetic_view(photo, bbx, kind, rng, bg)))
                names[kind].append(name)
        if view_ref is not None:
            name = f"{stem}_view2"
            db.append((name, photos.image(view_ref, MAX_SIDE)))
            names["hard"].append(name)
        queries.append((f"{stem}_query", photo, bbx, names))
    for ref in photos.available(MINI_DISTRACTORS):
        db.append((f"distractor_{photos.stem(ref)}", photos.image(ref, MAX_SIDE)))
    images, imlist, qimlist, gnd = assemble(db, queries, rng)
    write_official(folder, MINI, images, imlist, qimlist, gnd,
                   {"kind": "R2 mini instance-level", "queries": len(qimlist), "database": len(imlist),
                    "photos": [p for p, _ in pairs], "second_views": [v for _, v in pairs if v],
                    "easy": "crop, scale 0.8-1.25, rotation <= 10 deg",
                    "hard": "perspective, scale 0.4-0.6, rotation 30-60 deg, colour + blur, over a texture; real second views",
                    "junk": "3-25% of the query box visible"})
    say(f"[retrieval] {MINI}: {len(qimlist)} queries, {len(imlist)} database images")
    return True


def _full_box(photo: Image.Image) -> list[float]:
    return [2.0, 2.0, float(photo.width - 2), float(photo.height - 2)]


def _query_box(photo: Image.Image, rng) -> list[float]:
    """A box over 50–70 % of each side, placed at random (integers, zero-based, x2/y2 exclusive)."""
    w, h = photo.size
    bw, bh = w * rng.uniform(0.5, 0.7), h * rng.uniform(0.5, 0.7)
    x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return [float(round(x1)), float(round(y1)), float(round(x1 + bw)), float(round(y1 + bh))]


def synthetic_view(photo: Image.Image, bbx, kind: str, rng, background: np.ndarray | None) -> Image.Image:
    """One database view of ``photo`` of the given kind (see the module docstring), drawn by rejection sampling."""
    w, h = photo.size
    cx, cy = (bbx[0] + bbx[2]) / 2, (bbx[1] + bbx[3]) / 2
    bw, bh = bbx[2] - bbx[0], bbx[3] - bbx[1]
    size = VIEW_SIZE if w >= h else VIEW_SIZE[::-1]  # one canvas size: equal thumbnails, batched extraction
    fit = min(size[0] / w, size[1] / h)  # photo scale that fits it in the canvas
    for _ in range(200):
        if kind == "easy":
            f = rng.uniform(0.7, 0.95)  # the view spans about f of the photo
            center = (cx + rng.uniform(-0.1, 0.1) * bw, cy + rng.uniform(-0.1, 0.1) * bh)
            H = view_homography(center, size, fit / f * rng.uniform(0.8, 1.25), rng.uniform(-10, 10))
            ok = visible_fraction(H, bbx, size) >= 0.7
        elif kind == "hard":
            f = rng.uniform(0.8, 1.0)
            center = (cx + rng.uniform(-0.15, 0.15) * bw, cy + rng.uniform(-0.15, 0.15) * bh)
            p = rng.uniform(0.4, 0.8, size=2) * rng.choice([-1, 1], size=2) / max(size)
            angle = rng.uniform(30, 60) * rng.choice([-1, 1])
            H = view_homography(center, size, fit / f * rng.uniform(0.4, 0.6), angle, p)
            ok = visible_fraction(H, bbx, size) >= 0.7
        else:  # junk: mostly outside the query box
            f = rng.uniform(0.4, 0.6)
            center = (rng.uniform(0, w), rng.uniform(0, h))
            H = view_homography(center, size, fit / f * rng.uniform(0.9, 1.2), rng.uniform(-10, 10))
            v = visible_fraction(H, bbx, size)
            covered = visible_fraction(np.linalg.inv(H), [0, 0, size[0], size[1]], (w, h))  # of the view, on the photo
            ok = 0.03 <= v < 0.25 and covered > 0.8
        if ok:
            break
    else:
        raise RuntimeError(f"could not draw a {kind} view of a {w}×{h} photo")
    view = _onto_texture(photo, H, size, background, rng)
    if kind == "hard":
        view = _recolour(view, rng).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    return view


def _onto_texture(photo: Image.Image, H: np.ndarray, size, background: np.ndarray | None, rng) -> Image.Image:
    """``photo`` seen through ``H`` on a ``size`` canvas; pixels off the photo show a real texture
    (tiled, at a random offset), mid-grey without one."""
    src = photos.to_float(photo)  # h, w, 3
    rgba = np.concatenate([src, np.ones_like(src[..., :1])], axis=2)  # h, w, 4: alpha marks the photo
    out = warp(rgba, H, (size[1], size[0]))  # H_v, W_v, 4
    alpha = out[..., 3:]
    if background is None:
        back = np.full_like(out[..., :3], 0.5)
    else:
        bh, bw = background.shape[:2]
        reps = (math.ceil(size[1] / bh) + 1, math.ceil(size[0] / bw) + 1, 1)
        tiled = np.tile(background, reps)
        oy, ox = int(rng.integers(bh)), int(rng.integers(bw))
        back = tiled[oy:oy + size[1], ox:ox + size[0]]
    return photos.from_float(out[..., :3] * alpha + back * (1 - alpha))


def _recolour(view: Image.Image, rng) -> Image.Image:
    hsv = np.asarray(view.convert("HSV"), dtype=np.float32)  # H_v, W_v, 3
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(20, 60) * rng.choice([-1, 1])) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 255)
    hsv[..., 2] = 255 * (hsv[..., 2] / 255) ** rng.uniform(0.6, 1.6)
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
