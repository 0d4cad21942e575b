"""Writers of tiny datasets in their real on-disk formats (real JPEG/PNG, idx, pickles, .mat)."""
from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


class Make:
    """Each writer creates real files in the dataset's real layout under a directory."""

    @staticmethod
    def image(path: Path, value: int = 128, size: tuple[int, int] = (12, 10), fmt: str | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = np.full((size[1], size[0], 3), value % 256, dtype=np.uint8)
        arr[0, 0] = (255, 0, 0)
        Image.fromarray(arr).save(path, format=fmt)
        return path

    @staticmethod
    def corrupt(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        return path

    @staticmethod
    def text(path: Path, lines: list[str]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    @staticmethod
    def idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
        """An idx file: magic 0x00 0x00 0x08 ndim, big-endian dims, uint8 body."""
        path.parent.mkdir(parents=True, exist_ok=True)
        header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
        data = header + array.astype(np.uint8).tobytes()
        if gz:
            with gzip.open(str(path) + ".gz", "wb") as f:
                f.write(data)
            return Path(str(path) + ".gz")
        path.write_bytes(data)
        return path

    @staticmethod
    def mnist_like(root: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> None:
        rng = np.random.default_rng(0)
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
            images[:, 0, 0] = np.arange(n)  # identifies each image
            labels = np.arange(n) % 10
            Make.idx(root / f"{prefix}-images-idx3-ubyte", images, gz)
            Make.idx(root / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8), gz)

    @staticmethod
    def pickle(path: Path, obj: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    @staticmethod
    def cifar_batch(n: int, labels_key: bytes, labels: list[int], start: int = 0) -> dict:
        data = np.zeros((n, 3, 32, 32), dtype=np.uint8)
        data[:, 0, 0, 0] = 255  # red top-left pixel (channel-first rows as in the real files)
        data[:, 2, 31, 31] = np.arange(start, start + n)  # blue bottom-right pixel numbers images
        return {b"batch_label": b"fixture", labels_key: labels, b"data": data.reshape(n, 3072),
                b"filenames": [f"img{i}.png".encode() for i in range(n)]}

    @staticmethod
    def cifar10(root: Path, per_batch: int = 3) -> Path:
        base = root / "cifar-10-batches-py"
        for i in range(1, 6):
            labels = [(i + j) % 10 for j in range(per_batch)]
            Make.pickle(base / f"data_batch_{i}", Make.cifar_batch(per_batch, b"labels", labels, (i - 1) * per_batch))
        Make.pickle(base / "test_batch", Make.cifar_batch(4, b"labels", [0, 1, 2, 9]))
        names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
        Make.pickle(base / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072})
        return base

    @staticmethod
    def cifar100(root: Path) -> Path:
        base = root / "cifar-100-python"
        fine = [f"class_{i}".encode() for i in range(100)]
        fine[1] = b"aquarium_fish"
        Make.pickle(base / "train", Make.cifar_batch(6, b"fine_labels", [0, 1, 2, 1, 99, 0]) | {b"coarse_labels": [0] * 6})
        Make.pickle(base / "test", Make.cifar_batch(2, b"fine_labels", [1, 99]) | {b"coarse_labels": [0] * 2})
        Make.pickle(base / "meta", {b"fine_label_names": fine, b"coarse_label_names": [b"c"] * 20})
        return base

    @staticmethod
    def split_json(path: Path, splits: dict[str, list[tuple[str, int, str]]]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({k: [list(e) for e in v] for k, v in splits.items()}))
        return path

    @staticmethod
    def savemat(path: Path, data: dict) -> Path:
        from scipy.io import savemat

        path.parent.mkdir(parents=True, exist_ok=True)
        savemat(str(path), data)
        return path


@pytest.fixture
def make() -> type[Make]:
    return Make


@pytest.fixture(autouse=True)
def _isolated_data_env(monkeypatch, tmp_path):
    """Default roots must not see a developer's ~/data or $LOREVIT_DATA."""
    monkeypatch.setenv("LOREVIT_DATA", str(tmp_path / "_lorevit_data_default"))
