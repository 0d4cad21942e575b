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
Seeded, deterministic, idempotent (a finished build is marked by ``standins.json``).

What they show and do not show: x/y and W/H order, upsampling alignment, thresholds and aggregation,
and geometric matching under real viewpoint and illumination change — *not* semantic intra-class
matching, which is SPair's point; numbers are not comparable to the paper's.
"""
from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import numpy as np

from lorevit.utils.io import write_json
from lorevit.tasks.errors import TaskError

NAME = "spair-geometric"
VERSION = 1
SEED = 0
MAX_KPS = 30
GRID = 8  # grid points per side before filtering
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "china", "flower")
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
            Image.fromarray(_uint8(pixels)).save(folder / file, quality=95)
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


def _uint8(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.rint(pixels * 255 if pixels.max() <= 1.0 else pixels), 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return pixels[..., :3]


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


def apply_homography(M: np.ndarray, kps: np.ndarray) -> np.ndarray:
    """[x, y] (N, 2) through a 3 × 3 homography (pixel coordinates, x right, y down)."""
    pts = np.concatenate([np.asarray(kps, dtype=np.float64), np.ones((len(kps), 1))], axis=1) @ M.T
    return pts[:, :2] / pts[:, 2:3]


def read_opencv_matrix(path: Path, name: str | None = None) -> np.ndarray:
    """A matrix from an OpenCV FileStorage XML (``<rows>``, ``<cols>``, ``<data>``), parsed with ElementTree."""
    tree = ET.parse(path).getroot()
    node = tree.find(name) if name else next(iter(tree))
    if node is None:
        raise TaskError(f"{path}: no matrix {name!r}")
    rows, cols = int(node.findtext("rows")), int(node.findtext("cols"))
    values = np.array([float(v) for v in re.split(r"\s+", node.findtext("data").strip())])
    return values.reshape(rows, cols)


# ---- C1: graffiti ------------------------------------------------------------------------------------------

def _read(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise TaskError(f"stand-in source {path} is missing: install Debian's opencv-doc (`make setup` does)")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def graffiti(writer: SPairWriter) -> None:
    """C1: graf1 → graf3 through H1to3p, and graf3 → graf1 through its inverse."""
    g1, g3 = _read(OPENCV_DATA / "graf1.png"), _read(OPENCV_DATA / "graf3.png")
    M = read_opencv_matrix(OPENCV_DATA / "H1to3p.xml", "H13")
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
    left, right = _read(OPENCV_DATA / "aloeL.jpg"), _read(OPENCV_DATA / "aloeR.jpg")
    from PIL import Image

    with Image.open(OPENCV_DATA / "aloeGT.png") as im:
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

def photo(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    return _uint8(getattr(skimage.data, name)())


def warp(image: np.ndarray, M: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` warped by the homography M (source → target pixels) onto an (H, W) canvas, black outside."""
    from skimage.transform import ProjectiveTransform
    from skimage.transform import warp as sk_warp

    out = sk_warp(image, ProjectiveTransform(M).inverse, output_shape=shape, order=1, preserve_range=True, cval=0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def random_homography(W: int, H: int, rng: np.random.Generator, strength: float) -> tuple[np.ndarray, tuple[int, int]]:
    """A perspective warp: anisotropic scale 0.8–1.25 per axis and corners moved inward by up to ``strength``."""
    sx, sy = rng.uniform(0.8, 1.25, size=2)
    Wt, Ht = int(round(W * sx)), int(round(H * sy))
    src = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], dtype=np.float64)
    dst = src * [(Wt - 1) / (W - 1), (Ht - 1) / (H - 1)]
    jitter = rng.uniform(0, strength, size=(4, 2)) * [Wt - 1, Ht - 1]
    dst = dst + jitter * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])  # every corner moves inward
    return homography_from_corners(src, dst), (Ht, Wt)


def homography_from_corners(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3 × 3 homography (h₃₃ = 1) taking 4 points ``src`` to ``dst`` exactly (an 8 × 8 linear solve)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def rotation(W: int, H: int, degrees: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Rotation by ``degrees`` (counter-clockwise on screen) about the image centre, onto the expanded canvas."""
    t = np.deg2rad(degrees)
    R = np.array([[np.cos(t), np.sin(t), 0], [-np.sin(t), np.cos(t), 0], [0, 0, 1]])  # y points down
    corners = apply_homography(R, np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], dtype=np.float64))
    low, high = corners.min(axis=0), corners.max(axis=0)
    shift = np.array([[1, 0, -low[0]], [0, 1, -low[1]], [0, 0, 1]])
    size = np.rint(high - low).astype(int) + 1
    return shift @ R, (int(size[1]), int(size[0]))


def flip(W: int, H: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Horizontal mirror: x → W − 1 − x."""
    return np.array([[-1.0, 0, W - 1], [0, 1, 0], [0, 0, 1]]), (H, W)


def warps(writer: SPairWriter, rng: np.random.Generator) -> None:
    """C4: per photo two perspective warps (mild, strong), a horizontal flip and one rotation."""
    for k, name in enumerate(PHOTOS):
        image = photo(name)
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
