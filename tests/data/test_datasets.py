"""Every registered dataset read from a tiny fixture in its real on-disk layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lorevit.data import DatasetError, build_dataset, list_datasets


def both(name, root, **kw):
    return build_dataset(name, "train", root=root, **kw), build_dataset(name, "test", root=root, **kw)


def paths(ds) -> set[str]:
    return set(map(str, ds.items))


def check_sample(ds, i=0):
    img, label = ds[i]
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    assert label == ds.targets[i]
    return img


def test_registry_lists_every_dataset_of_the_brief():
    expected = {
        "fashion-mnist", "cifar10", "cifar100", "imagefolder", "tiny-imagenet", "imagenet",
        "imagenet100", "flowers102", "stanford-cars", "fgvc-aircraft", "stanford-dogs", "dtd",
        "eurosat", "resisc45", "ucf101", "patternnet",
    }
    assert expected <= set(list_datasets())


# ------------------------------------------------------------------ in-memory formats
@pytest.mark.parametrize("gz,sub", [(True, ""), (False, "FashionMNIST/raw")])
def test_fashion_mnist_idx(tmp_path, make, gz, sub):
    make.mnist_like(tmp_path / sub if sub else tmp_path, n_train=20, n_test=10, gz=gz)
    train, test = both("fashion-mnist", tmp_path)
    assert (len(train), len(test)) == (20, 10)
    assert train.targets == [i % 10 for i in range(20)]
    assert train.classnames[0] == "T-shirt/top" and train.classnames[9] == "Ankle boot"
    img = check_sample(train, 7)
    assert img.size == (28, 28)
    assert img.getpixel((0, 0)) == (7, 7, 7)  # grey → RGB, image 7 carries 7 in its corner


def test_idx_truncated_file_is_a_dataset_error(tmp_path, make):
    make.mnist_like(tmp_path, gz=False)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-5])
    with pytest.raises(DatasetError, match="truncated"):
        build_dataset("fashion-mnist", "train", root=tmp_path)


def test_cifar10_pickles(tmp_path, make):
    make.cifar10(tmp_path)
    train, test = both("cifar10", tmp_path)
    assert (len(train), len(test)) == (15, 4)
    assert train.targets[:3] == [1, 2, 3] and test.targets == [0, 1, 2, 9]
    assert test.classnames == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    img = check_sample(train, 4)
    assert img.size == (32, 32)
    assert img.getpixel((0, 0)) == (255, 0, 0)  # channel-first rows decoded to HWC correctly
    assert img.getpixel((31, 31)) == (0, 0, 4)


def test_cifar100_fine_labels_and_names(tmp_path, make):
    make.cifar100(tmp_path)
    train, test = both("cifar100", tmp_path)
    assert (len(train), len(test)) == (6, 2)
    assert train.targets == [0, 1, 2, 1, 99, 0] and test.targets == [1, 99]
    assert len(train.classnames) == 100 and train.classnames[1] == "aquarium fish"
    check_sample(test, 1)


# ------------------------------------------------------------------------- folder trees
def test_imagefolder_with_classnames_file(tmp_path, make):
    for split, n in (("train", 3), ("val", 2)):
        for c in ("golden_retriever", "tabby_cat"):
            for i in range(n):
                make.image(tmp_path / split / c / f"{c}_{i}.png", value=i)
    (tmp_path / "train" / "notes.txt").write_text("not an image folder entry")
    make.text(tmp_path / "classnames.txt", ["tabby_cat\ttabby cat, the striped kind"])
    train, test = both("imagefolder", tmp_path)
    assert (len(train), len(test)) == (6, 4)
    assert train.classnames == ["golden retriever", "tabby cat, the striped kind"]
    assert train.targets == [0, 0, 0, 1, 1, 1]
    assert not paths(train) & paths(test)
    check_sample(test)


def test_imagefolder_test_class_unknown_to_train_is_an_error(tmp_path, make):
    make.image(tmp_path / "train" / "a" / "1.jpg")
    make.image(tmp_path / "test" / "b" / "1.jpg")
    with pytest.raises(DatasetError, match="not classes of"):
        build_dataset("imagefolder", "test", root=tmp_path)


def test_tiny_imagenet(tmp_path, make):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    make.text(base / "wnids.txt", wnids[::-1])
    make.text(base / "words.txt", ["n00001740\tentity", "n01443537\tgoldfish, Carassius auratus",
                                   "n01629819\tEuropean fire salamander, Salamandra salamandra"])
    for w in wnids:
        for i in range(3):
            make.image(base / "train" / w / "images" / f"{w}_{i}.JPEG", fmt="JPEG")
        make.text(base / "train" / w / f"{w}_boxes.txt", [f"{w}_0.JPEG\t0\t0\t10\t10"])
    ann = []
    for i, w in enumerate([wnids[1], wnids[0], wnids[1]]):
        make.image(base / "val" / "images" / f"val_{i}.JPEG", fmt="JPEG")
        ann.append(f"val_{i}.JPEG\t{w}\t0\t1\t20\t30")
    make.text(base / "val" / "val_annotations.txt", ann)
    make.image(base / "test" / "images" / "test_0.JPEG", fmt="JPEG")  # unlabelled official test: unused
    train, test = both("tiny-imagenet", tmp_path)
    assert train.classnames == ["goldfish", "European fire salamander"]
    assert (len(train), len(test)) == (6, 3)
    assert train.targets == [0, 0, 0, 1, 1, 1]
    assert test.targets == [1, 0, 1]
    assert all("/val/images/" in p for p in paths(test))
    check_sample(test, 2)


def _imagenet_tree(root: Path, make, wnids, n_train=2, n_val=1):
    for w in wnids:
        for i in range(n_train):
            make.image(root / "train" / w / f"{w}_{i}.JPEG", fmt="JPEG")
        for i in range(n_val):
            make.image(root / "val" / w / f"ILSVRC2012_val_{w}_{i}.JPEG", fmt="JPEG")


def test_imagenet_readable_names(tmp_path, make):
    _imagenet_tree(tmp_path, make, ["n01443537", "n01440764"])
    train, test = both("imagenet", tmp_path)
    assert train.classnames == ["tench", "goldfish"]  # sorted wnids, CLIP-style names
    assert (len(train), len(test)) == (4, 2) and test.targets == [0, 1]
    check_sample(train)


def test_imagenet_coop_layout_and_classnames_file(tmp_path, make):
    _imagenet_tree(tmp_path / "images", make, ["n01440764"])
    make.text(tmp_path / "classnames.txt", ["n01440764 tinca tinca"])
    assert build_dataset("imagenet", "test", root=tmp_path).classnames == ["tinca tinca"]


def test_imagenet100_class_list(tmp_path, make):
    _imagenet_tree(tmp_path, make, ["n01440764", "n01443537", "n01484850"])
    make.text(tmp_path / "imagenet100.txt", ["n01484850", "n01440764"])
    train, test = both("imagenet100", tmp_path)
    assert train.classnames == ["tench", "great white shark"]
    assert (len(train), len(test)) == (4, 2)
    assert not any("n01443537" in p for p in paths(train) | paths(test))


def test_imagenet100_default_list_needs_its_folders(tmp_path, make):
    _imagenet_tree(tmp_path, make, ["n02869837"])  # one of the 100 CMC classes only
    with pytest.raises(DatasetError, match="class folder.* missing"):
        build_dataset("imagenet100", "train", root=tmp_path)


# ---------------------------------------------------------------- CoOp split JSON files
def _coop(tmp_path, make, folder, image_dir, json_name, entries):
    base = tmp_path / folder
    for split in entries.values():
        for rel, _, _ in split:
            make.image(base / image_dir / rel, fmt="JPEG")
    make.split_json(base / json_name, entries)


def test_flowers102_coop_split(tmp_path, make):
    e = {"train": [("image_00001.jpg", 0, "pink primrose"), ("image_00002.jpg", 1, "hard-leaved pocket orchid")],
         "val": [("image_00003.jpg", 0, "pink primrose")],
         "test": [("image_00004.jpg", 1, "hard-leaved pocket orchid")]}
    _coop(tmp_path, make, "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json", e)
    train, test = both("flowers102", tmp_path)
    assert train.classnames == ["pink primrose", "hard-leaved pocket orchid"]
    assert (len(train), len(test)) == (2, 1) and test.targets == [1]
    assert str(tmp_path / "oxford_flowers" / "jpg" / "image_00004.jpg") in paths(test)
    check_sample(test)


def test_flowers102_official_mat_fallback(tmp_path, make):
    base = tmp_path / "flowers-102"  # as torchvision downloads it
    for i in range(1, 7):
        make.image(base / "jpg" / f"image_{i:05d}.jpg", fmt="JPEG")
    make.savemat(base / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 2, 102, 102]], dtype=float)})
    make.savemat(base / "setid.mat", {"trnid": np.array([[1, 3]]), "valid": np.array([[5]]),
                                      "tstid": np.array([[2, 4, 6]])})
    with pytest.warns(UserWarning, match="official split"):
        train, test = both("flowers102", tmp_path)
    assert train.targets == [0, 1, 101] and test.targets == [0, 1, 101]
    assert len(train.classnames) == 102 and train.classnames[0] == "pink primrose"
    check_sample(train)


def test_stanford_cars_coop_split(tmp_path, make):
    e = {"train": [("cars_train/00001.jpg", 0, "2000 AM General Hummer SUV"),
                   ("cars_train/00002.jpg", 1, "2012 Acura RL Sedan")],
         "val": [], "test": [("cars_test/00001.jpg", 1, "2012 Acura RL Sedan")]}
    _coop(tmp_path, make, "stanford_cars", "", "split_zhou_StanfordCars.json", e)
    train, test = both("stanford-cars", tmp_path)
    assert train.classnames == ["2000 AM General Hummer SUV", "2012 Acura RL Sedan"]
    assert (len(train), len(test)) == (2, 1)
    check_sample(test)


def test_eurosat_coop_split(tmp_path, make):
    e = {"train": [("Forest/Forest_1.jpg", 1, "Forest"), ("AnnualCrop/AnnualCrop_1.jpg", 0, "Annual Crop Land")],
         "val": [("Forest/Forest_2.jpg", 1, "Forest")],
         "test": [("AnnualCrop/AnnualCrop_2.jpg", 0, "Annual Crop Land")]}
    _coop(tmp_path, make, "eurosat", "2750", "split_zhou_EuroSAT.json", e)
    train, test = both("eurosat", tmp_path)
    assert train.classnames == ["Annual Crop Land", "Forest"]
    assert train.targets == [1, 0] and test.targets == [0]


def test_eurosat_without_json_uses_seeded_holdout(tmp_path, make):
    for c in ("AnnualCrop", "SeaLake"):
        for i in range(10):
            make.image(tmp_path / "eurosat" / "2750" / c / f"{c}_{i}.jpg", fmt="JPEG")
    with pytest.warns(UserWarning, match="70/30"):
        train, test = both("eurosat", tmp_path)
    assert train.classnames == ["Annual Crop Land", "Sea or Lake"]
    assert (len(train), len(test)) == (14, 6)


def test_ucf101_coop_split(tmp_path, make):
    e = {"train": [("Apply_Eye_Makeup/v_ApplyEyeMakeup_g08_c01.jpg", 0, "Apply_Eye_Makeup"),
                   ("Archery/v_Archery_g08_c01.jpg", 1, "Archery")],
         "val": [],
         "test": [("Archery/v_Archery_g01_c01.jpg", 1, "Archery")]}
    _coop(tmp_path, make, "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", e)
    train, test = both("ucf101", tmp_path)
    assert train.classnames == ["Apply Eye Makeup", "Archery"]
    assert test.targets == [1]
    check_sample(train, 1)


def test_split_json_listing_a_missing_image(tmp_path, make):
    make.split_json(tmp_path / "split_zhou_UCF101.json",
                    {"train": [["A/x.jpg", 0, "A"]], "val": [], "test": [["A/y.jpg", 0, "A"]]})
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset("ucf101", "train", root=tmp_path)


# ------------------------------------------------------------------ official list files
def test_fgvc_aircraft_official_lists(tmp_path, make):
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    make.text(data / "variants.txt", ["707-320", "Cessna 172", "F/A-18"])
    trainval = ["1025794 707-320", "1340192 Cessna 172", "0056978 F/A-18", "0123456 Cessna 172"]
    test = ["1111111 F/A-18", "2222222 707-320"]
    make.text(data / "images_variant_trainval.txt", trainval)
    make.text(data / "images_variant_test.txt", test)
    make.text(data / "images_variant_train.txt", trainval[:2])
    for line in trainval + test:
        make.image(data / "images" / f"{line.split()[0]}.jpg", fmt="JPEG")
    tr, te = both("fgvc-aircraft", tmp_path)
    assert tr.classnames == ["707-320", "Cessna 172", "F/A-18"]
    assert tr.targets == [0, 1, 2, 1] and te.targets == [2, 0]
    assert not paths(tr) & paths(te)
    check_sample(te)


def test_stanford_dogs_mat_lists(tmp_path, make):
    train_files = ["n02085620-Chihuahua/n02085620_1.jpg", "n02085782-Japanese_spaniel/n02085782_1.jpg",
                   "n02085620-Chihuahua/n02085620_2.jpg"]
    test_files = ["n02085782-Japanese_spaniel/n02085782_2.jpg"]
    for f in train_files + test_files:
        make.image(tmp_path / "Images" / f, fmt="JPEG")
    for name, files, labels in (("train_list.mat", train_files, [1, 2, 1]), ("test_list.mat", test_files, [2])):
        make.savemat(tmp_path / name, {
            "file_list": np.array([[f] for f in files], dtype=object),
            "annotation_list": np.array([[f[:-4]] for f in files], dtype=object),
            "labels": np.array([[x] for x in labels], dtype=float),
        })
    tr, te = both("stanford-dogs", tmp_path)
    assert tr.classnames == ["Chihuahua", "Japanese spaniel"]
    assert tr.targets == [0, 1, 0] and te.targets == [1]
    check_sample(te)


def test_dtd_train_is_train1_plus_val1(tmp_path, make):
    base = tmp_path / "dtd"
    lines = {}
    for c in ("banded", "zigzagged"):
        files = [f"{c}/{c}_{i:04d}.jpg" for i in range(4)]
        for f in files:
            make.image(base / "images" / f, fmt="JPEG")
        lines.setdefault("train1", []).append(files[0])
        lines.setdefault("val1", []).append(files[1])
        lines.setdefault("test1", []).extend(files[2:])
    for k, v in lines.items():
        make.text(base / "labels" / f"{k}.txt", v)
    make.text(base / "labels" / "train2.txt", ["banded/banded_0003.jpg"])
    tr, te = both("dtd", tmp_path)
    assert tr.classnames == ["banded", "zigzagged"]
    assert (len(tr), len(te)) == (4, 4) and tr.targets == [0, 1, 0, 1]
    assert not paths(tr) & paths(te)


@pytest.mark.parametrize("name,sub", [("resisc45", "NWPU-RESISC45"), ("patternnet", "PatternNet/images")])
def test_remote_sensing_seeded_80_20_split(tmp_path, make, name, sub):
    for c in ("airplane", "baseball_field"):
        for i in range(10):
            make.image(tmp_path / sub / c / f"{c}{i:03d}.jpg", value=i, fmt="JPEG")
    tr, te = both(name, tmp_path)
    assert tr.classnames == ["airplane", "baseball field"]
    assert (len(tr), len(te)) == (16, 4) and te.class_counts() == [2, 2]
    assert not paths(tr) & paths(te)
    assert len(paths(tr) | paths(te)) == 20
    assert paths(build_dataset(name, "test", root=tmp_path)) == paths(te)  # same split every time
