"""Offline stand-ins for SPair-71k: real image pairs with exact geometric ground truth (TASKS_SPEC §4, C1–C4).

Written in the SPair-71k on-disk layout (``JPEGImages/<category>/``, ``PairAnnotation/test/<pair>.json``,
``Layout/large/test.txt``), so :mod:`.spair` reads them unchanged. Categories:

- ``graffiti`` (C1): opencv-doc graf1 ↔ graf3 through the homography ``H1to3p.xml`` (and its inverse);
- ``motorcycle`` (C2): scikit-image's rectified stereo pair, disparity ``motorcycle_disp.npz``
  (x_R = x_L − d, inf = unknown); left → right, and right → left by inverting d along each row;
- ``aloe`` (C3): Middlebury Aloe from opencv-doc, ``aloeGT.png`` = disparity in full-resolution pixels
  (0 = unknown; the scale is checked photometrically at build time and stored in ``standins.json``);
- ``homography``, ``flip``, ``rotation`` (C4): known warps of chelsea, astronaut, coffee, rocket, china
  and flower (two random perspective warps with anisotropic scale, a horizontal flip, one rotation of
  30–90° on an expanded canvas).

Keypoints: a regular grid on the source (integer pixels) whose ground truth lands inside the target
(and, for stereo, where the disparity is known); at most :data:`MAX_KPS` per pair, an even subset.
Target keypoints keep their exact sub-pixel positions. Boxes: the box of each side's keypoints.
Photos come from :mod:`.photos` (a missing opencv-doc is one TaskError naming the fix; the Motorcycle set
with its disparity from ``skimage.data.stereo_motorcycle``); the homographies, warps and the OpenCV XML
reader are :mod:`.geometry`'s; the disparity maps and keypoint grids are here.
Seeded, deterministic, idempotent (a finished build is marked by ``standins.json``).

What they show and do not show: x/y and W/H order, upsampling alignment, thresholds and aggregation,
and geometric matching under real viewpoint and illumination change — *not* semantic intra-class
matching, which is SPair's point; numbers are not comparable to the paper's.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from lorevit.utils.io import write_json
from lorevit.tasks.errors import TaskError
from lorevit.tasks.standins import photos
from lorevit.tasks.standins.geometry import apply_homography, flip, random_homography, read_opencv_matrix, rotation, warp

NAME = "spair-geometric"
VERSION = 1
SEED = 0
MAX_KPS = 30
GRID = 8  # grid points per side before filtering
PHOTOS = ("sk:chelsea.png", "sk:astronaut.png", "sk:coffee.png", "sk:rocket.jpg", "sl:china.jpg", "sl:flower.jpg")
ROTATIONS = (30, 45, 60, 90, 75, 90)  # degrees, one per photo (90 twice: W and H swap exactly)


def build(root: Path, say: Callable[[str], None] = print) -> list[str]:
    """Build ``root/spair-geometric`` (SPair layout) unless already complete; returns [its path]."""
    root = Path(root)
    target = root / NAME
    manifest = target / "standins.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("version") == VERSION:
        return [str(target)]
    tmp = root / f".{NAME}.building"
    if tmp.exists():
        shutil.rmtree(tmp)
    say(f"[correspondence] building stand-ins (C1–C4, real images, exact GT) under {target}")
    writer = SPairWriter(tmp)
    checks = {}
    rng = np.random.default_rng(SEED)
    graffiti(writer)
    motorcycle(writer)
    checks["aloe_disparity_scale"] = aloe(writer)
    warps(writer, rng)
    writer.finish()
    if target.exists():
        shutil.rmtree(target)
    write_json(tmp / "standins.json", {"version": VERSION, "seed": SEED, "pairs": len(writer.names),
                                       "categories": writer.counts(), "checks": checks,
                                       "bbox": "box of each side's keypoints", "max_kps": MAX_KPS})
    tmp.rename(target)
    say(f"[correspondence] {len(writer.names)} pairs in {len(writer.counts())} categories")
    return [str(target)]


class SPairWriter:
    """Writes images and pair JSONs in the SPair-71k layout (split ``test``, ``Layout/large/test.txt``)."""

    def __init__(self, root: Path):
        self.root = root
        self.names: list[str] = []
        self.categories: list[str] = []
        self.images: set[tuple[str, str]] = set()

    def image(self, category: str, name: str, pixels: np.ndarray) -> str:
        from PIL import Image

        file = f"{name}.jpg"
        if (category, file) not in self.images:
            folder = self.root / "JPEGImages" / category
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(photos.to_uint8(pixels)).save(folder / file, quality=95)
            self.images.add((category, file))
        return file

    def pair(self, category: str, src_name: str, src: np.ndarray, trg_name: str, trg: np.ndarray,
             src_kps: np.ndarray, trg_kps: np.ndarray) -> str:
        """One pair: src_kps (N, 2) integer [x, y] in src, trg_kps (N, 2) exact [x, y] in trg."""
        if len(src_kps) < 3:
            raise TaskError(f"stand-in {category}/{src_name}→{trg_name}: only {len(src_kps)} keypoints survive")
        pair_id = len(self.names) + 1
        name = f"{pair_id:06d}-{src_name}-{trg_name}:{category}"
        ann = {"pair_id": pair_id, "filename": name, "category": category,
               "src_imname": self.image(category, src_name, src), "trg_imname": self.image(category, trg_name, trg),
               "src_imsize": [src.shape[1], src.shape[0], 3], "trg_imsize": [trg.shape[1], trg.shape[0], 3],
               "src_bndbox": _box(src_kps), "trg_bndbox": _box(trg_kps),
               "src_pose": "Unspecified", "trg_pose": "Unspecified",
               "src_kps": np.asarray(src_kps, dtype=int).tolist(),
               "trg_kps": [[round(float(x), 3), round(float(y), 3)] for x, y in trg_kps],
               "kps_ids": [str(i) for i in range(len(src_kps))], "mirror": 0,
               "viewpoint_variation": 0, "scale_variation": 0, "truncation": 0, "occlusion": 0}
        folder = self.root / "PairAnnotation" / "test"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(ann))
        self.names.append(name)
        self.categories.append(category)
        return name

    def finish(self) -> None:
        layout = self.root / "Layout" / "large"
        layout.mkdir(parents=True, exist_ok=True)
        (layout / "test.txt").write_text("".join(n + "\n" for n in self.names))
        for split in ("trn", "val"):
            (layout / f"{split}.txt").write_text("")

    def counts(self) -> dict[str, int]:
        return {c: self.categories.count(c) for c in dict.fromkeys(self.categories)}


def _box(kps: np.ndarray) -> list[float]:
    kps = np.asarray(kps, dtype=np.float64)
    x1, y1 = kps.min(axis=0)
    x2, y2 = kps.max(axis=0)
    return [round(float(v), 3) for v in (x1, y1, x2, y2)]


# ---- keypoints ---------------------------------------------------------------------------------------------

def grid_points(W: int, H: int, n: int = GRID, margin: float = 0.06) -> np.ndarray:
    """An n × n grid of integer [x, y] pixels inside a (W, H) image, ``margin`` of each side left out."""
    xs = np.rint(np.linspace(margin * (W - 1), (1 - margin) * (W - 1), n))
    ys = np.rint(np.linspace(margin * (H - 1), (1 - margin) * (H - 1), n))
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.int64)


def inside(kps: np.ndarray, W: int, H: int, margin: float = 1.0) -> np.ndarray:
    return ((kps[:, 0] >= margin) & (kps[:, 0] <= W - 1 - margin) & (kps[:, 1] >= margin) & (kps[:, 1] <= H - 1 - margin))


def keep(src: np.ndarray, trg: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The valid rows, at most MAX_KPS of them spread evenly (deterministic)."""
    idx = np.flatnonzero(valid)
    if len(idx) > MAX_KPS:
        idx = idx[np.rint(np.linspace(0, len(idx) - 1, MAX_KPS)).astype(int)]
    return src[idx], trg[idx]


# ---- C1: graffiti ------------------------------------------------------------------------------------------

def graffiti(writer: SPairWriter) -> None:
    """C1: graf1 → graf3 through H1to3p, and graf3 → graf1 through its inverse."""
    g1, g3 = photos.array("cv:graf1.png"), photos.array("cv:graf3.png")
    M = read_opencv_matrix(photos.path("cv:H1to3p.xml"), "H13")
    for (a, A), (b, B), H in ((("graf1", g1), ("graf3", g3), M), (("graf3", g3), ("graf1", g1), np.linalg.inv(M))):
        src = grid_points(A.shape[1], A.shape[0])
        trg = apply_homography(H, src)
        writer.pair("graffiti", a, A, b, B, *keep(src, trg, inside(trg, B.shape[1], B.shape[0])))


# ---- C2, C3: stereo ----------------------------------------------------------------------------------------

def stereo_pairs(writer: SPairWriter, category: str, left: np.ndarray, right: np.ndarray, disp: np.ndarray,
                 names=("left", "right")) -> None:
    """Left → right (x_R = x_L − d at grid points with known d) and right → left (d inverted per row)."""
    H, W = disp.shape
    known = np.isfinite(disp) & (disp > 0)
    src = grid_points(W, H)
    d = np.where(known, disp, np.nan)[src[:, 1], src[:, 0]]
    trg = np.stack([src[:, 0] - d, src[:, 1]], axis=1)
    valid = np.isfinite(d) & inside(np.nan_to_num(trg, nan=-1), W, H)
    writer.pair(category, f"{category}_{names[0]}", left, f"{category}_{names[1]}", right, *keep(src, trg, valid))
    src = grid_points(W, H)
    trg = invert_disparity(np.where(known, disp, np.nan), src)
    valid = np.isfinite(trg[:, 0]) & inside(np.nan_to_num(trg, nan=-1), W, H)
    writer.pair(category, f"{category}_{names[1]}", right, f"{category}_{names[0]}", left, *keep(src, trg, valid))


def invert_disparity(disp: np.ndarray, right_kps: np.ndarray) -> np.ndarray:
    """Left-image [x, y] of right-image pixels: the x_L on the row with x_L − d(x_L) nearest x_R (≤ 0.5 px),
    the nearest surface (largest d) when several see it; sub-pixel by the residual; NaN when none."""
    H, W = disp.shape
    xs = np.arange(W, dtype=np.float64)
    out = np.full((len(right_kps), 2), np.nan)
    for i, (xr, y) in enumerate(np.asarray(right_kps)):
        row = disp[int(y)]
        landing = xs - row  # where each left pixel lands in the right image (NaN: unknown)
        close = np.abs(landing - xr) <= 0.5
        if close.any():
            j = np.flatnonzero(close)[np.argmax(row[close])]
            out[i] = [xs[j] + (xr - landing[j]), y]
    return out


def motorcycle(writer: SPairWriter) -> None:
    """C2: scikit-image's Motorcycle (Middlebury 2014) with its disparity (inf = unknown)."""
    import skimage.data

    left, right, disp = skimage.data.stereo_motorcycle()
    stereo_pairs(writer, "motorcycle", left, right, disp.astype(np.float64))


def aloe(writer: SPairWriter) -> dict:
    """C3: Middlebury Aloe; checks that aloeGT.png is disparity in full-resolution pixels, then writes the pairs."""
    left, right = photos.array("cv:aloeL.jpg"), photos.array("cv:aloeR.jpg")
    from PIL import Image

    with Image.open(photos.path("cv:aloeGT.png")) as im:
        disp = np.asarray(im, dtype=np.float64)
    if disp.ndim == 3:
        disp = disp[..., 0]
    check = disparity_scale_check(left, right, disp)
    if min(check, key=check.get) != "1":
        raise TaskError(f"aloeGT.png does not look like full-resolution disparity (photometric error by scale: {check})")
    stereo_pairs(writer, "aloe", left, right, np.where(disp > 0, disp, np.nan))
    return check


def disparity_scale_check(left: np.ndarray, right: np.ndarray, disp: np.ndarray) -> dict[str, float]:
    """Mean |L(x, y) − R(x − s·d, y)| over known pixels for s ∈ {0.5, 1, 2} and 0 (no motion): s = 1 must win."""
    H, W = disp.shape
    y, x = np.nonzero(disp > 0)
    gray_l, gray_r = left.astype(np.float64).mean(-1), right.astype(np.float64).mean(-1)
    out = {}
    for s in (0.0, 0.5, 1.0, 2.0):
        xr = np.rint(x - s * disp[y, x]).astype(int)
        ok = (xr >= 0) & (xr < W)
        out[f"{s:g}"] = round(float(np.abs(gray_l[y[ok], x[ok]] - gray_r[y[ok], xr[ok]]).mean()), 3)
    return out


# ---- C4: known warps of real photos ------------------------------------------------------------------------

def warps(writer: SPairWriter, rng: np.random.Generator) -> None:
    """C4: per photo two perspective warps (mild, strong), a horizontal flip and one rotation."""
    for k, ref in enumerate(PHOTOS):
        name, image = photos.stem(ref), photos.array(ref)
        H, W = image.shape[:2]
        jobs = [("homography", f"{name}_persp1", *random_homography(W, H, rng, 0.10)),
                ("homography", f"{name}_persp2", *random_homography(W, H, rng, 0.22)),
                ("flip", f"{name}_flip", *flip(W, H)),
                ("rotation", f"{name}_rot{ROTATIONS[k]}", *rotation(W, H, ROTATIONS[k]))]
        for category, target_name, M, shape in jobs:
            target = warp(image, M, shape)
            src = grid_points(W, H)
            trg = apply_homography(M, src)
            writer.pair(category, name, image, target_name, target, *keep(src, trg, inside(trg, shape[1], shape[0])))
