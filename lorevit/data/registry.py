"""The dataset registry: one declaration per dataset, read by the generic readers.

A declaration says where the files may sit under the root (``Layout``: a marker file and the
reader that understands that layout; the first layout whose marker exists wins), what the
layout looks like (for error messages), where to download it and, for datasets torchvision
can fetch, which torchvision class fetches it. Adding a dataset is one ``register(...)`` call;
see ``docs/datasets.md``.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lorevit.data.dataset import BAD_IMAGE_MODES, DatasetError, LabeledDataset
from lorevit.data.readers import (
    ClassListFile,
    CifarPickle,
    CsvList,
    FixedClasses,
    FolderClasses,
    Idx,
    ImageFolder,
    ImageNetClasses,
    LineClasses,
    ListFile,
    MatFileList,
    MatIds,
    PerSplit,
    Records,
    SplitJson,
    TorchvisionClasses,
    WordNetClasses,
)
from lorevit.data.templates import DEFAULT_TEMPLATE, TEMPLATE_FAMILIES, coop_templates

log = logging.getLogger("lorevit.data")

SPLITS = ("train", "test")
COOP_DATASETS_MD = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"


@dataclass(frozen=True)
class Layout:
    """One way the files may be arranged: ``marker`` (a glob) exists under ``root/<base>``."""

    marker: str
    reader: Callable[[Path, Path, str], Records]
    bases: tuple[str, ...] = ("",)
    note: str = ""  # warned when this layout is used (e.g. a fallback split)


@dataclass(frozen=True)
class Download:
    """A torchvision dataset class used only to fetch the files into the root."""

    cls: str
    calls: tuple[dict, ...] = ({},)  # kwargs of each constructor call (e.g. train=True/False)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    layouts: tuple[Layout, ...]
    expected: str  # the on-disk layout, as shown to users
    source: str  # where to download
    download: Download | None = None
    system_roots: tuple[str, ...] = ()  # checked after $LOREVIT_DATA/<name> and ~/data/<name>
    aliases: tuple[str, ...] = ()
    # the zero-shot text template of its class names (BASELINES_CLIP §1: CoOp's CUSTOM_TEMPLATES entry) and
    # ProGrad's variant ("": the same); lorevit.data.templates holds the tables
    template: str = DEFAULT_TEMPLATE
    prograd_template: str = ""


_REGISTRY: dict[str, DatasetSpec] = {}
_ALIASES: dict[str, str] = {}


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register(spec: DatasetSpec) -> DatasetSpec:
    for key in (spec.name, *spec.aliases):
        if _norm(key) in _ALIASES:
            raise ValueError(f"dataset name {key!r} is registered twice")
        _ALIASES[_norm(key)] = spec.name
    _REGISTRY[spec.name] = spec
    return spec


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


# Views of a dataset, written ``name@view`` (docs/protocols.md):
#   @tune  the model-selection split of a protocol: train = its tuning train list (VTAB's train800, FGVC's
#          train.json, CoOp's train), test = its validation list (val200, val.json, CoOp's val)
#   @base  the first ceil(C/2) classes by label; @new the rest, relabelled 0… (CoOp's subsample_classes)
VIEWS = ("tune", "base", "new")
TUNE_SPLITS = {"train": "tune-train", "test": "val"}  # the reader's split names under @tune


def split_view(name: str) -> tuple[str, str | None]:
    """``"vtab-dtd@tune"`` → ``("vtab-dtd", "tune")``; one DatasetError for an unknown view."""
    base, sep, view = str(name).partition("@")
    if not sep:
        return base, None
    if view not in VIEWS:
        raise DatasetError(f"dataset {name!r}: unknown view @{view}; views are {', '.join('@' + v for v in VIEWS)} "
                           "(e.g. vtab-dtd@tune, caltech101@base)")
    return base, view


def class_view(records: Records, view: str | None) -> Records:
    """@base / @new: CoOp's ``subsample_classes``: labels sorted, m = ceil(C/2); base keeps labels < m, new keeps the
    rest relabelled to 0…C-m-1 (both with their own class names). Other views return ``records`` unchanged."""
    if view not in ("base", "new"):
        return records
    c = len(records.classnames)
    m = (c + 1) // 2  # ceil(C/2)
    lo, hi = (0, m) if view == "base" else (m, c)
    keep = [i for i, t in enumerate(records.targets) if lo <= t < hi]
    items = records.items[keep] if isinstance(records.items, np.ndarray) else [records.items[i] for i in keep]
    return Records(items, [records.targets[i] - lo for i in keep], list(records.classnames[lo:hi]),
                   split_files=dict(records.split_files))


def template_for(dataset: str, family: str = "coop") -> str:
    """The text template of ``dataset`` (a registered name or alias, views ignored): its registry entry's CoOp
    template, or (``family="prograd"``) ProGrad's variant; ``a photo of a {}.`` for a name not registered."""
    if family not in TEMPLATE_FAMILIES:
        raise ValueError(f"template family must be one of {TEMPLATE_FAMILIES}, got {family!r}")
    key = _ALIASES.get(_norm(str(dataset).partition("@")[0]))
    if key is None:
        return DEFAULT_TEMPLATE
    spec = _REGISTRY[key]
    return (spec.prograd_template or spec.template) if family == "prograd" else spec.template


def get_spec(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[_ALIASES[_norm(split_view(name)[0])]]
    except KeyError:
        raise DatasetError(
            f"unknown dataset {name!r}; registered datasets: {', '.join(list_datasets())}. "
            "For any class-per-folder tree use 'imagefolder' (see docs/datasets.md)."
        ) from None


# ------------------------------------------------------------------------ roots, lookup
def default_root(spec: DatasetSpec) -> Path:
    """``$LOREVIT_DATA/<name>`` else ``~/data/<name>``; a system copy (Debian) when that is absent."""
    env = os.environ.get("LOREVIT_DATA")
    user = (Path(env).expanduser() if env else Path.home() / "data") / spec.name
    if user.exists():
        return user
    for system in spec.system_roots:
        if Path(system).is_dir():
            return Path(system)
    return user


def _locate(spec: DatasetSpec, root: Path) -> tuple[Layout, Path] | None:
    for layout in spec.layouts:
        for b in layout.bases:
            base = root / b if b else root
            if base.is_dir() and any(base.glob(layout.marker)):
                return layout, base
    return None


def _help(spec: DatasetSpec) -> str:
    dl = " or pass download=True (config `download: true`)" if spec.download else ""
    return (
        f"\nExpected layout of {spec.name!r} under its root:\n{spec.expected.rstrip()}\n"
        f"Download: {spec.source}{dl}.\n"
        f"Give the root with root=... (config `data_root`), or put it at $LOREVIT_DATA/{spec.name} "
        f"or ~/data/{spec.name}. See docs/datasets.md."
    )


def _not_found(spec: DatasetSpec, root: Path) -> DatasetError:
    if not root.exists():
        problem = f"dataset root {root} does not exist"
    else:
        entries = sorted(p.name for p in root.iterdir())[:10]
        looked = "; ".join(
            f"{layout.marker} in {', '.join(str(root / b) if b else str(root) for b in layout.bases)}"
            for layout in spec.layouts
        )
        problem = f"{spec.name} not found under {root} (looked for {looked}; the root holds {entries or 'nothing'})"
    return DatasetError(problem + _help(spec))


def _download(spec: DatasetSpec, root: Path) -> None:
    if spec.download is None:
        raise DatasetError(
            f"{spec.name!r} cannot be downloaded automatically (download=True); fetch it by hand."
            + _help(spec)
        )
    import torchvision.datasets

    cls = getattr(torchvision.datasets, spec.download.cls)
    root.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s into %s with torchvision.datasets.%s", spec.name, root, spec.download.cls)
    for kwargs in spec.download.calls:
        try:
            cls(root=str(root), download=True, **kwargs)
        except Exception as exc:  # noqa: BLE001 - network, checksum, disk
            raise DatasetError(
                f"downloading {spec.name!r} into {root} with torchvision.datasets.{spec.download.cls} "
                f"failed ({type(exc).__name__}: {exc})." + _help(spec)
            ) from exc


# ---------------------------------------------------------------------------- building
def _holdout_layout(spec: DatasetSpec, test_fraction: float, seed: int) -> Layout:
    """A class-per-folder tree without split folders: a seeded per-class ``test_fraction`` is test."""
    if spec.name == "csv":
        return Layout("*.csv", CsvList(holdout=test_fraction, seed=seed))
    if spec.name != "imagefolder":
        raise DatasetError(f"test_fraction applies to 'imagefolder' trees and 'csv' lists only; "
                           f"{spec.name!r} has its own test split")
    return Layout("*", ImageFolder({"train": ("",), "test": ("",)}, holdout=test_fraction, seed=seed))


def read_records(name: str, split: str, root: str | os.PathLike | None = None, download: bool = False,
                 test_fraction: float | None = None, split_seed: int = 0) -> tuple[DatasetSpec, Path, Records]:
    """Find and read a dataset's file list (no image decoding); ``build_dataset`` wraps it."""
    spec = get_spec(name)
    view = split_view(name)[1]
    if split == "val":
        split = "test"
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    root_path = Path(root).expanduser() if root is not None else default_root(spec)
    found = _locate(spec, root_path)
    if test_fraction is not None:
        found = (_holdout_layout(spec, test_fraction, split_seed), root_path) if root_path.is_dir() else None
    if spec.name == "csv" and root_path.is_file():  # --data-root list.csv: the file itself
        holdout = CsvList(root_path.name, test_fraction, split_seed) if test_fraction is not None else None
        found = (Layout(root_path.name, holdout or CsvList(root_path.name)), root_path.parent)
    if found is None and download:
        _download(spec, root_path)
        found = _locate(spec, root_path)
    if found is None:
        raise _not_found(spec, root_path)
    layout, base = found
    if layout.note:
        msg = f"{spec.name}: {layout.note}"
        log.warning(msg)
        warnings.warn(msg, stacklevel=3)
    reader_split = split
    if view == "tune":
        if not getattr(layout.reader, "tunable", False):
            raise DatasetError(f"{spec.name} ({spec.expected.splitlines()[0].strip()}) has no validation list for @tune; "
                               "use the dataset without @tune, or a layout that ships one")
        reader_split = TUNE_SPLITS[split]
    try:
        records = class_view(layout.reader(root_path, base, reader_split), view)
    except DatasetError as exc:
        raise DatasetError(f"{spec.name} under {root_path}: {exc}" + _help(spec)) from exc
    except (OSError, KeyError, ValueError, IndexError, TypeError) as exc:
        raise DatasetError(
            f"{spec.name} under {root_path}: cannot read its files ({type(exc).__name__}: {exc})" + _help(spec)
        ) from exc
    if len(records.targets) == 0:
        raise DatasetError(f"{spec.name} under {root_path}: the {split} split holds no images" + _help(spec))
    if not isinstance(records.items, np.ndarray):
        for probe in {records.items[0], records.items[-1]}:
            if not os.path.exists(probe):
                raise DatasetError(
                    f"{spec.name} under {root_path}: image {probe} listed for {split} does not exist"
                    + _help(spec)
                )
    return spec, root_path, records


def build_dataset(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    transform: Callable[[Any], Any] | None = None,
    download: bool = False,
    bad_images: str = "fail",
    test_fraction: float | None = None,
    split_seed: int = 0,
) -> LabeledDataset:
    """The ``split`` ("train" or "test") of dataset ``name`` as a :class:`LabeledDataset`.

    ``test`` is the official test split, or the validation split where the paper evaluates on
    it (ImageNet, ImageNet-100, Tiny-ImageNet). ``root=None`` uses the default location (see
    :func:`default_root`); ``download=True`` fetches datasets torchvision can download when
    they are not already there. Missing or malformed data raise :class:`DatasetError` with the
    expected layout and where to get the data. ``test_fraction`` (``imagefolder`` only) reads a
    tree of class folders without ``train/``/``test/`` and holds out that seeded share per class.
    """
    if bad_images not in BAD_IMAGE_MODES:
        raise DatasetError(f"bad_images must be one of {BAD_IMAGE_MODES}, got {bad_images!r}")
    spec, root_path, records = read_records(name, split, root, download, test_fraction, split_seed)
    view = split_view(name)[1]
    dataset = LabeledDataset(
        spec.name + (f"@{view}" if view else ""), "test" if split == "val" else split, records.items, records.targets,
        records.classnames, transform=transform, bad_images=bad_images, root=root_path,
    )
    # {path: sha256} of the split / list files the images were read from (recorded in env.json)
    dataset.split_files = dict(records.split_files)
    dataset.logit_mask = records.logit_mask  # ImageNet-A/R: the 200 kept logits of a 1000-way head (else None)
    dataset.origins = dict(records.origins)
    if records.missing:  # CSV rows whose file is absent: fail or skip, as unreadable images
        listed = "; ".join(f"line {n}: {p}" for n, p in records.missing[:5])
        more = f" and {len(records.missing) - 5} more" if len(records.missing) > 5 else ""
        if bad_images == "fail":
            raise DatasetError(f"{spec.name} {root_path}: {len(records.missing)} row(s) name a file that does not "
                               f"exist ({listed}{more}). Fix the rows, or set bad_images='skip' "
                               "(config key `bad_images: skip`) to skip them.")
        msg = f"{spec.name} {root_path}: skipping {len(records.missing)} row(s) whose file does not exist ({listed}{more})"
        log.warning(msg)
        warnings.warn(msg, stacklevel=2)
        dataset.skipped.extend(f"{p} ({Path(root_path).name} line {n})" for n, p in records.missing)
    return dataset


# ------------------------------------------------------------------------- declarations
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_EXPECTED = """\
  train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
  t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
  (gzip or uncompressed; also accepted under {sub}/ as torchvision downloads them)"""

register(DatasetSpec(
    name="fashion-mnist",
    aliases=("fashionmnist",),
    layouts=(Layout("train-images-idx3-ubyte*", Idx(_IDX_FILES, FixedClasses(FASHION_MNIST_CLASSES)),
                    bases=("", "FashionMNIST/raw", "raw")),),
    expected=_IDX_EXPECTED.format(sub="FashionMNIST/raw"),
    source="`apt-get install dataset-fashion-mnist` (Debian, installs /usr/share/datasets/fashion-mnist) "
           "or https://github.com/zalandoresearch/fashion-mnist",
    download=Download("FashionMNIST", ({"train": True}, {"train": False})),
    system_roots=("/usr/share/datasets/fashion-mnist",),
))

register(DatasetSpec(
    name="mnist",
    layouts=(Layout("train-images-idx3-ubyte*", Idx(_IDX_FILES, FixedClasses(tuple("0123456789"))),
                    bases=("", "MNIST/raw", "raw")),),
    expected=_IDX_EXPECTED.format(sub="MNIST/raw"),
    source="https://yann.lecun.com/exdb/mnist/",
    download=Download("MNIST", ({"train": True}, {"train": False})),
))

register(DatasetSpec(
    name="cifar10",
    aliases=("cifar-10",),
    layouts=(Layout("batches.meta", CifarPickle(
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        label_key="labels", meta="batches.meta", names_key="label_names"),
        bases=("cifar-10-batches-py", "")),),
    expected="  cifar-10-batches-py/data_batch_1 … data_batch_5, test_batch, batches.meta  (python pickles)",
    source="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    download=Download("CIFAR10"),
))

register(DatasetSpec(
    name="cifar100",
    aliases=("cifar-100",),
    layouts=(Layout("meta", CifarPickle(
        {"train": ("train",), "test": ("test",)},
        label_key="fine_labels", meta="meta", names_key="fine_label_names"),
        bases=("cifar-100-python", "")),),
    expected="  cifar-100-python/train, test, meta  (python pickles, fine labels)",
    source="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    download=Download("CIFAR100"),
))

register(DatasetSpec(
    name="imagefolder",
    layouts=(Layout("train", ImageFolder({"train": ("train",), "test": ("test", "val")})),),
    expected="""\
  train/<class>/<images>     test/<class>/<images>   (or val/ instead of test/)
  classnames.txt             optional: `<folder><TAB or space><readable name>` per line
  No train/ and test/? Keep one folder per class in the root and set `test_fraction: 0.2`
  (--test-fraction 0.2): a seeded 80/20 split per class.""",
    source="your own images (always pass root=...)",
))

register(DatasetSpec(
    name="csv",
    layouts=(Layout("*.csv", CsvList()),),
    expected="""\
  list.csv with a header row and the columns path,label[,split]   (give the file: --data-root list.csv)
    path   image path relative to the CSV's folder (no leading '/', no '..')
    label  class label (any text; classes are the sorted labels, numeric order when all are integers)
    split  train | test | val (= test); without it set test_fraction (--test-fraction 0.2)
  classnames.txt next to the CSV   optional: `<label><TAB or space><readable name>` per line""",
    source="your own images (always pass root=... / --data-root list.csv)",
))

_TINY_CLASSES = WordNetClasses("wnids.txt", "words.txt")
register(DatasetSpec(
    name="tiny-imagenet",
    aliases=("tinyimagenet", "tiny-imagenet-200"),
    layouts=(Layout("wnids.txt", PerSplit({
        "train": ImageFolder({"train": ("train",)}, classes=_TINY_CLASSES, inner="images"),
        "test": ListFile({"test": ("val/val_annotations.txt",)}, _TINY_CLASSES,
                         image="val/images/{0}", sep="\t", key_field=1),
    }), bases=("", "tiny-imagenet-200")),),
    expected="""\
  tiny-imagenet-200/wnids.txt, words.txt
  tiny-imagenet-200/train/<wnid>/images/*.JPEG
  tiny-imagenet-200/val/images/*.JPEG + val/val_annotations.txt (val is the test split)""",
    source="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
))

_IMAGENET_EXPECTED = """\
  train/<wnid>/*.JPEG      val/<wnid>/*.JPEG   (ILSVRC-2012; val sorted into class folders,
                                               e.g. with the usual valprep.sh; val is the test split)
  also accepted as images/train, images/val (CoOp); optional classnames.txt `<wnid> <name>`"""
register(DatasetSpec(
    name="imagenet",
    **coop_templates("ImageNet"),
    aliases=("imagenet-1k", "imagenet1k", "ilsvrc2012"),
    layouts=(Layout("train", ImageFolder({"train": ("train",), "test": ("val",)},
                                         classes=ImageNetClasses("train")), bases=("", "images")),),
    expected=_IMAGENET_EXPECTED,
    source="https://image-net.org/download-images.php (ILSVRC2012 train and val archives)",
))

register(DatasetSpec(
    name="imagenet100",
    aliases=("imagenet-100",),
    layouts=(Layout("train", ImageFolder(
        {"train": ("train",), "test": ("val",)},
        classes=ImageNetClasses("train", only=ClassListFile("imagenet100.txt", "imagenet100.txt"))),
        bases=("", "images")),),
    expected=_IMAGENET_EXPECTED + """
  the 100 classes: imagenet100.txt in the root (one wnid per line) if present, else the CMC list
  shipped as lorevit/data/classlists/imagenet100.txt; the tree may hold all 1000 classes""",
    source="ImageNet (https://image-net.org) restricted to the CMC 100-class list (https://github.com/HobbitLong/CMC)",
))

register(DatasetSpec(
    name="flowers102",
    **coop_templates("OxfordFlowers"),
    aliases=("oxford-flowers", "oxford-flowers102", "flowers"),
    layouts=(
        Layout("split_zhou_OxfordFlowers.json", SplitJson("split_zhou_OxfordFlowers.json", "jpg"),
               bases=("", "oxford_flowers")),
        Layout("setid.mat", MatIds("imagelabels.mat", "labels", "setid.mat",
                                   {"train": ("trnid", "valid"), "test": ("tstid",)},
                                   image="jpg/image_{:05d}.jpg", classes=TorchvisionClasses("Flowers102")),
               bases=("", "flowers-102"),
               note="split_zhou_OxfordFlowers.json not found: using the official split "
                    "(train+val / test), not CoOp's split the paper follows"),
    ),
    expected="""\
  oxford_flowers/jpg/image_00001.jpg …  oxford_flowers/split_zhou_OxfordFlowers.json (CoOp split)
  fallback: flowers-102/jpg/, imagelabels.mat, setid.mat (official split, as torchvision downloads it)""",
    source=f"https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ + split_zhou_OxfordFlowers.json from {COOP_DATASETS_MD}",
    download=Download("Flowers102"),
))

register(DatasetSpec(
    name="stanford-cars",
    **coop_templates("StanfordCars"),
    aliases=("stanfordcars", "cars"),
    layouts=(Layout("split_zhou_StanfordCars.json", SplitJson("split_zhou_StanfordCars.json", ""),
                    bases=("", "stanford_cars")),),
    expected="""\
  stanford_cars/cars_train/*.jpg, cars_test/*.jpg
  stanford_cars/split_zhou_StanfordCars.json (CoOp split; paths relative to stanford_cars/)""",
    source=f"Stanford Cars images (https://ai.stanford.edu/~jkrause/cars/car_dataset.html, or a mirror) "
           f"+ split_zhou_StanfordCars.json from {COOP_DATASETS_MD}",
))

register(DatasetSpec(
    name="fgvc-aircraft",
    **coop_templates("FGVCAircraft"),
    aliases=("fgvcaircraft", "aircraft", "fgvc"),
    layouts=(Layout("variants.txt", ListFile(
        {"train": ("images_variant_trainval.txt",), "test": ("images_variant_test.txt",)},
        LineClasses("variants.txt"), image="images/{0}.jpg", maxsplit=1, key_field=1),
        bases=("", "data", "fgvc-aircraft-2013b/data", "fgvc_aircraft")),),
    expected="""\
  fgvc-aircraft-2013b/data/images/<id>.jpg, variants.txt,
  images_variant_trainval.txt, images_variant_test.txt  (`<id> <variant name>` per line)
  (CoOp's fgvc_aircraft/ with the same files directly inside is accepted too)""",
    source="https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (fgvc-aircraft-2013b.tar.gz)",
    download=Download("FGVCAircraft"),
))

register(DatasetSpec(
    name="stanford-dogs",
    aliases=("stanforddogs", "dogs"),
    layouts=(Layout("train_list.mat", MatFileList({"train": "train_list.mat", "test": "test_list.mat"}, "Images"),
                    bases=("", "stanford_dogs", "StanfordDogs")),),
    expected="""\
  Images/<n0208xxxx-breed>/<wnid>_<n>.jpg   (images.tar)
  train_list.mat, test_list.mat             (lists.tar: file_list + 1-based labels)""",
    source="http://vision.stanford.edu/aditya86/ImageNetDogs/ (images.tar and lists.tar)",
))

register(DatasetSpec(
    name="dtd",
    **coop_templates("DescribableTextures"),
    aliases=("describable-textures",),
    layouts=(Layout("labels/train1.txt", ListFile(
        {"train": ("labels/train1.txt", "labels/val1.txt"), "test": ("labels/test1.txt",)},
        FolderClasses("images"), image="images/{0}", key_field=None),
        bases=("", "dtd", "dtd/dtd")),),
    expected="""\
  dtd/images/<class>/<class>_<n>.jpg
  dtd/labels/train1.txt, val1.txt, test1.txt   (`<class>/<file>.jpg` per line; train = train1 + val1)""",
    source="https://www.robots.ox.ac.uk/~vgg/data/dtd/ (dtd-r1.0.1.tar.gz)",
    download=Download("DTD"),
))

EUROSAT_NAMES = (  # CoOp's readable EuroSAT names (the text in split_zhou_EuroSAT.json)
    ("AnnualCrop", "Annual Crop Land"), ("Forest", "Forest"),
    ("HerbaceousVegetation", "Herbaceous Vegetation Land"), ("Highway", "Highway or Road"),
    ("Industrial", "Industrial Buildings"), ("Pasture", "Pasture Land"),
    ("PermanentCrop", "Permanent Crop Land"), ("Residential", "Residential Buildings"),
    ("River", "River"), ("SeaLake", "Sea or Lake"),
)
register(DatasetSpec(
    name="eurosat",
    **coop_templates("EuroSAT"),
    layouts=(
        Layout("split_zhou_EuroSAT.json", SplitJson("split_zhou_EuroSAT.json", "2750"), bases=("", "eurosat")),
        Layout("2750", ImageFolder({"train": ("2750",), "test": ("2750",)},
                                   classes=FolderClasses("2750", rename=EUROSAT_NAMES), holdout=0.3, seed=0),
               bases=("", "eurosat"),
               note="split_zhou_EuroSAT.json not found: using a seeded 70/30 split per class, "
                    "not CoOp's split the paper follows"),
    ),
    expected="""\
  eurosat/2750/<Class>/<Class>_<n>.jpg   eurosat/split_zhou_EuroSAT.json (CoOp split)
  (without the JSON: a seeded 70/30 per-class split of 2750/)""",
    source=f"https://github.com/phelber/EuroSAT (EuroSAT RGB) + split_zhou_EuroSAT.json from {COOP_DATASETS_MD}",
    download=Download("EuroSAT"),
))

register(DatasetSpec(
    name="resisc45",
    aliases=("nwpu-resisc45",),
    layouts=(Layout("airplane", ImageFolder({"train": ("",), "test": ("",)}, holdout=0.2, seed=0),
                    bases=("NWPU-RESISC45", "")),),
    expected="""\
  NWPU-RESISC45/<class>/<class>_<nnn>.jpg   (45 classes × 700 images; airplane/ … wetland/)
  train/test: a seeded 80/20 split per class (no official split)""",
    source="https://gcheng-nwpu.github.io/#Datasets (NWPU-RESISC45; also on TFDS / Hugging Face)",
))

register(DatasetSpec(
    name="ucf101",
    **coop_templates("UCF101"),
    aliases=("ucf-101",),
    layouts=(Layout("split_zhou_UCF101.json", SplitJson("split_zhou_UCF101.json", "UCF-101-midframes"),
                    bases=("", "ucf101")),),
    expected="""\
  ucf101/UCF-101-midframes/<Action_Name>/v_<...>.jpg   (one middle frame per video, CoOp)
  ucf101/split_zhou_UCF101.json""",
    source=f"UCF-101-midframes.zip and split_zhou_UCF101.json from {COOP_DATASETS_MD}",
))

register(DatasetSpec(
    name="patternnet",
    layouts=(Layout("images/airplane", ImageFolder({"train": ("images",), "test": ("images",)}, holdout=0.2, seed=0),
                    bases=("", "PatternNet")),),
    expected="""\
  PatternNet/images/<class>/<name>.jpg   (38 classes × 800 images; airplane/ … wastewater_treatment_plant/)
  train/test: a seeded 80/20 split per class (no official split)""",
    source="https://sites.google.com/view/zhouwx/dataset (PatternNet.zip)",
))

# The twelve few-shot datasets of the paper (Table 1), in the paper's order.
FEW_SHOT_DATASETS = (
    "flowers102", "stanford-cars", "fgvc-aircraft", "stanford-dogs", "cifar10", "cifar100",
    "dtd", "imagenet", "eurosat", "resisc45", "ucf101", "patternnet",
)
FULL_DATA_DATASETS = ("cifar100", "imagenet100", "tiny-imagenet", "imagenet")
