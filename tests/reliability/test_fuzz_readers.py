"""Property-based fuzzing of every reader of user files (issue 25 §3).

Each test writes a valid file of the format, then Hypothesis mutates it (bytes cut, flipped, inserted, deleted,
overwritten, or random bytes; for structured formats also parts of the structure replaced by odd values: wrong
types, huge or non-finite numbers, names such as ``../x``) and calls the reader the commands use. The property:
the reader returns a correct read (checked against the format's invariants) or raises a lorevit ``UserError``
with a non-empty message — never another exception, a hang (the profile's deadline), a write into the data
folder, or code run by a pickle. The number of cases is printed at the end of the session.

``pytest tests/reliability/test_fuzz_readers.py`` runs the ``ci`` profile; ``--hypothesis-profile nightly`` 25×
as many random cases.
"""
from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

from lorevit.errors import UserError  # noqa: E402

from tests.reliability.fuzz import PY_VALUES, JSON_VALUES, count, edited, mutated, snapshot  # noqa: E402


def read_or_user_error(root: Path, call, one_line: bool = True):
    """``call()``'s result, or None when it raised a UserError (checked: a message, one line when asked);
    any other exception fails the test. Nothing under ``root`` may change."""
    before = snapshot(root)
    try:
        result = call()
    except UserError as err:
        message = str(err)
        assert message.strip(), f"{type(err).__name__} without a message"
        first = message.splitlines()[0]
        assert first.strip() and "Traceback" not in message
        if one_line:
            assert "\n" not in message, message
        result = None
    assert snapshot(root) == before, "a reader wrote into the data folder"
    return result


# ------------------------------------------------------------------------------------------------ CIFAR
CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def _cifar_batch(n=3):
    rng = np.random.default_rng(0)
    return {b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}


def _write_cifar(root: Path, test_batch: bytes, meta: bytes) -> Path:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for i in range(1, 6):
        (base / f"data_batch_{i}").write_bytes(pickle.dumps(_cifar_batch(), protocol=2))
    (base / "test_batch").write_bytes(test_batch)
    (base / "batches.meta").write_bytes(meta)
    return root


VALID_BATCH = pickle.dumps(_cifar_batch(), protocol=2)
VALID_META = pickle.dumps({b"label_names": CIFAR_NAMES, b"num_cases_per_batch": 3, b"num_vis": 3072}, protocol=2)


class _Runs:
    """A pickled value that would run ``touch <file>`` if unpickled by plain ``pickle``."""

    def __init__(self, module: str, name: str, target: str):
        self.module, self.name, self.target = module, name, target

    def __reduce__(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.name), (f"touch {self.target}",)


RUNNERS = st.sampled_from([("os", "system"), ("posix", "system"), ("subprocess", "getoutput"),
                           ("subprocess", "check_output")])


@st.composite
def cifar_pickles(draw, valid: dict | list, protocol_min=0):
    """Bytes of a CIFAR-like pickle: the valid one mutated, the structure edited, or with a code-running value."""
    kind = draw(st.sampled_from(["bytes", "edit", "runs"]))
    protocol = draw(st.integers(protocol_min, pickle.HIGHEST_PROTOCOL))
    if kind == "bytes":
        return draw(mutated(pickle.dumps(valid, protocol=2))), None
    if kind == "edit":
        return pickle.dumps(draw(edited(valid, PY_VALUES)), protocol=protocol), None
    return None, draw(RUNNERS)


def _with_runner(valid, runner, target: Path, protocol: int) -> bytes:
    obj = dict(valid) if isinstance(valid, dict) else {"x": valid}
    obj[b"labels" if b"labels" in obj else "x"] = _Runs(*runner, str(target))
    return pickle.dumps(obj, protocol=protocol)


@given(which=st.sampled_from(["test_batch", "batches.meta"]), case=cifar_pickles(_cifar_batch()),
       meta_case=cifar_pickles({b"label_names": CIFAR_NAMES}))
def test_fuzz_cifar_pickles(which, case, meta_case):
    from lorevit.data.registry import build_dataset

    count("cifar pickles")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sentinel = tmp / "code-ran"
        data, runner = case if which == "test_batch" else meta_case
        valid = _cifar_batch() if which == "test_batch" else {b"label_names": CIFAR_NAMES}
        if runner is not None:
            data = _with_runner(valid, runner, sentinel, 2)
        root = _write_cifar(tmp / "cifar", data if which == "test_batch" else VALID_BATCH,
                            data if which == "batches.meta" else VALID_META)
        ds = read_or_user_error(root, lambda: build_dataset("cifar10", "test", root), one_line=False)
        assert not sentinel.exists(), "a pickle ran code"
        if runner is not None:
            assert ds is None, "a pickle asking for os.system was read"
        if ds is not None:
            assert ds.items.dtype == np.uint8 and ds.items.shape[1:] == (32, 32, 3) and len(ds.items) == len(ds)
            assert all(isinstance(n, str) for n in ds.classnames)
        if data == VALID_BATCH and which == "test_batch" or data == VALID_META and which == "batches.meta":
            assert ds is not None and len(ds) == 3


# ------------------------------------------------------------------------------------------------- idx
def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


IDX_IMAGES = _idx(np.arange(2 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(2, 28, 28))
IDX_LABELS = _idx(np.array([3, 7], dtype=np.uint8))


@given(which=st.sampled_from(["images", "labels"]), gz=st.booleans(), data=st.data())
def test_fuzz_idx_files(which, gz, data):
    from lorevit.data.registry import build_dataset

    count("idx files")
    valid = IDX_IMAGES if which == "images" else IDX_LABELS
    raw = data.draw(mutated(gzip.compress(valid, mtime=0) if gz else valid))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fmnist"
        root.mkdir()
        suffix = ".gz" if gz else ""
        for split in ("train", "t10k"):
            for kind, content in (("images-idx3", IDX_IMAGES), ("labels-idx1", IDX_LABELS)):
                name = f"{split}-{kind}-ubyte"
                if split == "t10k" and kind.startswith(which):
                    (root / (name + suffix)).write_bytes(raw)
                else:
                    (root / name).write_bytes(content)
        ds = read_or_user_error(root, lambda: build_dataset("fashion-mnist", "test", root), one_line=False)
        if ds is not None:
            assert ds.items.ndim == 3 and ds.items.dtype == np.uint8 and len(ds.items) == len(ds.targets)
            assert min(ds.items.shape[1:]) >= 1
        if (gzip.decompress(raw) if gz and raw == gzip.compress(valid, mtime=0) else raw) == valid:
            assert ds is not None and ds.targets == [3, 7] and (ds.items[1] == np.frombuffer(
                IDX_IMAGES, np.uint8, offset=16)[784:].reshape(28, 28)).all()


# -------------------------------------------------------------------------------------- revisitop gnd
def _gnd(numpy: bool):
    arr = (lambda v, dt=np.int64: np.array(v, dtype=dt)) if numpy else (lambda v, dt=None: list(v))
    return {"imlist": ["db0", "db1", "db2"], "qimlist": ["q0"],
            "gnd": [{"bbx": arr([1.0, 2.0, 9.0, 8.0], np.float64), "easy": arr([0]), "hard": arr([1]),
                     "junk": arr([], np.int64)}]}


@given(numpy=st.booleans(), data=st.data())
def test_fuzz_revisitop_gnd(numpy, data):
    from lorevit.tasks.retrieval.dataset import read_dataset

    count("revisitop gnd_*.pkl")
    valid = _gnd(numpy)
    raw, runner = data.draw(cifar_pickles(valid))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sentinel = tmp / "code-ran"
        if runner is not None:
            raw = _with_runner(valid, runner, sentinel, 2)
        (tmp / "data" / "rox").mkdir(parents=True)
        (tmp / "data" / "rox" / "gnd_rox.pkl").write_bytes(raw)
        ds = read_or_user_error(tmp / "data", lambda: read_dataset(tmp / "data", "rox", check_images=False))
        assert not sentinel.exists(), "a pickle ran code"
        if ds is not None:
            assert runner is None
            for n in ds.imlist + ds.qimlist:
                assert "/" not in n and "\\" not in n and n not in ("", ".", "..")
            assert len(ds.gnd) == len(ds.qimlist)
            for g in ds.gnd:
                assert all(0 <= i < len(ds.imlist) for k in ("easy", "hard", "junk") for i in g[k])
                assert len(g["bbx"]) == 4 and all(np.isfinite(g["bbx"]))
        if raw == pickle.dumps(valid, protocol=2):
            assert ds is not None and ds.gnd[0]["easy"] == [0]


# --------------------------------------------------------------------------------------------- SPair
PAIR = "000001-a-b:cat"
SPAIR_ANN = {"category": "cat", "src_imname": "a.jpg", "trg_imname": "b.jpg", "src_imsize": [16, 12, 3],
             "trg_imsize": [16, 12, 3], "src_bndbox": [1, 1, 10, 9], "trg_bndbox": [2, 2, 12, 10],
             "src_kps": [[1, 2], [3, 4]], "trg_kps": [[5, 6], [7, 8]], "pair_id": 1}


def _write_spair(root: Path, ann: bytes, layout: bytes) -> None:
    from PIL import Image

    (root / "JPEGImages" / "cat").mkdir(parents=True)
    for name in ("a", "b"):
        Image.new("RGB", (16, 12), (90, 20, 40)).save(root / "JPEGImages" / "cat" / f"{name}.jpg")
    (root / "PairAnnotation" / "test").mkdir(parents=True)
    (root / "PairAnnotation" / "test" / f"{PAIR}.json").write_bytes(ann)
    (root / "Layout" / "large").mkdir(parents=True)
    (root / "Layout" / "large" / "test.txt").write_bytes(layout)


@given(which=st.sampled_from(["json-bytes", "json-edit", "layout"]), data=st.data())
def test_fuzz_spair_annotations(which, data):
    from lorevit.tasks.correspondence.spair import read_pairs

    count("SPair JSON + Layout lists")
    ann = json.dumps(SPAIR_ANN).encode()
    layout = f"{PAIR}\n".encode()
    if which == "json-bytes":
        ann = data.draw(mutated(ann))
    elif which == "json-edit":
        ann = json.dumps(data.draw(edited(SPAIR_ANN))).encode()
    else:
        layout = data.draw(mutated(layout))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "SPair-71k"
        _write_spair(root, ann, layout)
        pairs = read_or_user_error(root, lambda: read_pairs(root, "test"))
        if pairs is not None:
            for p in pairs.pairs:
                assert p.src_kps.shape == p.trg_kps.shape and p.src_kps.shape[1] == 2 and len(p.src_kps) >= 1
                assert p.bbox_side > 0 and np.isfinite(p.src_kps).all()
                assert p.src_image.is_file() and root in p.src_image.parents
        if ann == json.dumps(SPAIR_ANN).encode() and layout == f"{PAIR}\n".encode():
            assert pairs is not None and len(pairs.pairs) == 1


# --------------------------------------------------------------------------------------------- DAVIS
def _palette_png(labels: np.ndarray) -> bytes:
    from lorevit.tasks.video.davis import write_mask

    with tempfile.TemporaryDirectory() as tmp:
        return write_mask(Path(tmp) / "m.png", labels).read_bytes()


MASK = np.zeros((6, 8), dtype=np.uint8)
MASK[1:4, 2:6] = 1
MASK[5, 7] = 255
VALID_PNG = _palette_png(MASK)


def _write_davis(root: Path, png: bytes, imagesets: bytes) -> None:
    from PIL import Image

    for i in range(2):
        (root / "JPEGImages" / "480p" / "seq").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6)).save(root / "JPEGImages" / "480p" / "seq" / f"{i:05d}.jpg")
    (root / "Annotations" / "480p" / "seq").mkdir(parents=True)
    (root / "Annotations" / "480p" / "seq" / "00000.png").write_bytes(VALID_PNG)
    (root / "Annotations" / "480p" / "seq" / "00001.png").write_bytes(png)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_bytes(imagesets)


@given(which=st.sampled_from(["png", "imagesets"]), data=st.data())
def test_fuzz_davis_palette_pngs_and_imagesets(which, data):
    from lorevit.tasks.video.davis import Davis

    count("DAVIS palette PNGs + ImageSets")
    png, sets = VALID_PNG, b"seq\n"
    if which == "png":
        png = data.draw(mutated(VALID_PNG))
    else:
        sets = data.draw(mutated(sets))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "DAVIS"
        _write_davis(root, png, sets)

        def read():
            davis = Davis(root, need_frames=True)
            return [(s, davis.ground_truth(s)) for s in davis.sequences("val")]

        seqs = read_or_user_error(root, read)
        if seqs is not None:
            for s, gt in seqs:
                assert gt.dtype == np.uint8 and gt.ndim == 3 and len(gt) == len(s.annotations)
                assert all(root in f.parents for f in s.frames + s.annotations)
        if png == VALID_PNG and sets == b"seq\n":
            assert seqs is not None and (seqs[0][1][1] == MASK).all()


# ------------------------------------------------------------------------------------- split JSONs
SPLIT = {"train": [["AnnualCrop/a.jpg", 0, "AnnualCrop"], ["Forest/b.jpg", 1, "Forest"]],
         "val": [["Forest/c.jpg", 1, "Forest"]], "test": [["AnnualCrop/d.jpg", 0, "AnnualCrop"]]}


@given(which=st.sampled_from(["bytes", "edit"]), data=st.data())
def test_fuzz_split_jsons(which, data):
    from PIL import Image

    from lorevit.data.registry import build_dataset

    count("split JSONs")
    valid = json.dumps(SPLIT).encode()
    raw = data.draw(mutated(valid)) if which == "bytes" else json.dumps(data.draw(edited(SPLIT))).encode()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "eurosat"
        for rel in ("AnnualCrop/a.jpg", "Forest/b.jpg", "Forest/c.jpg", "AnnualCrop/d.jpg"):
            (root / "2750" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save(root / "2750" / rel)
        (root / "split_zhou_EuroSAT.json").write_bytes(raw)
        ds = read_or_user_error(root, lambda: build_dataset("eurosat", "test", root), one_line=False)
        if ds is not None:
            assert len(ds.items) == len(ds.targets) >= 1
            assert all(root in Path(p).parents for p in ds.items)
            assert all(0 <= t < ds.num_classes for t in ds.targets) and all(ds.classnames)
        if raw == valid:
            assert ds is not None and ds.classnames == ["AnnualCrop", "Forest"] and ds.targets == [0]


# -------------------------------------------------------------------------------------- classnames.txt
CLASSNAMES = "red_square red square\n# a comment\ngreen_square\tgreen square\nblue_square blue  square\n".encode()


@given(data=st.data())
def test_fuzz_classnames_txt(data):
    from PIL import Image

    from lorevit.data.registry import build_dataset

    count("classnames.txt")
    raw = data.draw(mutated(CLASSNAMES) | st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "colors"
        for split in ("train", "test"):
            for c in ("blue_square", "green_square", "red_square"):
                (root / split / c).mkdir(parents=True)
                Image.new("RGB", (4, 4)).save(root / split / c / "0.png")
        (root / "classnames.txt").write_bytes(raw)
        ds = read_or_user_error(root, lambda: build_dataset("imagefolder", "train", root), one_line=False)
        if ds is not None:
            assert len(ds.classnames) == 3 and all(isinstance(n, str) and n.strip() == n and n for n in ds.classnames)
        if raw == CLASSNAMES:
            assert ds.classnames == ["blue square", "green square", "red square"]


# ------------------------------------------------------------------------------------------- config YAML
CONFIG = {"method": "lore", "backbone": "vit_tiny_patch16_224", "weights": "random", "img_size": 32,
          "backbone_kwargs": {"patch_size": 8, "depth": 2}, "dataset": "imagefolder", "data_root": "data",
          "shots": 4, "epochs": 2, "lr": 0.002, "batch_size": 8, "knowledge": "st:minilm", "devices": 1,
          "resume": "auto", "logger": "csv"}


@st.composite
def yaml_texts(draw):
    import yaml

    kind = draw(st.sampled_from(["bytes", "edit", "text"]))
    valid = yaml.safe_dump(CONFIG, sort_keys=False).encode()
    if kind == "bytes":
        return draw(mutated(valid))
    if kind == "edit":
        edit = draw(edited(CONFIG, JSON_VALUES | st.integers() | st.dates() | st.sets(st.integers(), max_size=3)
                           | st.tuples(st.integers(), st.text(max_size=3))))
        return yaml.safe_dump(edit, sort_keys=False, allow_unicode=True).encode() if isinstance(edit, dict) \
            else yaml.safe_dump(edit).encode()
    return draw(st.text(max_size=80)).encode("utf-8", "surrogatepass")


@given(raw=yaml_texts())
def test_fuzz_config_yaml(raw):
    from lorevit.config import Config

    count("config YAML")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "my.yaml"
        path.write_bytes(raw)
        cfg = read_or_user_error(Path(tmp), lambda: Config.from_yaml(path))
        if cfg is not None:  # a correct read: what lorevit writes back, it reads to the same config
            again = Path(tmp) / "again.yaml"
            again.write_text(cfg.to_yaml())
            assert Config.from_yaml(again).to_dict() == cfg.to_dict()
        import yaml

        if raw == yaml.safe_dump(CONFIG, sort_keys=False).encode():
            assert cfg is not None and cfg.img_size == 32 and cfg.resume == "auto"


# ------------------------------------------------------------------- adapter config.json + safetensors
ADAPTER = Path(__file__).parents[1] / "fixtures" / "adapters_v0_1_0" / "linear.safetensors"


def _safetensors_parts(raw: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _safetensors_bytes(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


@pytest.fixture(scope="module")
def tiny_vit():
    from tests.conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT

    from lorevit.backbone import create_backbone

    return create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS)


@st.composite
def adapter_files(draw):
    """A lorevit adapter file: its header bytes mutated, its header JSON edited (tensor entries or the
    string metadata), one metadata value replaced by odd text, or the whole file mutated."""
    raw = ADAPTER.read_bytes()
    header, body = _safetensors_parts(raw)
    kind = draw(st.sampled_from(["header-bytes", "header-edit", "metadata", "file"]))
    if kind == "file":
        return draw(mutated(raw))
    if kind == "header-bytes":
        n = struct.unpack("<Q", raw[:8])[0]
        return draw(mutated(raw[:8 + n])) + body
    if kind == "header-edit":
        return _safetensors_bytes(draw(edited(header)), body)
    meta = dict(header["__metadata__"])
    key = draw(st.sampled_from(sorted(meta) + ["metrics", "method_options"]))
    odd = draw(st.one_of(st.text(max_size=20), JSON_VALUES.map(json.dumps), st.sampled_from(
        ["", "null", "[]", "{}", "-1", "1e400", "[1, 2]", '["a", 3]', "{a: [1}", "method: lore\nshots: x", "0"])))
    if draw(st.booleans()) and key in meta:
        del meta[key]
    else:
        meta[key] = odd
    return _safetensors_bytes({**header, "__metadata__": meta}, body)


@given(raw=adapter_files())
def test_fuzz_adapter_safetensors(raw, tiny_vit):
    from lorevit.adapters.format import read_adapter
    from lorevit.factory import build_adapter_model

    count("adapter safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        (run / "adapter.safetensors").write_bytes(raw)

        def load():
            tensors, meta = read_adapter(run)
            return build_adapter_model(tensors, meta, run, backbone=tiny_vit)[0]

        model = read_or_user_error(run, load)
        if model is not None:
            import torch

            logits = model(torch.zeros(1, 3, 32, 32)).logits
            assert logits.shape == (1, len(model.classnames))
        if raw == ADAPTER.read_bytes():
            assert model is not None


@given(raw=st.one_of(mutated(b'{"method": "linear", "num_classes": 3}'), JSON_VALUES.map(lambda v: json.dumps(v).encode())))
def test_fuzz_adapter_config_json(raw):
    from lorevit.factory import from_pretrained

    count("adapter config.json")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "hub"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(ADAPTER.read_bytes())
        (folder / "config.json").write_bytes(raw)
        model = read_or_user_error(folder, lambda: from_pretrained(folder, weights="random"))
        if model is not None:
            assert model.classnames == ["blue square", "green square", "red square"]
