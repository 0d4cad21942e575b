"""Wrong roots, unknown names and unreadable images fail loudly and say what to do."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from lorevit.data import BadImageWarning, DatasetError, build_dataset, collate_skip_bad


def test_empty_directory_names_the_expected_layout(tmp_path):
    with pytest.raises(DatasetError) as err:
        build_dataset("dtd", "train", root=tmp_path)
    msg = str(err.value)
    assert "Expected layout" in msg and "labels/train1.txt" in msg and "robots.ox.ac.uk" in msg
    assert "download=True" in msg


def test_missing_root_and_wrong_content(tmp_path, make):
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset("cifar10", "train", root=tmp_path / "nowhere")
    make.image(tmp_path / "random.jpg")
    with pytest.raises(DatasetError, match="cifar-10-batches-py") as err:
        build_dataset("cifar10", "train", root=tmp_path)
    assert "random.jpg" in str(err.value)  # shows what the root holds


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(DatasetError, match="registered datasets"):
        build_dataset("not-a-dataset", "train", root=tmp_path)
    with pytest.raises(DatasetError, match="split"):
        build_dataset("cifar10", "training", root=tmp_path)
    with pytest.raises(DatasetError, match="bad_images"):
        build_dataset("cifar10", "train", root=tmp_path, bad_images="ignore")


def test_download_of_a_manual_dataset_says_so(tmp_path):
    with pytest.raises(DatasetError, match="cannot be downloaded automatically"):
        build_dataset("stanford-dogs", "train", root=tmp_path, download=True)


def test_default_root_from_lorevit_data(tmp_path, make, monkeypatch):
    monkeypatch.setenv("LOREVIT_DATA", str(tmp_path / "store"))
    make.cifar10(tmp_path / "store" / "cifar10")
    assert len(build_dataset("cifar10", "test")) == 4
    with pytest.raises(DatasetError, match=str(tmp_path / "store" / "dtd")):
        build_dataset("dtd", "test")


def test_malformed_annotation_file(tmp_path, make):
    make.text(tmp_path / "variants.txt", ["A"])
    make.text(tmp_path / "images_variant_trainval.txt", ["123 B"])
    make.text(tmp_path / "images_variant_test.txt", [])
    with pytest.raises(DatasetError, match="'B'.*not in the class list"):
        build_dataset("fgvc-aircraft", "train", root=tmp_path)


def _tree_with_corrupt(tmp_path, make):
    make.image(tmp_path / "train" / "a" / "0.jpg", fmt="JPEG")
    bad = make.corrupt(tmp_path / "train" / "a" / "1.jpg")
    make.image(tmp_path / "train" / "b" / "0.png")
    make.image(tmp_path / "test" / "a" / "0.png")
    return bad


def test_corrupt_image_fails_with_its_path(tmp_path, make):
    bad = _tree_with_corrupt(tmp_path, make)
    ds = build_dataset("imagefolder", "train", root=tmp_path)
    with pytest.raises(DatasetError) as err:
        ds[1]
    assert str(bad) in str(err.value) and "bad_images='skip'" in str(err.value)


def test_corrupt_image_fails_loudly_through_a_worker(tmp_path, make):
    bad = _tree_with_corrupt(tmp_path, make)
    ds = build_dataset("imagefolder", "train", root=tmp_path, transform=lambda im: torch.zeros(1))
    batches = iter(DataLoader(ds, batch_size=3, num_workers=1))
    try:
        with pytest.raises(DatasetError, match=str(bad)):
            next(batches)
    finally:
        batches._shutdown_workers()  # else the kept traceback holds the worker ~5 s at teardown


def test_corrupt_image_skipped_and_counted(tmp_path, make):
    bad = _tree_with_corrupt(tmp_path, make)
    ds = build_dataset("imagefolder", "train", root=tmp_path, bad_images="skip",
                       transform=lambda im: torch.tensor(im.size))
    with pytest.warns(BadImageWarning, match=str(bad)):
        assert ds[1] is None
    assert ds.num_skipped == 1 and ds.skipped == [str(bad)]
    with pytest.warns(BadImageWarning):
        batches = list(DataLoader(ds, batch_size=3, collate_fn=collate_skip_bad))
    images, labels = batches[0]
    assert images.shape == (2, 2) and labels.tolist() == [0, 1]
    assert collate_skip_bad([None, None]) is None


def test_download_flow_fetches_only_when_missing(tmp_path, make, monkeypatch):
    """download=True calls the torchvision class with download=True, then our reader reads it.

    The network fetch itself cannot run here; a stand-in class writes the real files instead.
    """
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:
        def __init__(self, root, download, **kwargs):
            calls.append((root, download, kwargs))
            make.cifar10(__import__("pathlib").Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    ds = build_dataset("cifar10", "train", root=tmp_path / "c10", download=True)
    assert len(ds) == 15 and calls == [(str(tmp_path / "c10"), True, {})]
    build_dataset("cifar10", "test", root=tmp_path / "c10", download=True)
    assert len(calls) == 1  # already there: no second download
