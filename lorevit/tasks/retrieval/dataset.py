"""Reader of the Revisited Oxford/Paris layout, and how its images enter the ViT (TASKS_SPEC §1).

Layout (the official one, also used by the stand-ins)::

    <data_root>/<name>/gnd_<name>.pkl     {"imlist": [str], "qimlist": [str], "gnd": [{"bbx", "easy", "hard", "junk"}]}
    <data_root>/<name>/jpg/<image>.jpg    every database and query image, flat

The ground truth is a pickle: it is read with :func:`lorevit.utils.safe_pickle.safe_load`, which resolves
only the globals the CIFAR reader allows too — numpy's array reconstructors (spec §1 item 3; real
Revisited Oxford/Paris files hold numpy arrays) and ``_codecs.encode`` (which Python 3 writes for an
array's raw bytes at pickle protocol 2) — and refuses every other one before it is imported; arrays
are converted to lists at once, then the structure is validated. ``allow_numpy=False`` allows no global.

Images (TASKS_SPEC §1 "Queries", §5): RGB, then ``PIL.Image.thumbnail((imsize, imsize), LANCZOS)``
(aspect kept, longer side ≤ imsize, never upsampled), the backbone's mean/std, no crop: DINO's
protocol. ``crop_queries=True`` is the official protocol: the query is first cropped to its ``bbx``
with PIL's ``crop`` semantics — ``bbx = [x1, y1, x2, y2]`` in zero-based pixels of the full-resolution
query; each coordinate is rounded and x2/y2 are excluded, i.e. the crop holds columns
``round(x1) … round(x2) - 1`` and rows ``round(y1) … round(y2) - 1``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from lorevit.tasks.errors import TaskError
from lorevit.utils.paths import safe_component
from lorevit.utils.safe_pickle import BYTES_GLOBALS, NUMPY_GLOBALS, UnsafePickleError, safe_load

OFFICIAL = ("roxford5k", "rparis6k")
EXT = ".jpg"


@dataclass
class RetrievalDataset:
    name: str
    root: Path  # <data_root>/<name>
    imlist: list[str]  # database names (position = database id)
    qimlist: list[str]  # query names, in query order
    gnd: list[dict]  # per query: bbx [x1, y1, x2, y2] (floats), easy/hard/junk (lists of database ids)

    @property
    def images_dir(self) -> Path:
        return self.root / "jpg"

    def image_path(self, name: str) -> Path:
        return self.images_dir / f"{name}{EXT}"

    def db_paths(self) -> list[Path]:
        return [self.image_path(n) for n in self.imlist]

    def query_paths(self) -> list[Path]:
        return [self.image_path(n) for n in self.qimlist]

    def subset(self, queries: Sequence[int]) -> "RetrievalDataset":
        """The same database with only the ``queries`` (indices into qimlist): quick runs."""
        return RetrievalDataset(self.name, self.root, self.imlist, [self.qimlist[i] for i in queries],
                                [self.gnd[i] for i in queries])


def gnd_path(data_root: str | Path, name: str) -> Path:
    return Path(data_root).expanduser() / name / f"gnd_{name}.pkl"


def read_dataset(data_root: str | Path, name: str, allow_numpy: bool = True, check_images: bool = True) -> RetrievalDataset:
    """``<data_root>/<name>/{gnd_<name>.pkl, jpg/}`` → :class:`RetrievalDataset`, validated.

    Raises :class:`TaskError` naming the file for a missing ground truth or images, a pickle that
    asks for any global (or is unreadable), a wrong structure or an index out of range.
    """
    root = Path(data_root).expanduser() / name
    path = gnd_path(data_root, name)
    if not path.is_file():
        hint = ("download it with the official revisitop python/download.py" if name in OFFICIAL
                else "build the stand-ins with `lorevit standins --tasks retrieval`")
        raise TaskError(f"no ground truth {path}: expected <data-root>/{name}/gnd_{name}.pkl beside jpg/; {hint}")
    try:
        raw = safe_load(path, (NUMPY_GLOBALS | BYTES_GLOBALS) if allow_numpy else (), encoding="latin1")
    except UnsafePickleError as err:
        raise TaskError(str(err)) from err
    data = validate_gnd(_plain(raw), path)
    dataset = RetrievalDataset(name, root, data["imlist"], data["qimlist"], data["gnd"])
    if check_images:
        check_image_files(dataset)
    return dataset


def _plain(obj):
    """numpy arrays / scalars (only present when allowed) → Python lists and numbers, recursively."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def validate_gnd(data, path: Path) -> dict:
    """The structure of TASKS_SPEC §1 item 2; unknown keys are ignored. Returns clean copies."""
    def fail(what: str):
        raise TaskError(f"{path}: wrong structure: {what}; expected the revisitop gnd pickle "
                        "{'imlist': [str], 'qimlist': [str], 'gnd': [{'bbx', 'easy', 'hard', 'junk'}]}")

    if not isinstance(data, dict):
        fail(f"the top level is a {type(data).__name__}, not a dict")
    missing = [k for k in ("imlist", "qimlist", "gnd") if k not in data]
    if missing:
        fail(f"missing key(s) {missing}")
    for key in ("imlist", "qimlist"):
        if not isinstance(data[key], list) or not all(isinstance(n, str) for n in data[key]):
            fail(f"'{key}' must be a list of image names (str)")
        for i, n in enumerate(data[key]):  # each becomes jpg/<name>.jpg
            safe_component(n, "image name", f"{path}: {key}[{i}]", TaskError,
                           "fix the file (names are flat file names in jpg/, without .jpg)")
    if not isinstance(data["gnd"], list) or not all(isinstance(g, dict) for g in data["gnd"]):
        fail("'gnd' must be a list of dicts")
    n_db, n_q = len(data["imlist"]), len(data["qimlist"])
    if len(data["gnd"]) != n_q:
        fail(f"len(gnd) = {len(data['gnd'])} differs from len(qimlist) = {n_q}")
    gnd = []
    for i, entry in enumerate(data["gnd"]):
        clean = {}
        for key in ("easy", "hard", "junk"):
            ids = entry.get(key)
            if not isinstance(ids, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in ids):
                fail(f"gnd[{i}]['{key}'] must be a list of int database ids")
            bad = [v for v in ids if not 0 <= v < n_db]
            if bad:
                raise TaskError(f"{path}: gnd[{i}]['{key}'] holds index {bad[0]} out of range [0, {n_db}) "
                                f"of imlist; the file is corrupt or belongs to another dataset")
            clean[key] = list(ids)
        bbx = entry.get("bbx")
        if (not isinstance(bbx, list) or len(bbx) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
                           if not isinstance(v, int) or abs(v) < 2 ** 1000 else False for v in bbx)):
            fail(f"gnd[{i}]['bbx'] must be 4 finite numbers [x1, y1, x2, y2]")
        if not (bbx[0] < bbx[2] and bbx[1] < bbx[3]):
            fail(f"gnd[{i}]['bbx'] = {bbx} needs x1 < x2 and y1 < y2")
        clean["bbx"] = [float(v) for v in bbx]
        gnd.append(clean)
    return {"imlist": list(data["imlist"]), "qimlist": list(data["qimlist"]), "gnd": gnd}


def check_image_files(dataset: RetrievalDataset) -> None:
    if not dataset.images_dir.is_dir():
        raise TaskError(f"no image folder {dataset.images_dir}: every database and query image must be in "
                        f"{dataset.images_dir}/<name>{EXT}")
    missing = [p for p in dataset.query_paths() + dataset.db_paths() if not p.is_file()]
    if missing:
        raise TaskError(f"{len(missing)} image(s) listed in {gnd_path(dataset.root.parent, dataset.name)} are missing, "
                        f"e.g. {missing[0]}; restore the dataset's jpg/ folder")


# ---------------------------------------------------------------------------------------------- images
def crop_box(bbx: Sequence[float]) -> tuple[int, int, int, int]:
    """The integer box PIL's ``Image.crop(bbx)`` uses: every coordinate rounded, x2/y2 excluded."""
    return tuple(int(round(v)) for v in bbx)


def load_image(path: Path, imsize: int | None, bbx: Sequence[float] | None = None) -> Image.Image:
    """RGB image, cropped to ``bbx`` first when given, then thumbnailed to longer side ≤ ``imsize`` (LANCZOS)."""
    try:
        with Image.open(path) as f:
            image = f.convert("RGB")
    except (OSError, ValueError) as err:
        raise TaskError(f"cannot read image {path} ({err}); replace the file") from err
    if bbx is not None:
        image = image.crop(crop_box(bbx))
        if image.width < 1 or image.height < 1:
            raise TaskError(f"query {path}: bbx {list(bbx)} lies outside the {image.width}×{image.height} image")
    if imsize is not None:
        image.thumbnail((imsize, imsize), Image.LANCZOS)
    return image


def size_key(path: Path, bbx: Sequence[float] | None = None) -> tuple[int, int]:
    """The (width, height) an image has before the thumbnail, from its header only: used to group sizes."""
    if bbx is not None:
        x1, y1, x2, y2 = crop_box(bbx)
        return x2 - x1, y2 - y1
    with Image.open(path) as f:
        return f.size


def size_sorted(paths: Sequence[Path], boxes: Sequence | None = None) -> list[int]:
    """An order of ``paths`` that puts equal source sizes (hence equal thumbnails) together, stable."""
    boxes = boxes if boxes is not None else [None] * len(paths)
    keys = [size_key(p, b) for p, b in zip(paths, boxes)]
    return sorted(range(len(paths)), key=lambda i: keys[i])


def iter_tensors(paths: Sequence[Path], order: Sequence[int], imsize: int | None, mean, std,
                 boxes: Sequence | None = None) -> Iterator:
    from lorevit.tasks.features import to_tensor

    for i in order:
        yield to_tensor(load_image(paths[i], imsize, boxes[i] if boxes is not None else None), mean, std)  # 3, H, W
