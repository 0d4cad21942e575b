"""The restricted unpickler: real CIFAR-style pickles load, a file whose payload would run code is refused
before anything runs, with the file named."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from lorevit.data import DatasetError, build_dataset
from lorevit.utils.safe_pickle import BYTES_GLOBALS, NUMPY_GLOBALS, UnsafePickleError, safe_load, safe_loads

from .data.conftest import Make


class RunsCode:
    """Unpickling this calls os.system: the classic payload of a crafted pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_and_containers_load(tmp_path, protocol):
    obj = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "labels": [1, 2], "name": "x", "f": 1.5,
           "scalar": np.float32(2.5)}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    loaded = safe_load(path, NUMPY_GLOBALS | BYTES_GLOBALS)
    np.testing.assert_array_equal(loaded["data"], obj["data"])
    assert loaded["labels"] == [1, 2] and loaded["scalar"] == np.float32(2.5)


def test_plain_containers_need_no_global():
    assert safe_loads(pickle.dumps({"a": [1, 2.0, "s", (3,)]})) == {"a": [1, 2.0, "s", (3,)]}


def test_malicious_payload_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"data": RunsCode(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*(posix|os)\.system"):
        safe_load(path, NUMPY_GLOBALS)
    assert not marker.exists()


def test_numpy_array_with_a_hidden_global_is_refused(tmp_path):
    """An allowed reconstructor does not open the door for another global nested inside it."""
    marker = tmp_path / "pwned"
    payload = pickle.dumps([np.zeros(2), RunsCode(marker)], protocol=4)
    with pytest.raises(UnsafePickleError):
        safe_loads(payload, NUMPY_GLOBALS)
    assert not marker.exists()


def test_truncated_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"a": list(range(100))})[:20])
    with pytest.raises(UnsafePickleError, match="cut.pkl.*not a readable pickle"):
        safe_load(path)


def test_cifar_reader_refuses_a_malicious_batch(tmp_path):
    base = Make.cifar10(tmp_path / "cifar10")  # cifar10/cifar-10-batches-py
    marker = tmp_path / "pwned"
    batch = Make.cifar_batch(3, b"labels", [0, 1, 2])
    batch[b"labels"] = RunsCode(marker)
    Make.pickle(base / "data_batch_3", batch)
    with pytest.raises(DatasetError, match=r"data_batch_3.*refused"):
        build_dataset("cifar10", "train", root=base.parent)
    assert not marker.exists()
    assert len(build_dataset("cifar10", "test", root=base.parent)) == 4  # the untouched split still reads
