"""The real Fashion-MNIST from Debian's dataset-fashion-mnist package."""
from __future__ import annotations

from pathlib import Path

import pytest

from lorevit.data import build_dataset

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_default_root():
    train = build_dataset("fashion-mnist", "train")  # root=None → the Debian location
    test = build_dataset("fashion-mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.classnames == test.classnames == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    assert train.class_counts() == [6000] * 10 and test.class_counts() == [1000] * 10
    img, label = test[0]
    assert img.size == (28, 28) and img.mode == "RGB" and label == 9  # the first test image is an ankle boot
