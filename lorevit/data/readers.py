"""A few generic readers; the registry declares datasets by parameterising them.

A reader is a small frozen dataclass called as ``reader(root, base, split) -> Records``:
``root`` is the dataset root the user gave (or the default), ``base`` the folder under it where
the dataset's files were found, ``split`` is ``"train"`` or ``"test"``. A *class source* is
called as ``source(root, base) -> (keys, names)``: the ordered class keys (folder names,
wnids, variant names) that define label ``i``, and their readable names.

Readers raise :class:`ReadError` for files that are missing or malformed; ``build_dataset``
adds the expected layout and the download hint to the message.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lorevit.data.dataset import DatasetError
from lorevit.data.names import clean_classname, imagenet_classnames, names_from_map, read_name_map, wordnet_words
from lorevit.utils.paths import safe_relative
from lorevit.utils.safe_pickle import BYTES_GLOBALS, NUMPY_GLOBALS, UnsafePickleError, safe_load

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
NAME_MAP_FILE = "classnames.txt"


class ReadError(DatasetError):
    """A file the layout needs is missing or malformed (the registry adds layout + source)."""


@dataclass
class Records:
    items: list[str] | np.ndarray  # image paths, or a uint8 array [N,H,W(,3)]
    targets: list[int]
    classnames: list[str]
    split_files: dict = field(default_factory=dict)  # {path: sha256} of the list files read (env.json)
    logit_mask: list | None = None  # ImageNet-A/R: indices of the kept logits of a 1000-way head, label order
    missing: list = field(default_factory=list)  # CSV lists: (line number, path) of rows whose file is absent
    origins: dict = field(default_factory=dict)  # CSV lists: {path: "list.csv line N"} for error messages


ClassSource = Callable[[Path, Path], "tuple[list[str], list[str]]"]


# --------------------------------------------------------------------------- helpers
def _need(path: Path, what: str = "file") -> Path:
    if not path.exists():
        raise ReadError(f"missing {what} {path}")
    return path


def file_sha256(path: Path) -> str:
    """sha256 of a split or list file: two runs with equal hashes read the same image lists."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def list_images(folder: Path) -> list[str]:
    """Image files under ``folder`` (recursively, following links), sorted."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        found.extend(
            os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMAGE_EXTENSIONS)
        )
    return found


def subfolders(folder: Path) -> list[str]:
    _need(folder, "folder")
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def name_map_files(root: Path, base: Path) -> list[Path]:
    """``classnames.txt`` files that may rename classes, lowest priority first (root's wins)."""
    return [p / NAME_MAP_FILE for p in dict.fromkeys([base, root]) if (p / NAME_MAP_FILE).is_file()]


def readable(keys: Sequence[str], root: Path, base: Path, rename: dict | None = None) -> list[str]:
    """Clean names for ``keys``, renamed by ``rename`` then by any ``classnames.txt`` file."""
    mapping: dict[str, str] = dict(rename or {})
    for path in name_map_files(root, base):
        mapping.update(read_name_map(path))
    return names_from_map(keys, mapping)


def _index(keys: Sequence[str]) -> dict[str, int]:
    return {k: i for i, k in enumerate(keys)}


def _lookup(key: str, index: dict[str, int], where: str) -> int:
    try:
        return index[key]
    except KeyError:
        raise ReadError(f"class {key!r} in {where} is not in the class list") from None


# ---------------------------------------------------------------------- class sources
@dataclass(frozen=True)
class FolderClasses:
    """Sorted sub-folders of ``base/dir`` (optionally only those named in ``only``)."""

    dir: str
    only: "ClassListFile | None" = None
    rename: tuple = ()  # built-in (folder, readable) pairs; a classnames.txt still wins

    def __call__(self, root: Path, base: Path) -> tuple[list[str], list[str]]:
        keys = subfolders(base / self.dir)
        if self.only is not None:
            wanted = self.only.keys(root)
            missing = [k for k in wanted if k not in set(keys)]
            if missing:
                raise ReadError(
                    f"{len(missing)} class folder(s) of the class list are missing under "
                    f"{base / self.dir} (e.g. {missing[:3]})"
                )
            keys = sorted(wanted)
        return keys, readable(keys, root, base, dict(self.rename))


@dataclass(frozen=True)
class ImageNetClasses(FolderClasses):
    """Folder classes named by WordNet id, with readable ImageNet names."""

    def __call__(self, root: Path, base: Path) -> tuple[list[str], list[str]]:
        keys, _ = super().__call__(root, base)
        return keys, imagenet_classnames(keys, extra_maps=name_map_files(root, base))


@dataclass(frozen=True)
class ClassListFile:
    """A list of class keys, one per line: ``root/<override>`` if present, else a packaged file."""

    override: str
    packaged: str

    def keys(self, root: Path) -> list[str]:
        path = root / self.override
        if not path.is_file():
            path = Path(__file__).parent / "classlists" / self.packaged
        lines = [ln.split()[0] for ln in _need(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        if len(set(lines)) != len(lines):
            raise ReadError(f"class list {path} repeats a class")
        return lines


@dataclass(frozen=True)
class LineClasses:
    """One class key per line of ``base/file`` (label = line number), e.g. FGVC ``variants.txt``."""

    file: str

    def __call__(self, root: Path, base: Path) -> tuple[list[str], list[str]]:
        lines = _need(base / self.file).read_text(encoding="utf-8").splitlines()
        keys = [ln.strip() for ln in lines if ln.strip()]
        return keys, readable(keys, root, base)


@dataclass(frozen=True)
class WordNetClasses:
    """Sorted wnids from ``wnids_file``, named by the first name in ``words_file`` (Tiny-ImageNet)."""

    wnids_file: str
    words_file: str

    def __call__(self, root: Path, base: Path) -> tuple[list[str], list[str]]:
        keys = sorted(ln.strip() for ln in _need(base / self.wnids_file).read_text().splitlines() if ln.strip())
        words = base / self.words_file
        names = wordnet_words(words, keys) if words.is_file() else imagenet_classnames(keys)
        mapping = {}
        for path in name_map_files(root, base):
            mapping.update(read_name_map(path))
        return keys, [clean_classname(mapping[k]) if k in mapping else n for k, n in zip(keys, names)]


@dataclass(frozen=True)
class TorchvisionClasses:
    """The ``classes`` attribute of a torchvision dataset class (e.g. Flowers102's names)."""

    cls: str

    def __call__(self, root: Path, base: Path) -> tuple[list[str], list[str]]:
        import torchvision.datasets

        keys = list(getattr(torchvision.datasets, self.cls).classes)
        return keys, readable(keys, root, base)


@dataclass(frozen=True)
class FixedClasses:
    names: tuple[str, ...]

    def __call__(self, root: Path, base: Path) -> tuple[list[str], list[str]]:
        return list(self.names), [clean_classname(n) for n in self.names]


# ---------------------------------------------------------------------------- readers
def _read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST format), gzip-compressed or not."""
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        path = path.with_name(path.name + ".gz")
    _need(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip: BadGzipFile, a cut stream, a damaged deflate block
        raise ReadError(f"{path} cannot be read ({type(err).__name__}: {err}); the file is damaged: download it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ReadError(f"{path} is not an unsigned-byte idx file (bad magic number)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ReadError(f"{path}: the idx header is cut short ({len(data)} bytes for {ndim} dimensions)")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):  # exact integers: numpy's prod would overflow
        raise ReadError(f"{path}: header says {dims} but holds {body.size} bytes (truncated?)")
    return body.reshape(dims)


@dataclass(frozen=True)
class Idx:
    """MNIST-style idx files: ``{split: (images_file, labels_file)}``, ``.gz`` optional."""

    files: dict
    classes: ClassSource

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        images_file, labels_file = self.files[split]
        images = _read_idx(base / images_file)
        labels = _read_idx(base / labels_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ReadError(f"{base}: {images_file} {images.shape} does not match {labels_file} {labels.shape}")
        if 0 in images.shape[1:]:
            raise ReadError(f"{base}: {images_file} holds images of {images.shape[1]}×{images.shape[2]} pixels")
        _, names = self.classes(root, base)
        return Records(images, labels.astype(np.int64).tolist(), names)


def _unpickle(path: Path) -> dict:
    """A CIFAR batch: a Python pickle by design, read with only numpy's array globals allowed."""
    try:
        # latin1 decodes the Python-2 strings of the official files
        obj = safe_load(_need(path), NUMPY_GLOBALS | BYTES_GLOBALS, encoding="latin1")
    except UnsafePickleError as err:
        raise ReadError(str(err)) from err
    if not isinstance(obj, dict):
        raise ReadError(f"{path} does not hold a CIFAR batch dictionary")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


@dataclass(frozen=True)
class CifarPickle:
    """CIFAR python batches: ``{split: (batch files…)}`` + meta file with the label names."""

    files: dict
    label_key: str
    meta: str
    names_key: str

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        arrays, labels = [], []
        for name in self.files[split]:
            batch = _unpickle(base / name)
            if "data" not in batch or self.label_key not in batch:
                raise ReadError(f"{base / name} lacks 'data' or {self.label_key!r}")
            data, batch_labels = batch["data"], batch[self.label_key]
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                raise ReadError(f"{base / name}: 'data' is not a uint8 array of N × 3072 pixels")
            if not isinstance(batch_labels, (list, np.ndarray)) or len(batch_labels) != len(data) or not all(
                    isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in batch_labels):
                raise ReadError(f"{base / name}: {self.label_key!r} is not a list of {len(data)} integer labels")
            arrays.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.extend(int(x) for x in batch_labels)
        meta = _unpickle(base / self.meta)
        raw_names = meta.get(self.names_key)
        if not isinstance(raw_names, list) or not raw_names or not all(isinstance(n, (str, bytes)) for n in raw_names):
            raise ReadError(f"{base / self.meta}: {self.names_key!r} is not a list of class names")
        try:
            names = [n.decode() if isinstance(n, bytes) else n for n in raw_names]
        except UnicodeDecodeError as err:
            raise ReadError(f"{base / self.meta}: a class name is not UTF-8 ({err})") from None
        images = np.ascontiguousarray(np.concatenate(arrays))
        return Records(images, labels, [clean_classname(n) for n in names])


def _holdout(files: list[str], fraction: float, seed: int, class_index: int, split: str) -> list[str]:
    """Seeded, per-class split of a sorted file list: ``fraction`` of it (rounded) is test."""
    order = np.random.default_rng([seed, class_index]).permutation(len(files))
    n_test = int(round(len(files) * fraction))
    if len(files) > 1:
        n_test = min(max(n_test, 1), len(files) - 1)  # keep both sides non-empty
    chosen = order[:n_test] if split == "test" else order[n_test:]
    return [files[i] for i in sorted(chosen)]


@dataclass(frozen=True)
class ImageFolder:
    """Class-per-folder trees: ``base/<dir>/<class>/<inner>/<images>``.

    ``dirs[split]`` lists candidate folder names (the first present is used). With ``holdout``
    both splits read the same tree and a seeded per-class fraction ``holdout`` becomes test.
    """

    dirs: dict
    classes: ClassSource | None = None  # default: the sorted sub-folders of the train folder
    inner: str = ""
    holdout: float | None = None
    seed: int = 0

    def _dir(self, base: Path, split: str) -> Path:
        for d in self.dirs[split]:
            if (base / d).is_dir():
                return base / d
        raise ReadError(f"no {' or '.join(repr(d) for d in self.dirs[split])} folder under {base}")

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        train_dir = self._dir(base, "train")
        source = self.classes or FolderClasses(str(train_dir.relative_to(base)))
        keys, names = source(root, base)
        folder = self._dir(base, split)
        present = set(subfolders(folder))
        index = _index(keys)
        subset = isinstance(source, FolderClasses) and source.only is not None  # extra folders are fine
        stray = sorted(present - set(index))
        if stray and not subset:
            raise ReadError(f"class folder(s) {stray[:5]} in {folder} are not classes of {train_dir}")
        items: list[str] = []
        targets: list[int] = []
        for label, key in enumerate(keys):
            if key not in present:
                continue
            files = list_images(folder / key / self.inner)
            if self.holdout is not None:
                files = _holdout(files, self.holdout, self.seed, label, split)
            items.extend(files)
            targets.extend([label] * len(files))
        return Records(items, targets, names)


@dataclass(frozen=True)
class ListFile:
    """Annotation lists: text files with one image per line.

    Each line is split on ``sep`` (whitespace when None) into at most ``maxsplit + 1`` fields;
    the image path is ``image.format(*fields)`` relative to ``base``; the class key is
    ``fields[key_field]``, or the first folder of ``fields[0]`` when ``key_field`` is None.
    """

    lists: dict
    classes: ClassSource
    image: str = "{0}"
    sep: str | None = None
    maxsplit: int = -1
    key_field: int | None = 1

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        keys, names = self.classes(root, base)
        index = _index(keys)
        items: list[str] = []
        targets: list[int] = []
        for name in self.lists[split]:
            path = _need(base / name)
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                fields = [f.strip() for f in line.strip().split(self.sep, self.maxsplit)]
                try:
                    key = fields[self.key_field] if self.key_field is not None else fields[0].replace("\\", "/").split("/")[0]
                    rel = self.image.format(*fields)
                except IndexError:
                    raise ReadError(f"{path}:{n}: cannot parse line {line!r}") from None
                targets.append(_lookup(key, index, f"{path}:{n}"))
                items.append(str(base / safe_relative(rel, "image path", f"{path}:{n}", ReadError)))
        return Records(items, targets, names)


@dataclass(frozen=True)
class SplitJson:
    """CoOp's ``split_zhou_*.json``: ``{"train"|"val"|"test": [[rel_path, label, classname], …]}``.

    Paths are relative to ``base/image_dir``. ``keys[split]`` says which lists form the split.
    """

    file: str
    image_dir: str = ""
    keys: dict = field(default_factory=lambda: {"train": ("train",), "test": ("test",)})

    tunable = True  # @tune: train → its "train" list, test → its "val" list

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        path = _need(base / self.file)
        keys = {"tune-train": ("train",), "val": ("val",), **self.keys}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ReadError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ReadError(f"{path} holds a JSON {type(data).__name__}, not {{\"train\": [...], \"test\": [...]}}")
        names: dict[int, str] = {}
        for key in ("train", "val", "test"):
            entries = data.get(key, [])
            if not isinstance(entries, list):
                raise ReadError(f"{path}: {key!r} is not a list of [image path, label, class name] entries")
            for i, entry in enumerate(entries):
                if (not isinstance(entry, list) or len(entry) < 3 or not isinstance(entry[0], str)
                        or not isinstance(entry[1], int) or isinstance(entry[1], bool) or not isinstance(entry[2], str)):
                    raise ReadError(f"{path}: {key}[{i}] = {entry!r} is not [image path, integer label, class name]")
                names.setdefault(entry[1], entry[2])
        if sorted(names) != list(range(len(names))):
            raise ReadError(f"{path}: labels are not 0..C-1")
        items, targets = [], []
        for key in keys[split]:
            if key not in data:
                raise ReadError(f"{path} has no {key!r} list")
            for i, entry in enumerate(data[key]):
                rel = safe_relative(entry[0], "image path", f"{path}: {key}[{i}]", ReadError)
                items.append(str(base / self.image_dir / rel))
                targets.append(int(entry[1]))
        return Records(items, targets, [clean_classname(names[i]) for i in range(len(names))],
                       split_files={str(path): file_sha256(path)})


def _loadmat(path: Path) -> dict:
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover - scipy ships with the dev extra
        raise DatasetError(f"reading {path} needs scipy: pip install scipy") from exc
    return loadmat(str(_need(path)), squeeze_me=True)


def _mat_strings(values) -> list[str]:
    out = []
    for v in np.atleast_1d(values):
        while isinstance(v, np.ndarray):
            v = v.item() if v.size == 1 else v[0]
        out.append(str(v))
    return out


@dataclass(frozen=True)
class MatFileList:
    """``.mat`` image lists (Stanford Dogs ``train_list.mat``): ``file_list`` + 1-based ``labels``.

    Paths are relative to ``base/image_dir``; the class key is the path's first folder.
    """

    lists: dict
    image_dir: str
    files_key: str = "file_list"
    labels_key: str = "labels"

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        # classes come from both lists so that train and test share one labelling
        key_of: dict[int, str] = {}
        loaded = {}
        for s, name in self.lists.items():
            mat = _loadmat(base / name)
            if self.files_key not in mat or self.labels_key not in mat:
                raise ReadError(f"{base / name} lacks {self.files_key!r} or {self.labels_key!r}")
            files = _mat_strings(mat[self.files_key])
            labels = [int(x) for x in np.atleast_1d(mat[self.labels_key]).ravel()]
            if len(files) != len(labels):
                raise ReadError(f"{base / name}: {len(files)} files but {len(labels)} labels")
            loaded[s] = (files, labels)
            for f, lab in zip(files, labels):
                key_of.setdefault(lab, f.replace("\\", "/").split("/")[0])
        if sorted(key_of) != list(range(1, len(key_of) + 1)):
            raise ReadError(f"{base}: labels of {list(self.lists.values())} are not 1..C")
        keys = [key_of[i + 1] for i in range(len(key_of))]
        files, labels = loaded[split]
        where = f"{base / self.lists[split]}: {self.files_key}"
        items = [str(base / self.image_dir / safe_relative(f, "image path", f"{where}[{i}]", ReadError))
                 for i, f in enumerate(files)]
        return Records(items, [lab - 1 for lab in labels], readable(keys, root, base))


@dataclass(frozen=True)
class MatIds:
    """Image ids in ``.mat`` files: labels (1-based) per image id + split-id arrays.

    E.g. Oxford Flowers' official ``imagelabels.mat`` / ``setid.mat``; ``image`` formats the id.
    """

    labels_file: str
    labels_key: str
    split_file: str
    split_keys: dict
    image: str
    classes: ClassSource

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        labels = np.atleast_1d(_loadmat(base / self.labels_file)[self.labels_key]).astype(np.int64)
        ids_mat = _loadmat(base / self.split_file)
        ids = np.concatenate([np.atleast_1d(ids_mat[k]).astype(np.int64) for k in self.split_keys[split]])
        _, names = self.classes(root, base)
        items = [str(base / self.image.format(int(i))) for i in ids]
        return Records(items, [int(labels[i - 1]) - 1 for i in ids], names)


@dataclass(frozen=True)
class PerSplit:
    """A different reader per split (Tiny-ImageNet: folders for train, a list for val)."""

    readers: dict

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        return self.readers[split](root, base, split)


def _label_order(labels: Sequence[str]) -> list[str]:
    """Sorted unique labels; numerically when every label is an integer ("2" before "10")."""
    unique = sorted(set(labels))
    if all(label.lstrip("-").isdigit() for label in unique):
        unique.sort(key=int)
    return unique


CSV_SPLITS = {"train": "train", "test": "test", "val": "test"}  # the split column's values


@dataclass(frozen=True)
class CsvList:
    """A CSV file with a header row and the columns ``path,label[,split]`` (issue 22 §4).

    ``path`` is relative to the CSV's folder (``base``); the class list is the sorted unique labels
    (numeric order when all are integers), renamed by a ``classnames.txt`` next to the CSV
    (``<label><TAB or space><readable name>``). ``split`` is ``train``, ``test`` or ``val`` (= test);
    without that column, ``holdout`` (config ``test_fraction``) holds out a seeded share per class.
    Rows whose file does not exist are not read: they go to ``Records.missing`` as
    ``(line number, path)``; ``build_dataset`` fails or skips them as for unreadable images.
    """

    file: str | None = None  # the CSV's name under base; None: the one *.csv there
    holdout: float | None = None
    seed: int = 0

    def _path(self, base: Path) -> Path:
        if self.file is not None:
            return _need(base / self.file, "CSV file")
        found = sorted(base.glob("*.csv"))
        if len(found) != 1:
            raise ReadError(f"{base} holds {len(found)} CSV files ({[p.name for p in found][:5]}); "
                            "give the CSV file itself as the data root (--data-root list.csv)")
        return found[0]

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        import csv

        path = self._path(base)
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        if not rows:
            raise ReadError(f"{path} is empty; it needs a header row `path,label[,split]`")
        header = [h.strip().lower() for h in rows[0]]
        for need in ("path", "label"):
            if need not in header:
                raise ReadError(f"{path}:1: the header {rows[0]} has no {need!r} column; "
                                "the columns are path,label[,split]")
        col = {name: header.index(name) for name in ("path", "label", "split") if name in header}
        if "split" not in col and self.holdout is None:
            raise ReadError(f"{path}: no 'split' column; add one (train/test per row) or set test_fraction "
                            "(--test-fraction 0.2) for a seeded per-class hold-out")
        entries: list[tuple[int, str, str, str]] = []  # line, path, label, split
        for n, row in enumerate(rows[1:], 2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise ReadError(f"{path}:{n}: {len(row)} field(s) {row}, the header has {len(header)}")
            label = row[col["label"]].strip()
            if not label:
                raise ReadError(f"{path}:{n}: empty label")
            row_split = "train"
            if "split" in col:
                value = row[col["split"]].strip().lower()
                if value not in CSV_SPLITS:
                    raise ReadError(f"{path}:{n}: split {row[col['split']]!r} is not one of train, test, val")
                row_split = CSV_SPLITS[value]
            rel = safe_relative(row[col["path"]].strip(), "image path", f"{path}:{n}", ReadError)
            entries.append((n, rel, label, row_split))
        keys = _label_order([e[2] for e in entries])
        names = readable(keys, root if root.is_dir() else base, base)
        index = _index(keys)
        items: list[str] = []
        targets: list[int] = []
        missing: list[tuple[int, str]] = []
        for label_index, key in enumerate(keys):
            mine = sorted((e for e in entries if e[2] == key), key=lambda e: e[1])
            if self.holdout is not None and "split" not in col:
                chosen = set(_holdout([str(i) for i in range(len(mine))], self.holdout, self.seed, label_index, split))
                mine = [e for i, e in enumerate(mine) if str(i) in chosen]
            else:
                mine = [e for e in mine if e[3] == split]
            for n, rel, _, _ in mine:
                image = str(base / rel)
                if not os.path.isfile(image):
                    missing.append((n, image))
                    continue
                items.append(image)
                targets.append(index[key])
        order = sorted(range(len(items)), key=lambda i: items[i])  # stable, independent of the CSV's row order
        origins = {str(base / rel): f"{path.name} line {n}" for n, rel, _, _ in entries}
        return Records([items[i] for i in order], [targets[i] for i in order], names,
                       split_files={str(path): file_sha256(path)}, missing=sorted(missing), origins=origins)
