"""The benchmark protocols' datasets in their communities' layouts (issue 21 §1; BASELINES_VISION §B, BASELINES_CLIP §1).

- **VTAB-1k** (19 tasks, NOAH's layout): ``vtab-<task>``; train = ``train800val200.txt``, test = ``test.txt``;
  ``vtab-<task>@tune``: train = ``train800.txt``, test = ``val200.txt``.
- **FGVC** (VPT's json splits): ``fgvc-cub``, ``fgvc-nabirds``, ``fgvc-flowers``, ``fgvc-dogs``, ``fgvc-cars``;
  train = ``train.json`` (VPT's final runs), test = ``test.json``; ``@tune``: test = ``val.json``.
- **CoOp's four** (``split_zhou_*.json``, with the documented fallback split): ``caltech101``, ``oxford-pets``,
  ``food101``, ``sun397``; their few-shot pickles ``split_fewshot/shot_K-seed_S.pkl`` through
  :func:`coop_fewshot_indices` (a restricted unpickler that maps only Dassl's ``Datum``).
- **ImageNet variants** (evaluation only): ``imagenet-v2``, ``imagenet-sketch``, ``imagenet-a``, ``imagenet-r``;
  A and R carry the 200-class ``logit_mask`` of a 1000-way head (checked against their folders on load).

Every name read from a list or split file is checked (:func:`lorevit.utils.paths.safe_relative`) before it
becomes a path; the sha256 of every split file read is in ``Records.split_files`` (→ ``env.json``).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lorevit.data.names import clean_classname, imagenet_classnames
from lorevit.data.readers import (
    ReadError,
    Records,
    _need,
    file_sha256,
    list_images,
    name_map_files,
    read_name_map,
    readable,
    subfolders,
)
from lorevit.data.registry import COOP_DATASETS_MD, DatasetSpec, Layout, SplitJson, register, template_for  # noqa: F401
from lorevit.data.templates import coop_templates
from lorevit.utils.paths import safe_relative
from lorevit.utils.safe_pickle import UnsafePickleError, safe_load

# ------------------------------------------------------------------------------------------------ VTAB-1k
# (task folder, other folder names seen in the wild, classes, group) — BASELINES_VISION §B1
VTAB_TASKS = (
    ("cifar", ("cifar100",), 100, "natural"),
    ("caltech101", (), 102, "natural"),
    ("dtd", (), 47, "natural"),
    ("oxford_flowers102", (), 102, "natural"),
    ("oxford_iiit_pet", ("oxford_pet",), 37, "natural"),
    ("svhn", (), 10, "natural"),
    ("sun397", (), 397, "natural"),
    ("patch_camelyon", (), 2, "specialized"),
    ("eurosat", (), 10, "specialized"),
    ("resisc45", (), 45, "specialized"),
    ("diabetic_retinopathy", (), 5, "specialized"),
    ("clevr_count", (), 8, "structured"),
    ("clevr_dist", (), 6, "structured"),
    ("dmlab", (), 6, "structured"),
    ("kitti", (), 4, "structured"),
    ("dsprites_loc", (), 16, "structured"),
    ("dsprites_ori", (), 16, "structured"),
    ("smallnorb_azi", (), 18, "structured"),
    ("smallnorb_ele", (), 9, "structured"),
)
VTAB_GROUPS = {g: tuple(t for t, _, _, group in VTAB_TASKS if group == g) for g in ("natural", "specialized", "structured")}
VTAB_CLASSES = {t: c for t, _, c, _ in VTAB_TASKS}
VTAB_LISTS = {"train": "train800val200.txt", "test": "test.txt", "tune-train": "train800.txt", "val": "val200.txt"}
VTAB_SIZES = {"train800.txt": 800, "val200.txt": 200, "train800val200.txt": 1000}


def _read_lines(path: Path, num_classes: int, base: Path) -> tuple[list[str], list[int]]:
    """NOAH's ``images/<split>/NNNNNN.jpg <label>`` lines (0-based labels < num_classes)."""
    items, targets = [], []
    for n, line in enumerate(_need(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rel, sep, label = line.strip().rpartition(" ")
        if not sep or not label.lstrip("-").isdigit():
            raise ReadError(f"{path}:{n}: expected `images/<split>/NNNNNN.jpg <label>`, got {line!r}")
        label_i = int(label)
        if not 0 <= label_i < num_classes:
            raise ReadError(f"{path}:{n}: label {label_i} outside 0..{num_classes - 1} (this task has {num_classes} classes)")
        items.append(str(base / safe_relative(rel.strip(), "image path", f"{path}:{n}", ReadError)))
        targets.append(label_i)
    return items, targets


@dataclass(frozen=True)
class VtabList:
    """One VTAB-1k task in NOAH's layout (``<task>/{train800,val200,train800val200,test}.txt``)."""

    task: str
    num_classes: int
    tunable = True

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        name = VTAB_LISTS[split]
        path = base / name
        items, targets = _read_lines(path, self.num_classes, base)
        files = {str(path): file_sha256(path)}
        if name == "train800val200.txt" and (base / "train800.txt").is_file() and (base / "val200.txt").is_file():
            # a loader invariant of §B1; NOAH re-saves the union's images under their own names, so the
            # labels are compared (as a multiset), not the paths
            parts = [_read_lines(base / f, self.num_classes, base)[1] for f in ("train800.txt", "val200.txt")]
            if sorted(targets) != sorted(parts[0] + parts[1]):
                raise ReadError(f"{path} is not train800.txt ∪ val200.txt ({len(items)} images, the two lists hold "
                                f"{len(parts[0])} + {len(parts[1])} with other labels)")
        if name in VTAB_SIZES and len(items) != VTAB_SIZES[name]:
            import logging

            logging.getLogger("lorevit.data").warning(
                "vtab-%s: %s holds %d images, not VTAB-1k's %d (a stand-in or a modified split)",
                self.task, name, len(items), VTAB_SIZES[name])
        keys = [str(i) for i in range(self.num_classes)]
        # VTAB has no class names; a classnames.txt (`<label> <name>` lines) in the task folder names them
        names = [n if n != k else f"class {k}" for k, n in zip(keys, readable(keys, root, base))]
        return Records(items, targets, names, split_files=files)


for _task, _aliases, _classes, _group in VTAB_TASKS:
    _folders = (_task, *_aliases)
    register(DatasetSpec(
        name=f"vtab-{_task}",
        aliases=tuple(f"vtab-{a}" for a in _aliases),
        layouts=(Layout("train800val200.txt", VtabList(_task, _classes),
                        bases=("", *_folders, *(f"vtab-1k/{f}" for f in _folders))),),
        expected=f"""\
  vtab-1k/{_task}/train800.txt, val200.txt, train800val200.txt, test.txt   (`images/<split>/NNNNNN.jpg <label>`)
  vtab-1k/{_task}/images/{{train800,val200,train800val200,test}}/NNNNNN.jpg   ({_classes} classes, 0-based labels)
  --data-root names the vtab-1k folder or the task folder{' (also named ' + ', '.join(_aliases) + ')' if _aliases else ''}""",
        source="NOAH's data/vtab-source/get_vtab1k.py (https://github.com/ZhangYuanhan-AI/NOAH), or the prebuilt "
               "copy linked from V-PETL (Hugging Face XiN0919/VTAB-1k)",
    ))


# ------------------------------------------------------------------------------------------------- FGVC
def _cub_name(folder: str) -> str:
    return clean_classname(re.sub(r"^\d+\.", "", folder))  # 001.Black_footed_Albatross → Black footed Albatross


def _dogs_name(folder: str) -> str:
    return clean_classname(folder.split("-", 1)[1] if re.match(r"^n\d+-", folder) else folder)  # n02085620-Chihuahua


@dataclass(frozen=True)
class VptJson:
    """VPT's FGVC splits: ``{train,val,test}.json`` = {relative image path: class id}; the sorted distinct ids of the
    three files are remapped to 0..C-1 (VPT's JSONDataset); paths are relative to ``base/image_dir``.

    Class names: ``names_file`` (``<id> <name>`` lines, NABirds' ``classes.txt``) if present, else the image folder by
    ``folder_rule`` (``cub``: ``001.Black_footed_Albatross``; ``dogs``: ``n02085620-Chihuahua``), else ``class <id>``;
    a ``classnames.txt`` (``<id> <name>``) in the root overrides."""

    image_dir: str = ""
    folder_rule: str = ""
    names_file: str = ""
    tunable = True
    SPLIT_FILES = {"train": "train.json", "tune-train": "train.json", "val": "val.json", "test": "test.json"}

    def _load(self, path: Path) -> dict:
        try:
            data = json.loads(_need(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ReadError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
            raise ReadError(f"{path}: expected a JSON object {{relative image path: integer class id}}")
        return data

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        present = {f: self._load(base / f) for f in ("train.json", "val.json", "test.json") if (base / f).is_file()}
        path = base / self.SPLIT_FILES[split]
        data = present.get(path.name) or self._load(path)
        ids = sorted({v for d in present.values() for v in d.values()})
        index = {v: i for i, v in enumerate(ids)}
        items = [str(base / self.image_dir / safe_relative(rel, "image path", f"{path}: key {n}", ReadError))
                 for n, rel in enumerate(data)]
        targets = [index[v] for v in data.values()]
        folder_of: dict[int, str] = {}
        for d in present.values():
            for rel, v in d.items():
                folder_of.setdefault(v, rel.replace("\\", "/").split("/")[0] if "/" in rel else "")
        mapping: dict[str, str] = {}
        if self.names_file and (base / self.names_file).is_file():
            mapping.update(read_name_map(base / self.names_file))
        for p in name_map_files(root, base):
            mapping.update(read_name_map(p))
        rule = {"cub": _cub_name, "dogs": _dogs_name}.get(self.folder_rule)
        names = []
        for v in ids:
            if str(v) in mapping:
                names.append(clean_classname(mapping[str(v)]))
            elif rule and folder_of.get(v):
                names.append(rule(folder_of[v]))
            else:
                names.append(f"class {v}")
        return Records(items, targets, names, split_files={str(base / f): file_sha256(base / f) for f in present})


FGVC = (  # name, folder(s), image dir, folder rule, names file, classes — BASELINES_VISION §B2
    ("fgvc-cub", ("CUB_200_2011", "cub"), "images", "cub", "", 200),
    ("fgvc-nabirds", ("nabirds",), "images", "", "classes.txt", 555),
    ("fgvc-flowers", ("OxfordFlower", "oxford_flowers", "flowers"), "", "", "", 102),
    ("fgvc-dogs", ("Stanford-dogs", "stanford_dogs", "dogs"), "Images", "dogs", "", 120),
    ("fgvc-cars", ("Stanford-cars", "stanford_cars", "cars"), "", "", "", 196),
)
FGVC_DATASETS = tuple(f[0] for f in FGVC)
for _name, _folders, _image_dir, _rule, _names_file, _classes in FGVC:
    register(DatasetSpec(
        name=_name,
        layouts=(Layout("test.json", VptJson(_image_dir, _rule, _names_file), bases=("", *_folders)),),
        expected=f"""\
  {_folders[0]}/train.json, val.json, test.json   ({{"<relative image path>": <class id>, …}}; ids remapped sorted → 0..{_classes - 1})
  {_folders[0]}/{_image_dir + '/' if _image_dir else ''}<relative image path>""",
        source="the dataset's images + VPT's split files (https://github.com/KMnP/vpt, README: FGVC splits; mirror "
               "Hugging Face XiN0919/FGVC)",
    ))


# ------------------------------------------------------------------------------------- CoOp's four datasets
CALTECH_DROP = ("BACKGROUND_Google", "Faces_easy")
CALTECH_RENAME = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


def sun397_name(path: str) -> str:
    """``/a/apartment_building/outdoor`` → ``outdoor apartment_building`` (CoOp: drop the letter folder, reverse)."""
    parts = [p for p in path.strip().strip("/").split("/") if p][1:]
    return " ".join(reversed(parts))


def pets_name(stem: str) -> str:
    """``american_bulldog_100`` → ``american_bulldog`` (CoOp: the file stem less its trailing id, lower-cased)."""
    return stem.rsplit("_", 1)[0].lower()


def _coop_split(per_class: dict[str, list[str]], split: str, seed: int = 1) -> tuple[list[str], list[int]]:
    """The documented fallback: a seeded per-class 50/20/30 train/val/test split of sorted class folders."""
    items, targets = [], []
    for label, (_, files) in enumerate(per_class.items()):
        order = np.random.default_rng([seed, label]).permutation(len(files))
        n_train, n_val = round(len(files) * 0.5), round(len(files) * 0.2)
        parts = {"train": order[:n_train], "tune-train": order[:n_train], "val": order[n_train:n_train + n_val],
                 "test": order[n_train + n_val:]}
        chosen = sorted(parts[split])
        items.extend(files[i] for i in chosen)
        targets.extend([label] * len(chosen))
    return items, targets


@dataclass(frozen=True)
class CaltechFolders:
    """Caltech101 without CoOp's json: the 101_ObjectCategories folders less BACKGROUND_Google / Faces_easy
    (100 classes), CoOp's renames, a seeded 50/20/30 split per class."""

    image_dir: str = "101_ObjectCategories"
    tunable = True

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        folders = [f for f in subfolders(base / self.image_dir) if f not in CALTECH_DROP]
        per_class = {f: list_images(base / self.image_dir / f) for f in folders}
        items, targets = _coop_split(per_class, split)
        return Records(items, targets, readable(folders, root, base, CALTECH_RENAME))


@dataclass(frozen=True)
class FoodFolders:
    """Food101 without CoOp's json: ``images/<class>/`` with a seeded 50/20/30 split per class."""

    image_dir: str = "images"
    tunable = True

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        folders = subfolders(base / self.image_dir)
        items, targets = _coop_split({f: list_images(base / self.image_dir / f) for f in folders}, split)
        return Records(items, targets, readable(folders, root, base))


@dataclass(frozen=True)
class PetsAnnotations:
    """OxfordPets without CoOp's json: ``annotations/{trainval,test}.txt`` (``<stem> <class id> <species> <breed>``),
    label = class id − 1, name = the stem less its trailing id, lower-cased; trainval → a seeded 80/20 train/val."""

    tunable = True

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        names: dict[int, str] = {}
        lists = {}
        for which in ("trainval", "test"):
            path = _need(base / "annotations" / f"{which}.txt")
            rows = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip() or line.startswith("#"):
                    continue
                fields = line.split()
                if len(fields) < 2 or not fields[1].isdigit():
                    raise ReadError(f"{path}:{n}: expected `<image stem> <class id> ...`, got {line!r}")
                stem = safe_relative(fields[0], "image name", f"{path}:{n}", ReadError)
                label = int(fields[1]) - 1
                names.setdefault(label, pets_name(stem))
                rows.append((str(base / "images" / f"{stem}.jpg"), label))
            lists[which] = rows
        if sorted(names) != list(range(len(names))):
            raise ReadError(f"{base / 'annotations'}: class ids are not 1..C")
        if split == "test":
            rows = lists["test"]
        else:
            rng = np.random.default_rng(1)
            order = rng.permutation(len(lists["trainval"]))
            cut = round(len(order) * 0.8)
            chosen = sorted(order[cut:] if split == "val" else order[:cut])
            rows = [lists["trainval"][i] for i in chosen]
        return Records([r[0] for r in rows], [r[1] for r in rows], [clean_classname(names[i]) for i in range(len(names))])


@dataclass(frozen=True)
class SunPartitions:
    """SUN397 without CoOp's json: ``ClassName.txt`` + ``Training_01.txt`` / ``Testing_01.txt`` (``/a/abbey/sun_x.jpg``
    lines, images under ``SUN397/``), CoOp's name rule; Training_01 → a seeded 80/20 train/val."""

    image_dir: str = "SUN397"
    tunable = True

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        classes = [ln.strip() for ln in _need(base / "ClassName.txt").read_text().splitlines() if ln.strip()]
        index = {c: i for i, c in enumerate(classes)}
        path = _need(base / ("Testing_01.txt" if split == "test" else "Training_01.txt"))
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            rel = line.strip().lstrip("/")
            cls = "/" + rel.rsplit("/", 1)[0]
            if cls not in index:
                raise ReadError(f"{path}:{n}: class {cls!r} is not in ClassName.txt")
            rows.append((str(base / self.image_dir / safe_relative(rel, "image path", f"{path}:{n}", ReadError)),
                         index[cls]))
        if split != "test":
            order = np.random.default_rng(1).permutation(len(rows))
            cut = round(len(order) * 0.8)
            rows = [rows[i] for i in sorted(order[cut:] if split == "val" else order[:cut])]
        return Records([r[0] for r in rows], [r[1] for r in rows], [clean_classname(sun397_name(c)) for c in classes],
                       split_files={str(path): file_sha256(path)})


_FALLBACK = "split_zhou_{}.json not found: using the fallback split ({}), not CoOp's released split"
COOP_FOUR = {  # name → (folder, json name, image dir)
    "caltech101": ("caltech-101", "Caltech101", "101_ObjectCategories"),
    "oxford-pets": ("oxford_pets", "OxfordPets", "images"),
    "food101": ("food-101", "Food101", "images"),
    "sun397": ("sun397", "SUN397", "SUN397"),
}
register(DatasetSpec(
    name="caltech101", **coop_templates("Caltech101"), aliases=("caltech-101",),
    layouts=(Layout("split_zhou_Caltech101.json", SplitJson("split_zhou_Caltech101.json", "101_ObjectCategories"),
                    bases=("", "caltech-101")),
             Layout("101_ObjectCategories", CaltechFolders(), bases=("", "caltech-101"),
                    note=_FALLBACK.format("Caltech101", "seeded 50/20/30 per class"))),
    expected="""\
  caltech-101/101_ObjectCategories/<class>/image_NNNN.jpg   caltech-101/split_zhou_Caltech101.json (CoOp split)
  100 classes: BACKGROUND_Google and Faces_easy are dropped; airplanes→airplane, Faces→face, Leopards→leopard,
  Motorbikes→motorbike""",
    source=f"https://data.caltech.edu/records/mzrjq-6wc02 + split_zhou_Caltech101.json from {COOP_DATASETS_MD}",
))
register(DatasetSpec(
    name="oxford-pets", **coop_templates("OxfordPets"), aliases=("oxfordpets", "pets"),
    layouts=(Layout("split_zhou_OxfordPets.json", SplitJson("split_zhou_OxfordPets.json", "images"),
                    bases=("", "oxford_pets")),
             Layout("annotations/trainval.txt", PetsAnnotations(), bases=("", "oxford_pets"),
                    note=_FALLBACK.format("OxfordPets", "official trainval → seeded 80/20, official test"))),
    expected="""\
  oxford_pets/images/<Breed_name>_<n>.jpg   oxford_pets/annotations/trainval.txt, test.txt
  oxford_pets/split_zhou_OxfordPets.json (CoOp split)""",
    source=f"https://www.robots.ox.ac.uk/~vgg/data/pets/ + split_zhou_OxfordPets.json from {COOP_DATASETS_MD}",
))
register(DatasetSpec(
    name="food101", **coop_templates("Food101"), aliases=("food-101",),
    layouts=(Layout("split_zhou_Food101.json", SplitJson("split_zhou_Food101.json", "images"), bases=("", "food-101")),
             Layout("images", FoodFolders(), bases=("food-101", ""),
                    note=_FALLBACK.format("Food101", "seeded 50/20/30 per class"))),
    expected="""\
  food-101/images/<class>/<id>.jpg   food-101/split_zhou_Food101.json (CoOp split)""",
    source=f"https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ + split_zhou_Food101.json from {COOP_DATASETS_MD}",
))
register(DatasetSpec(
    name="sun397", **coop_templates("SUN397"),
    layouts=(Layout("split_zhou_SUN397.json", SplitJson("split_zhou_SUN397.json", "SUN397"), bases=("", "sun397")),
             Layout("ClassName.txt", SunPartitions(), bases=("", "sun397"),
                    note=_FALLBACK.format("SUN397", "Training_01 → seeded 80/20, Testing_01"))),
    expected="""\
  sun397/SUN397/<letter>/<class>[/<sub>]/sun_*.jpg   sun397/split_zhou_SUN397.json (CoOp split)
  fallback: sun397/ClassName.txt, Training_01.txt, Testing_01.txt (the official partitions)""",
    source=f"https://vision.princeton.edu/projects/2010/SUN/ + split_zhou_SUN397.json from {COOP_DATASETS_MD}",
))


# ---------------------------------------------------------------------- CoOp's few-shot pickles (Dassl Datum)
class DatumRecord:
    """A plain stand-in for Dassl's ``Datum`` (``impath``, ``label``, ``domain``, ``classname``): it only stores the
    four fields it is given (as str / int); nothing of Dassl is imported or called."""

    FIELDS = ("impath", "label", "domain", "classname")

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = state[0] or {}
        if not isinstance(state, dict):
            raise UnsafePickleError("a Datum record's state is not a dictionary")
        for key in self.FIELDS:
            value = state.get(f"_{key}", state.get(key))
            if key == "label":
                value = int(value) if isinstance(value, (int, np.integer)) else -1
            elif key == "domain":
                value = int(value) if isinstance(value, (int, np.integer)) else 0
            else:
                value = value if isinstance(value, str) else ""
            object.__setattr__(self, key, value)


DATUM = {(module, "Datum"): DatumRecord for module in ("dassl.data.datasets.base_dataset", "dassl.data.datasets")}


def read_fewshot_pickle(path: str | Path) -> dict[str, list[DatumRecord]]:
    """``{"train": [Datum…], "val": [...]}`` of a CoOp ``shot_K-seed_S.pkl``; any global but Dassl's Datum is refused."""
    try:
        obj = safe_load(path, (), replace=DATUM)
    except UnsafePickleError as err:
        raise ReadError(str(err)) from err
    if not isinstance(obj, dict) or "train" not in obj or not all(isinstance(d, DatumRecord) for d in obj["train"]):
        raise ReadError(f"{path} is not a CoOp few-shot file ({{'train': [Datum, ...], 'val': [...]}})")
    return obj


def coop_fewshot_indices(dataset, shots: int, seed: int, subset: bool = False) -> tuple[list[int], str] | None:
    """Training indices of ``dataset`` (a LabeledDataset of image paths) that CoOp's ``shot_{K}-seed_{S}.pkl`` lists,
    with the file's sha256; None when no such file lies in ``split_fewshot/`` beside the data.

    The pickle's image paths are the publisher's absolute paths: each is matched by its trailing path components to
    an image the split already lists (a name never becomes a path); an image the split does not hold is an error,
    except with ``subset`` (a class view such as ``@base``: the file's other classes are left out)."""
    if isinstance(dataset.items, np.ndarray) or not dataset.root:
        return None
    root = Path(dataset.root)
    candidates = [root / "split_fewshot"] + [root / sub / "split_fewshot" for sub in ("caltech-101", "oxford_pets",
                                                                                       "food-101", "sun397")]
    path = next((c / f"shot_{shots}-seed_{seed}.pkl" for c in candidates if (c / f"shot_{shots}-seed_{seed}.pkl").is_file()), None)
    if path is None:
        return None
    data = read_fewshot_pickle(path)
    by_suffix: dict[str, int] = {}
    for i, item in enumerate(dataset.items):
        parts = Path(item).parts
        for n in (1, 2, 3):
            by_suffix.setdefault("/".join(parts[-n:]), i)
    chosen = []
    for j, datum in enumerate(data["train"]):
        parts = [p for p in datum.impath.replace("\\", "/").split("/") if p]
        index = next((by_suffix["/".join(parts[-n:])] for n in (3, 2, 1) if "/".join(parts[-n:]) in by_suffix), None)
        if index is None and subset:
            continue
        if index is None:
            raise ReadError(f"{path}: train[{j}] {datum.impath!r} is not an image of {dataset.name}'s train split")
        if datum.label >= 0 and dataset.targets[index] != datum.label:
            raise ReadError(f"{path}: train[{j}] has label {datum.label}, the split says {dataset.targets[index]}")
        chosen.append(index)
    return sorted(set(chosen)), file_sha256(path)


# -------------------------------------------------------------------------------------- ImageNet variants
def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k wnids, sorted (timm's list): label i of a 1000-way head."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


def _classlist(name: str) -> list[str]:
    path = Path(__file__).parent / "classlists" / name
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def imagenet_200_mask(variant: str) -> list[int]:
    """The indices in the sorted 1000 wnids of ImageNet-A's or -R's 200 classes (SSF:utils/imagenet_{a,r}.py)."""
    wnids = imagenet_wnids()
    pos = {w: i for i, w in enumerate(wnids)}
    return sorted(pos[w] for w in _classlist(f"imagenet_{variant}.txt"))


class EvalOnly:
    """Evaluation-only sets: their ``train`` split is an error naming the protocol that uses them."""

    def _train(self, split: str) -> None:
        if split != "test":
            raise ReadError("an evaluation-only dataset (the domain-generalisation targets of ImageNet): it has no "
                            "train split; train on imagenet and evaluate here (bench suite --protocol dg)")


@dataclass(frozen=True)
class ImageNetV2(EvalOnly):
    """``<k>/`` folders for k = 0…999 (ImageNet's sorted-wnid index): label = int(folder)."""

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        self._train(split)
        folders = subfolders(base)
        bad = [f for f in folders if not f.isdigit() or not 0 <= int(f) < 1000]
        if bad:
            raise ReadError(f"{base}: folders {bad[:5]} are not ImageNet indices 0…999")
        items, targets = [], []
        for f in sorted(folders, key=int):
            files = list_images(base / f)
            items.extend(files)
            targets.extend([int(f)] * len(files))
        wnids = imagenet_wnids()
        return Records(items, targets, imagenet_classnames(wnids, extra_maps=name_map_files(root, base)))


@dataclass(frozen=True)
class WnidFolders(EvalOnly):
    """``<wnid>/`` folders: Sketch (all 1000, label = sorted-wnid index) or A/R (200, label = rank of the sorted
    folders, ``logit_mask`` = their indices in the 1000 wnids, checked: sorted(folders) == [wnids[i] for i in mask])."""

    variant: str = ""  # "", "a" or "r"

    def __call__(self, root: Path, base: Path, split: str) -> Records:
        self._train(split)
        folders = subfolders(base)
        wnids = imagenet_wnids()
        if self.variant:
            mask = imagenet_200_mask(self.variant)
            if folders != [wnids[i] for i in mask]:
                extra = sorted(set(folders) - {wnids[i] for i in mask})[:3]
                missing = sorted({wnids[i] for i in mask} - set(folders))[:3]
                raise ReadError(f"{base}: the class folders are not ImageNet-{self.variant.upper()}'s 200 wnids "
                                f"(extra {extra}, missing {missing})")
            keys = folders
        else:
            stray = sorted(set(folders) - set(wnids))
            if stray:
                raise ReadError(f"{base}: folders {stray[:5]} are not ImageNet wnids")
            keys, mask = wnids, None
        index = {k: i for i, k in enumerate(keys)}
        items, targets = [], []
        for f in folders:
            files = list_images(base / f)
            items.extend(files)
            targets.extend([index[f]] * len(files))
        return Records(items, targets, imagenet_classnames(keys, extra_maps=name_map_files(root, base)), logit_mask=mask)


_DG_SOURCE = f"the dataset's release + ImageNet's classnames.txt (see {COOP_DATASETS_MD})"
register(DatasetSpec(
    name="imagenet-v2", **coop_templates("ImageNet"), aliases=("imagenetv2",),
    layouts=(Layout("999", ImageNetV2(), bases=("", "imagenetv2-matched-frequency-format-val",
                                                "imagenetv2/imagenetv2-matched-frequency-format-val")),),
    expected="  imagenetv2/imagenetv2-matched-frequency-format-val/<k>/*.jpeg  for k = 0…999 (label k; evaluation only)",
    source="https://github.com/modestyachts/ImageNetV2 (matched-frequency); " + _DG_SOURCE,
))
register(DatasetSpec(
    name="imagenet-sketch", **coop_templates("ImageNet"), aliases=("imagenetsketch",),
    layouts=(Layout("n01440764", WnidFolders(), bases=("", "images", "imagenet-sketch/images", "sketch")),),
    expected="  imagenet-sketch/images/<wnid>/*.JPEG   (the 1000 ImageNet wnids; evaluation only)",
    source="https://github.com/HaohanWang/ImageNet-Sketch; " + _DG_SOURCE,
))
register(DatasetSpec(
    name="imagenet-a", **coop_templates("ImageNet"), aliases=("imageneta", "imagenet-adversarial"),
    layouts=(Layout("n01498041", WnidFolders("a"), bases=("", "imagenet-a", "imagenet-adversarial/imagenet-a")),),
    expected="  imagenet-adversarial/imagenet-a/<wnid>/*.jpg   (200 wnids; README.txt skipped; evaluation only)",
    source="https://github.com/hendrycks/natural-adv-examples; " + _DG_SOURCE,
))
register(DatasetSpec(
    name="imagenet-r", **coop_templates("ImageNet"), aliases=("imagenetr", "imagenet-rendition"),
    layouts=(Layout("n01443537", WnidFolders("r"), bases=("", "imagenet-r", "imagenet-rendition/imagenet-r")),),
    expected="  imagenet-rendition/imagenet-r/<wnid>/*.jpg   (200 wnids; evaluation only)",
    source="https://github.com/hendrycks/imagenet-r; " + _DG_SOURCE,
))
DG_TARGETS = ("imagenet-v2", "imagenet-sketch", "imagenet-a", "imagenet-r")

# CoOp's 11 datasets (its order in the tables: IN, SUN, DTD, UCF, Air, ESAT, Cars, Food, Pets, Flo, Cal)
COOP_DATASETS = ("imagenet", "sun397", "dtd", "ucf101", "fgvc-aircraft", "eurosat", "stanford-cars", "food101",
                 "oxford-pets", "flowers102", "caltech101")


def base_new_counts(num_classes: int) -> tuple[int, int]:
    """(base, new) class counts of CoOp's split: ceil(C/2) and the rest."""
    m = math.ceil(num_classes / 2)
    return m, num_classes - m
