"""The protocol datasets of issue 21 §1 on hand-written fixtures in each community's real layout."""
from __future__ import annotations

import json
import os
import pickle
import sys
import types

import numpy as np
import pytest
from PIL import Image

from lorevit.data import build_dataset
from lorevit.data.dataset import DatasetError


def _img(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)


def _vtab_task(root, task="cifar", sizes=(800, 200), classes=100, images=True):
    folder = root / task
    lines = {}
    for split, n in zip(("train800", "val200"), sizes):
        lines[split] = [f"images/{split}/{i:06d}.jpg {i % classes}" for i in range(n)]
    lines["train800val200"] = [ln.replace("images/train800/", "images/train800val200/") for ln in lines["train800"]] + \
        [ln.replace("images/val200/", "images/train800val200/").replace(
            f"/{int(ln.split('/')[2][:6]):06d}", f"/{int(ln.split('/')[2][:6]) + sizes[0]:06d}") for ln in lines["val200"]]
    lines["test"] = [f"images/test/{i:06d}.jpg {(i * 7) % classes}" for i in range(30)]
    for split, rows in lines.items():
        (folder / f"{split}.txt").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{split}.txt").write_text("\n".join(rows) + "\n")
        for row in rows if images else (rows[0], rows[-1]):
            _img(folder / row.split()[0])
    return folder


def test_vtab_lines_sizes_views_and_folder_names(tmp_path):
    root = tmp_path / "vtab-1k"
    # NOAH's train800val200 renumbers the images; our fixture keeps train800 ∪ val200 as the same set of lines
    task = root / "cifar100"  # the folder name NOAH's scripts use
    for split, n in (("train800", 800), ("val200", 200)):
        rows = [f"images/{split}/{i:06d}.jpg {i % 100}" for i in range(n)]
        task.mkdir(parents=True, exist_ok=True)
        (task / f"{split}.txt").write_text("\n".join(rows) + "\n")
    (task / "train800val200.txt").write_text((task / "train800.txt").read_text() + (task / "val200.txt").read_text())
    (task / "test.txt").write_text("".join(f"images/test/{i:06d}.jpg {i % 100}\n" for i in range(50)))
    for split, last in (("train800", 799), ("val200", 199), ("test", 49)):
        _img(task / f"images/{split}/000000.jpg")
        _img(task / f"images/{split}/{last:06d}.jpg")
    for data_root in (root, task):  # --data-root names the vtab-1k folder or the task folder
        train = build_dataset("vtab-cifar", "train", root=data_root)
        test = build_dataset("vtab-cifar", "test", root=data_root)
        assert (len(train), len(test), len(train.classnames)) == (1000, 50, 100)
    tune_train = build_dataset("vtab-cifar@tune", "train", root=root)
    tune_val = build_dataset("vtab-cifar@tune", "test", root=root)
    assert (len(tune_train), len(tune_val)) == (800, 200)
    assert tune_train.name == "vtab-cifar@tune" and tune_train.classnames[3] == "class 3"
    import hashlib

    assert train.split_files[str(task / "train800val200.txt")] == hashlib.sha256(
        (task / "train800val200.txt").read_bytes()).hexdigest()
    # the alias of the dataset name works too
    assert len(build_dataset("vtab-cifar100", "test", root=root)) == 50


def test_vtab_bad_lines(tmp_path):
    task = _vtab_task(tmp_path, "dtd", sizes=(8, 2), classes=47, images=False)
    assert len(build_dataset("vtab-dtd", "train", root=task)) == 10  # stand-in sizes: a logged note, not an error
    (task / "test.txt").write_text("images/test/000000.jpg 47\n")  # DTD has 47 classes: label 47 is out of range
    with pytest.raises(DatasetError, match="outside 0..46"):
        build_dataset("vtab-dtd", "test", root=task)
    (task / "test.txt").write_text("../../etc/passwd 1\n")  # a name from a list file never becomes a path unchecked
    with pytest.raises(DatasetError, match=r"\.\."):
        build_dataset("vtab-dtd", "test", root=task)
    (task / "train800val200.txt").write_text((task / "train800.txt").read_text())  # not train800 ∪ val200
    with pytest.raises(DatasetError, match="train800.txt ∪ val200.txt"):
        build_dataset("vtab-dtd", "train", root=task)


def test_fgvc_json_remaps_sorted_ids_and_names(tmp_path):
    root = tmp_path / "CUB_200_2011"
    files = {"train": {"003.Black_footed_Albatross/a.jpg": 3, "010.Red_winged_Blackbird/b.jpg": 10,
                       "007.Parakeet_Auklet/c.jpg": 7},
             "val": {"003.Black_footed_Albatross/d.jpg": 3},
             "test": {"010.Red_winged_Blackbird/e.jpg": 10, "007.Parakeet_Auklet/f.jpg": 7}}
    for split, d in files.items():
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.json").write_text(json.dumps(d))
        for rel in d:
            _img(root / "images" / rel)
    train = build_dataset("fgvc-cub", "train", root=tmp_path)
    assert train.targets == [0, 2, 1]  # ids 3, 7, 10 → 0, 1, 2 (sorted)
    assert train.classnames == ["Black footed Albatross", "Parakeet Auklet", "Red winged Blackbird"]
    assert train.items[0] == str(root / "images" / "003.Black_footed_Albatross/a.jpg")
    assert len(build_dataset("fgvc-cub@tune", "test", root=root)) == 1  # @tune tests on val.json
    assert len(build_dataset("fgvc-cub", "test", root=root)) == 2
    assert str(root / "val.json") in train.split_files
    (root / "test.json").write_text(json.dumps({"../../outside.jpg": 3}))
    with pytest.raises(DatasetError, match=r"\.\."):
        build_dataset("fgvc-cub", "test", root=root)


def test_caltech101_fallback_has_100_classes_and_renames(tmp_path):
    cal = tmp_path / "caltech-101" / "101_ObjectCategories"
    folders = ["BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes", "airplanes"] + \
        [f"class_{i:03d}" for i in range(96)]
    for f in folders:
        for i in range(10):
            _img(cal / f / f"image_{i:04d}.jpg")
    with pytest.warns(UserWarning, match="fallback split"):
        train = build_dataset("caltech101", "train", root=tmp_path)
    assert len(train.classnames) == 100
    assert train.classnames[:4] == ["face", "leopard", "motorbike", "airplane"]
    with pytest.warns(UserWarning):
        test = build_dataset("caltech101", "test", root=tmp_path)
    assert len(train) == 100 * 5 and len(test) == 100 * 3  # 50/20/30 per class
    assert not set(train.items) & set(test.items)


def _food101(tmp_path, split: dict):
    """CoOp's Food101 layout: split_zhou_Food101.json and an image for every row."""
    root = tmp_path / "food-101"
    root.mkdir()
    (root / "split_zhou_Food101.json").write_text(json.dumps(split))
    for rows in split.values():
        for rel, _, _ in rows:
            _img(root / "images" / rel)
    return root


def test_coop_split_json_and_tune(tmp_path):
    root = _food101(tmp_path, {
        "train": [["apple_pie/1.jpg", 0, "apple_pie"], ["baby_back_ribs/2.jpg", 1, "baby_back_ribs"]],
        "val": [["apple_pie/3.jpg", 0, "apple_pie"]],
        "test": [["baby_back_ribs/4.jpg", 1, "baby_back_ribs"], ["apple_pie/5.jpg", 0, "apple_pie"]]})
    train = build_dataset("food101", "train", root=tmp_path)
    assert train.classnames == ["apple pie", "baby back ribs"] and len(train) == 2
    assert len(build_dataset("food101@tune", "test", root=tmp_path)) == 1
    assert list(train.split_files.values())[0] == __import__("hashlib").sha256(
        (root / "split_zhou_Food101.json").read_bytes()).hexdigest()


def test_sun397_name_rule_and_partitions(tmp_path):
    from lorevit.data.benchmarks import sun397_name

    assert sun397_name("/a/apartment_building/outdoor") == "outdoor apartment_building"
    assert sun397_name("/a/abbey") == "abbey"
    root = tmp_path / "sun397"
    root.mkdir()
    (root / "ClassName.txt").write_text("/a/abbey\n/a/apartment_building/outdoor\n")
    train_lines = [f"/a/abbey/sun_{i}.jpg" for i in range(5)] + [f"/a/apartment_building/outdoor/sun_{i}.jpg" for i in range(5)]
    (root / "Training_01.txt").write_text("\n".join(train_lines) + "\n")
    (root / "Testing_01.txt").write_text("/a/abbey/sun_t.jpg\n/a/apartment_building/outdoor/sun_t.jpg\n")
    for ln in train_lines + ["/a/abbey/sun_t.jpg", "/a/apartment_building/outdoor/sun_t.jpg"]:
        _img(root / "SUN397" / ln.lstrip("/"))
    with pytest.warns(UserWarning):
        test = build_dataset("sun397", "test", root=tmp_path)
    assert test.classnames == ["abbey", "outdoor apartment building"] and test.targets == [0, 1]
    with pytest.warns(UserWarning):
        train = build_dataset("sun397", "train", root=tmp_path)
    with pytest.warns(UserWarning):
        val = build_dataset("sun397@tune", "test", root=tmp_path)
    assert (len(train), len(val)) == (8, 2) and not set(train.items) & set(val.items)


def test_pets_label_rule(tmp_path):
    from lorevit.data.benchmarks import pets_name

    assert pets_name("american_bulldog_100") == "american_bulldog" and pets_name("Abyssinian_12") == "abyssinian"
    root = tmp_path / "oxford_pets"
    (root / "annotations").mkdir(parents=True)
    stems = [("Abyssinian_1", 1), ("Abyssinian_2", 1), ("american_bulldog_10", 2), ("american_bulldog_11", 2),
             ("Abyssinian_3", 1)]
    (root / "annotations" / "trainval.txt").write_text("#Image CLASS-ID SPECIES BREED ID\n" +
                                                       "".join(f"{s} {c} 1 {c}\n" for s, c in stems))
    (root / "annotations" / "test.txt").write_text("american_bulldog_12 2 2 1\n")
    for s, _ in stems + [("american_bulldog_12", 2)]:
        _img(root / "images" / f"{s}.jpg")
    with pytest.warns(UserWarning):
        test = build_dataset("oxford-pets", "test", root=tmp_path)
    assert test.classnames == ["abyssinian", "american bulldog"] and test.targets == [1]  # label = class id − 1


def test_imagenet_v2_folder_labels(tmp_path):
    base = tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val"
    for k in (0, 5, 999):
        _img(base / str(k) / "a.jpeg")
    ds = build_dataset("imagenet-v2", "test", root=tmp_path)
    assert ds.targets == [0, 5, 999] and len(ds.classnames) == 1000
    with pytest.raises(DatasetError, match="evaluation-only"):
        build_dataset("imagenet-v2", "train", root=tmp_path)


def test_imagenet_a_r_masks_against_wnid_lists(tmp_path):
    from lorevit.data.benchmarks import imagenet_200_mask, imagenet_wnids

    wnids = imagenet_wnids()
    a, r = imagenet_200_mask("a"), imagenet_200_mask("r")
    assert len(a) == len(r) == 200
    assert a[:5] == [6, 11, 13, 15, 17] and a[-4:] == [984, 986, 987, 988]  # BASELINES_VISION §B4
    assert r[:5] == [1, 2, 4, 6, 8] and r[-3:] == [981, 983, 988]
    base = tmp_path / "imagenet-rendition" / "imagenet-r"
    for i in r:
        _img(base / wnids[i] / "x.jpg")
    ds = build_dataset("imagenet-r", "test", root=tmp_path)
    assert len(ds.classnames) == 200 and ds.logit_mask == r and ds.targets == list(range(200))
    os.rename(base / wnids[r[100]], base / "n99999999")  # not ImageNet-R's wnids
    with pytest.raises(DatasetError, match="not ImageNet-R's 200 wnids"):
        build_dataset("imagenet-r", "test", root=tmp_path)


def test_base_new_views_relabel(tmp_path):
    names = [f"c{i}" for i in range(5)]
    _food101(tmp_path, {k: [[f"{n}/{k}{j}.jpg", i, n] for i, n in enumerate(names) for j in range(2)]
                        for k in ("train", "val", "test")})
    base = build_dataset("food101@base", "test", root=tmp_path)
    new = build_dataset("food101@new", "test", root=tmp_path)
    assert base.classnames == ["c0", "c1", "c2"] and new.classnames == ["c3", "c4"]  # ceil(5/2) = 3 base classes
    assert sorted(set(base.targets)) == [0, 1, 2] and sorted(set(new.targets)) == [0, 1]  # relabelled from 0
    assert new.items[0].endswith("c3/test0.jpg") and new.targets[0] == 0
    with pytest.raises(DatasetError, match="unknown view"):
        build_dataset("food101@novel", "test", root=tmp_path)


def _datum_pickle(tmp_path, records, name="shot_2-seed_1.pkl"):
    """A CoOp few-shot file as Dassl writes it: Datum objects pickled at the highest protocol."""
    mod = types.ModuleType("dassl.data.datasets.base_dataset")

    class Datum:
        def __init__(self, impath, label, classname):
            self._impath, self._label, self._domain, self._classname = impath, label, 0, classname

    Datum.__module__ = mod.__name__
    Datum.__qualname__ = "Datum"
    mod.Datum = Datum
    saved = {k: sys.modules.get(k) for k in ("dassl", "dassl.data", "dassl.data.datasets", mod.__name__)}
    for k in saved:
        sys.modules[k] = mod if k == mod.__name__ else types.ModuleType(k)
    try:
        data = pickle.dumps({"train": [Datum(*r) for r in records], "val": []}, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    path = tmp_path / "food-101" / "split_fewshot" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_coop_fewshot_pickle_is_read_without_dassl_and_malicious_ones_refused(tmp_path):
    from lorevit.data.benchmarks import coop_fewshot_indices, read_fewshot_pickle

    root = tmp_path / "food-101"
    split = {"train": [[f"c{i}/{j}.jpg", i, f"c{i}"] for i in range(2) for j in range(4)], "val": [], "test": [["c0/t.jpg", 0, "c0"]]}
    root.mkdir()
    (root / "split_zhou_Food101.json").write_text(json.dumps(split))
    for rows in split.values():
        for rel, _, _ in rows:
            _img(root / "images" / rel)
    _datum_pickle(tmp_path, [("/home/someone/data/food-101/images/c0/2.jpg", 0, "c0"),
                             ("/home/someone/data/food-101/images/c1/3.jpg", 1, "c1")])
    assert "dassl" not in sys.modules
    train = build_dataset("food101", "train", root=tmp_path)
    indices, sha = coop_fewshot_indices(train, 2, 1)
    assert [train.items[i][-8:] for i in indices] == ["c0/2.jpg", "c1/3.jpg"] and len(sha) == 64
    assert coop_fewshot_indices(train, 4, 1) is None  # no such file: lorevit's own seeded sampling
    assert "dassl" not in sys.modules  # nothing of Dassl was imported

    # a pickle that would run code when loaded by pickle.load
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = root / "split_fewshot" / "shot_1-seed_1.pkl"
    bad.write_bytes(pickle.dumps({"train": [Evil()]}))
    with pytest.raises(DatasetError, match="refused to load"):
        read_fewshot_pickle(bad)
    with pytest.raises(DatasetError, match="refused"):
        coop_fewshot_indices(train, 1, 1)
    assert not marker.exists()
    # a Datum naming an image outside the split is an error, never opened
    _datum_pickle(tmp_path, [("/x/../../etc/passwd", 0, "c0")], name="shot_8-seed_1.pkl")
    with pytest.raises(DatasetError, match="not an image of"):
        coop_fewshot_indices(train, 8, 1)


def test_templates():
    from lorevit.data.benchmarks import template_for

    assert template_for("oxford-pets") == "a photo of a {}, a type of pet."
    assert template_for("oxford-pets@base", "prograd") == "a type of pet, a photo of a {}."
    assert template_for("vtab-dtd") == "a photo of a {}."


def test_transform_presets():
    import torch

    from lorevit.data.transforms import image_transforms

    cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    vtab = image_transforms(cfg, 32, train=True, preset="vtab")  # NOAH: direct resize, no augmentation
    assert vtab(photo).shape == (3, 32, 32) and torch.equal(vtab(photo), image_transforms(cfg, 32, False, "vtab")(photo))
    train = image_transforms(cfg, 224, train=True, preset="vpt-fgvc")  # VPT: Resize(256) → RandomCrop(224) → flip
    names = [type(t).__name__ for t in train.transforms]
    assert names[:3] == ["Resize", "Compose", "ToTensor"] and train.transforms[0].size == 256
    assert [type(t).__name__ for t in train.transforms[1].transforms] == ["RandomCrop", "RandomHorizontalFlip"]
    test = image_transforms(cfg, 224, train=False, preset="vpt-fgvc")
    assert [type(t).__name__ for t in test.transforms][:2] == ["Resize", "CenterCrop"]
    assert test(photo).shape == (3, 224, 224)
    with pytest.raises(ValueError, match="transforms must be one of"):
        image_transforms(cfg, 32, True, "tf-resize")
