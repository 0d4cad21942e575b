"""Reader of the official SPair-71k layout (TASKS_SPEC §2, "Layout" and "Pair JSON fields").

    SPair-71k/
      JPEGImages/<category>/<name>.jpg
      PairAnnotation/{trn,val,test}/<pair>.json     pair = "<id>-<src stem>-<trg stem>:<category>"
      Layout/large/{trn,val,test}.txt               pair names without .json (DHPF/CATs read "large")
      ImageAnnotation/<category>/<name>.json        (optional, not needed here)

Pair JSON fields used: ``category``, ``src_imname``/``trg_imname``, ``src_imsize``/``trg_imsize`` as
**[W, H, C]**, ``src_bndbox``/``trg_bndbox`` as [x1, y1, x2, y2], ``src_kps``/``trg_kps`` as aligned
rows of [x, y] (row i is the same part in both images). Everything is checked; a bad pair is a
:class:`TaskError` naming it, or (``skip_bad=True``) skipped and reported in :attr:`PairSet.skipped`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lorevit.tasks.errors import TaskError
from lorevit.utils.paths import safe_component

SPLITS = ("trn", "val", "test")


@dataclass
class Pair:
    name: str  # the pair file stem, e.g. "000001-2008_000585-2008_000674:aeroplane"
    category: str
    src_image: Path
    trg_image: Path
    src_size: tuple[int, int]  # (H, W) — tensor order; the JSON stores [W, H, C]
    trg_size: tuple[int, int]
    src_bbox: np.ndarray  # 4: x1, y1, x2, y2
    trg_bbox: np.ndarray
    src_kps: np.ndarray  # N, 2: [x, y]
    trg_kps: np.ndarray  # N, 2: [x, y]

    @property
    def bbox_side(self) -> float:
        """T = max(x2 − x1, y2 − y1) of the target box (no +1): PCK's scale."""
        x1, y1, x2, y2 = self.trg_bbox
        return float(max(x2 - x1, y2 - y1))


@dataclass
class PairSet:
    root: Path
    split: str
    pairs: list[Pair]
    skipped: list[dict] = field(default_factory=list)  # {"pair": name, "reason": message}

    @property
    def categories(self) -> list[str]:
        return sorted({p.category for p in self.pairs})


def find_root(data_root: str | Path) -> Path:
    """``data_root`` itself when it holds the SPair layout, else ``data_root/SPair-71k``."""
    root = Path(data_root).expanduser()
    for candidate in (root, root / "SPair-71k"):
        if (candidate / "PairAnnotation").is_dir() and (candidate / "JPEGImages").is_dir():
            return candidate
    raise TaskError(f"--data-root {root}: no SPair-71k layout there (expected PairAnnotation/ and JPEGImages/ in it "
                    "or in its SPair-71k/ folder); download SPair-71k from "
                    "https://cvlab.postech.ac.kr/research/SPair-71k/ or build the stand-ins with `lorevit standins`")


def pair_names(root: Path, split: str) -> list[str]:
    """The split's pair names: Layout/large/<split>.txt when present, else the PairAnnotation/<split>/ files."""
    if split not in SPLITS:
        raise TaskError(f"--split {split!r} is not a SPair-71k split; choose from {', '.join(SPLITS)}")
    layout = root / "Layout" / "large" / f"{split}.txt"
    if layout.is_file():
        return [safe_component(line.strip(), "pair name", f"{layout} line {n}", TaskError, "fix the list")
                for n, line in enumerate(read_list(layout), 1) if line.strip()]
    folder = root / "PairAnnotation" / split
    if not folder.is_dir():
        raise TaskError(f"{root}: neither {layout} nor {folder} exists; is this the SPair-71k folder?")
    return sorted(p.stem for p in folder.glob("*.json"))


def read_list(path: Path) -> list[str]:
    """The lines of a UTF-8 list file; a file that is not text is a TaskError naming it."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise TaskError(f"{path} is not a UTF-8 text file ({err}); restore the list from the dataset") from None


def category_of(name: str) -> str:
    return name.rsplit(":", 1)[1] if ":" in name else ""


def read_pairs(data_root: str | Path, split: str = "test", categories: list[str] | None = None,
               skip_bad: bool = False, check_images: bool = True) -> PairSet:
    """Every (valid) pair of ``split``, filtered to ``categories`` (None: all), in layout order."""
    root = find_root(data_root)
    names = pair_names(root, split)
    if categories:
        known = {category_of(n) for n in names}
        unknown = sorted(set(categories) - known)
        if unknown:
            raise TaskError(f"--category {', '.join(unknown)}: not in split {split!r} of {root} "
                            f"(categories there: {', '.join(sorted(known)) or 'none'})")
        names = [n for n in names if category_of(n) in set(categories)]
    pairs, skipped = [], []
    for name in names:
        try:
            pairs.append(read_pair(root, split, name, check_images))
        except TaskError as err:
            if not skip_bad:
                raise
            skipped.append({"pair": name, "reason": str(err)})
    if not pairs:
        raise TaskError(f"no usable pair in split {split!r} of {root}"
                        + (f" ({len(skipped)} skipped as bad)" if skipped else ""))
    return PairSet(root, split, pairs, skipped)


def read_pair(root: Path, split: str, name: str, check_images: bool = True) -> Pair:
    """One pair JSON → :class:`Pair`, every field checked (TaskError naming the pair and the fix)."""
    path = root / "PairAnnotation" / split / f"{name}.json"
    if not path.is_file():
        raise TaskError(f"pair {name}: annotation file {path} is missing (listed in Layout/large/{split}.txt)")
    try:
        ann = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TaskError(f"pair {name}: {path} is not valid JSON ({err})") from err
    fields = ("category", "src_imname", "trg_imname", "src_imsize", "trg_imsize", "src_bndbox", "trg_bndbox",
              "src_kps", "trg_kps")
    if not isinstance(ann, dict):
        raise TaskError(f"pair {name}: {path} holds a JSON {type(ann).__name__}, not the SPair pair object")
    missing = [f for f in fields if f not in ann]
    if missing:
        raise TaskError(f"pair {name}: {path} lacks field(s) {', '.join(missing)}")
    category = safe_component(ann["category"], "category", f"pair {name}: {path}", TaskError)
    sides = {}
    for side in ("src", "trg"):
        imname = safe_component(ann[f"{side}_imname"], f"{side}_imname", f"pair {name}: {path}", TaskError)
        image = root / "JPEGImages" / category / imname
        size = _size(name, side, ann[f"{side}_imsize"])
        if check_images:
            _check_image(name, image, size)
        sides[side] = (image, size, _bbox(name, side, ann[f"{side}_bndbox"], size), _kps(name, side, ann[f"{side}_kps"], size))
    if len(sides["src"][3]) != len(sides["trg"][3]):
        raise TaskError(f"pair {name}: src_kps has {len(sides['src'][3])} points but trg_kps has {len(sides['trg'][3])}; "
                        "the rows must be aligned (row i = the same part in both images)")
    if len(sides["src"][3]) == 0:
        raise TaskError(f"pair {name}: no keypoints (src_kps and trg_kps are empty); PCK needs at least one")
    (si, ss, sb, sk), (ti, ts, tb, tk) = sides["src"], sides["trg"]
    return Pair(name, category, si, ti, ss, ts, sb, tb, sk, tk)


def _size(name: str, side: str, value) -> tuple[int, int]:
    try:
        if not isinstance(value, list) or not all(_is_number(v) for v in value[:2]):
            raise TypeError("not a list of numbers")
        W, H = int(value[0]), int(value[1])
    except (TypeError, ValueError, IndexError, OverflowError) as err:
        raise TaskError(f"pair {name}: {side}_imsize {value!r} is not [W, H, C]") from err
    if W < 1 or H < 1:
        raise TaskError(f"pair {name}: {side}_imsize {value!r} has a zero or negative side")
    return H, W


def _check_image(name: str, image: Path, size: tuple[int, int]) -> None:
    from PIL import Image, UnidentifiedImageError

    if not image.is_file():
        raise TaskError(f"pair {name}: image {image} is missing")
    try:
        with Image.open(image) as im:
            W, H = im.size
    except (UnidentifiedImageError, OSError) as err:
        raise TaskError(f"pair {name}: image {image} cannot be read ({err})") from err
    if (H, W) != size:
        raise TaskError(f"pair {name}: image {image} is {W}×{H} px but the annotation says [W, H] = "
                        f"[{size[1]}, {size[0]}]; the annotation and the image do not belong together")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numbers(name: str, field: str, value, what: str) -> np.ndarray:
    """``value`` (nested JSON lists of numbers) as a float64 array, else a TaskError: numpy's own errors
    (ragged lists, strings, objects) never reach the user."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise TaskError(f"pair {name}: {field} {value!r} is not {what}") from None


def _bbox(name: str, side: str, value, size: tuple[int, int]) -> np.ndarray:
    box = _numbers(name, f"{side}_bndbox", value, "[x1, y1, x2, y2]")
    if box.shape != (4,) or not np.isfinite(box).all():
        raise TaskError(f"pair {name}: {side}_bndbox {value!r} is not [x1, y1, x2, y2]")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise TaskError(f"pair {name}: {side}_bndbox {value!r} has zero size (need x2 > x1 and y2 > y1); "
                        "PCK's threshold is α × its longer side")
    return box


def _kps(name: str, side: str, value, size: tuple[int, int]) -> np.ndarray:
    empty = isinstance(value, list) and not value  # [] : no points
    kps = np.zeros((0, 2)) if empty else _numbers(name, f"{side}_kps", value, "a list of [x, y] points")
    if kps.ndim != 2 or kps.shape[1] != 2 or not np.isfinite(kps).all():
        raise TaskError(f"pair {name}: {side}_kps is not a list of [x, y] points")
    H, W = size
    outside = (kps[:, 0] < 0) | (kps[:, 0] > W - 1) | (kps[:, 1] < 0) | (kps[:, 1] > H - 1)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise TaskError(f"pair {name}: {side}_kps[{i}] = {kps[i].tolist()} lies outside the {W}×{H} image "
                        "(x must be in [0, W−1], y in [0, H−1]); check the x/y order of the annotation")
    return kps


def limit_per_category(pairs: list, max_pairs: int | None) -> list:
    """The first ``max_pairs`` pairs of each category, layout order kept (None: all)."""
    if max_pairs is None:
        return list(pairs)
    seen: dict[str, int] = {}
    kept = []
    for p in pairs:
        seen[p.category] = seen.get(p.category, 0) + 1
        if seen[p.category] <= max_pairs:
            kept.append(p)
    return kept
