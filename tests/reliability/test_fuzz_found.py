"""Each crash the fuzz suite (``test_fuzz_readers.py``) found, or that reading the readers for it showed, as a
fixed example: a UserError (one line) instead of the traceback it was; through the real CLI (exit 2) where a
command reads the file. Each of these failed before its fix (issue 25 §3)."""
from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from lorevit.cli import main
from lorevit.errors import UserError

from tests.reliability.test_fuzz_readers import (ADAPTER, PAIR, SPAIR_ANN, VALID_BATCH, VALID_META, _cifar_batch,
                                                 _safetensors_bytes, _safetensors_parts, _write_cifar, _write_davis,
                                                 _write_spair, VALID_PNG)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("lorevit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_spair_layout_list_that_is_not_text_is_exit_2(tmp_path, capsys):
    root = tmp_path / "SPair-71k"
    _write_spair(root, json.dumps(SPAIR_ANN).encode(), b"\xb0\n")  # was UnicodeDecodeError
    from tests.tasks.test_correspondence_cli import TINY

    assert main(["correspondence", "--data-root", str(root), "--output", str(tmp_path / "out"), *TINY]) == 2
    assert "test.txt is not a UTF-8 text file" in _one_error_line(capsys)
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("ann, message", [
    (None, "holds a JSON NoneType"),  # was TypeError: argument of type 'NoneType' is not iterable
    ({**SPAIR_ANN, "src_kps": [[1, 2], [3]]}, "src_kps"),  # was numpy's ValueError (inhomogeneous shape)
    ({**SPAIR_ANN, "trg_bndbox": ["a", 1, 2, 3]}, "trg_bndbox"),  # was ValueError: could not convert string
    ({**SPAIR_ANN, "src_imsize": {"W": 16}}, "src_imsize"),  # was KeyError: 0
    ({**SPAIR_ANN, "src_imsize": [1e400, 12, 3]}, "src_imsize"),  # was OverflowError (JSON Infinity)
])
def test_spair_pair_json_of_the_wrong_shape_is_a_task_error(tmp_path, ann, message):
    from lorevit.tasks.correspondence.spair import read_pairs

    root = tmp_path / "SPair-71k"
    _write_spair(root, json.dumps(ann).encode(), f"{PAIR}\n".encode())
    with pytest.raises(UserError, match=message) as err:
        read_pairs(root, "test")
    assert "\n" not in str(err.value)


def test_davis_imagesets_list_that_is_not_text_is_exit_2(tmp_path, capsys):
    root = tmp_path / "DAVIS"
    _write_davis(root, VALID_PNG, b"\xf3seq\n")  # was UnicodeDecodeError
    (tmp_path / "res").mkdir()
    assert main(["video-seg", "score", "--davis-root", str(root), "--results", str(tmp_path / "res")]) == 2
    assert "val.txt is not a UTF-8 text file" in _one_error_line(capsys)


@pytest.mark.parametrize("png", [VALID_PNG[:60], VALID_PNG[:33] + b"\x00" * 20 + VALID_PNG[53:],
                                 VALID_PNG.replace(b"IHDR\x00\x00\x00\x08", b"IHDR\x00\xff\xff\xff")])
def test_a_damaged_palette_png_is_a_task_error(tmp_path, png):
    from lorevit.tasks.video.davis import read_mask

    (tmp_path / "m.png").write_bytes(png)
    with pytest.raises(UserError, match="cannot be read as a PNG"):
        read_mask(tmp_path / "m.png")


@pytest.mark.parametrize("split, message", [
    (None, "holds a JSON NoneType"),  # was AttributeError: 'NoneType' object has no attribute 'get'
    ({"train": [], "test": [["a.jpg", float("inf"), "x"]]}, "is not \\[image path, integer label"),  # OverflowError
    ({"train": 3, "test": []}, "'train' is not a list"),
])
def test_split_json_of_the_wrong_shape_is_a_dataset_error(tmp_path, split, message):
    from lorevit.data.registry import build_dataset

    (tmp_path / "split_zhou_EuroSAT.json").write_text(json.dumps(split))
    with pytest.raises(UserError, match=message):
        build_dataset("eurosat", "test", tmp_path)


def test_idx_with_a_cut_header_or_a_cut_gzip_stream_is_a_dataset_error(tmp_path):
    from lorevit.data.registry import build_dataset

    good = bytes([0, 0, 8, 1]) + struct.pack(">I", 2) + bytes([3, 7])
    for name, content in (("train-images-idx3-ubyte", bytes([0, 0, 8, 3])),  # was struct.error
                          ("train-labels-idx1-ubyte", good), ("t10k-labels-idx1-ubyte", good)):
        (tmp_path / name).write_bytes(content)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * 100)[:12])  # was EOFError
    with pytest.raises(UserError, match="idx header is cut short"):
        build_dataset("fashion-mnist", "train", tmp_path)
    with pytest.raises(UserError, match="cannot be read \\(EOFError"):
        build_dataset("fashion-mnist", "test", tmp_path)


@pytest.mark.parametrize("batch, message", [
    ({**_cifar_batch(), b"data": [[300] * 3072] * 3}, "'data' is not a uint8 array"),  # was OverflowError (numpy 2)
    ({**_cifar_batch(), b"labels": [None, 1, 2]}, "'labels' is not a list of 3 integer labels"),
])
def test_cifar_batch_of_the_wrong_types_is_a_dataset_error(tmp_path, batch, message):
    from lorevit.data.registry import build_dataset

    root = _write_cifar(tmp_path / "c", pickle.dumps(batch, protocol=2), VALID_META)
    with pytest.raises(UserError, match=message):
        build_dataset("cifar10", "test", root)


def test_gnd_with_a_huge_integer_box_is_a_task_error(tmp_path):
    from lorevit.tasks.retrieval.dataset import read_dataset

    (tmp_path / "x").mkdir()
    gnd = {"imlist": ["a"], "qimlist": ["q"], "gnd": [{"bbx": [0, 0, 10 ** 400, 5], "easy": [0], "hard": [],
                                                        "junk": []}]}
    (tmp_path / "x" / "gnd_x.pkl").write_bytes(pickle.dumps(gnd))  # was OverflowError from math.isfinite
    with pytest.raises(UserError, match="4 finite numbers"):
        read_dataset(tmp_path, "x", check_images=False)


def test_classnames_txt_that_is_not_utf8_names_the_file(tmp_path):
    from lorevit.data.registry import build_dataset
    from tests.conftest import write_color_folder

    root = write_color_folder(tmp_path / "colors", per_class=(1, 1))
    (root / "classnames.txt").write_bytes(b"red_square r\xe9d\n")
    with pytest.raises(UserError, match="classnames.txt is not a UTF-8 text file"):
        build_dataset("imagefolder", "train", root)


def test_config_yaml_with_a_number_key_is_exit_2(tmp_path, capsys):
    (tmp_path / "my.yaml").write_text("1: 2\nshotz: 3\n")  # was TypeError from sorted() of int and str keys
    assert main(["train", "--config", str(tmp_path / "my.yaml")]) == 2
    assert "unknown config key(s) ['1', 'shotz']" in _one_error_line(capsys)


def _adapter_with(tmp_path: Path, **meta) -> Path:
    header, body = _safetensors_parts(ADAPTER.read_bytes())
    values = {**header["__metadata__"], **meta}
    header["__metadata__"] = {k: v for k, v in values.items() if v is not None}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "adapter.safetensors").write_bytes(_safetensors_bytes(header, body))
    return tmp_path / "run"


@pytest.mark.parametrize("meta, message", [
    ({"backbone": None}, "metadata 'backbone'"),  # was KeyError: 'backbone'
    ({"backbone_dim": "x"}, "metadata 'backbone_dim'"),  # was ValueError from int()
    ({"config": "[1, 2"}, "metadata 'config'"),  # was yaml's ParserError
    ({"config": "- 1"}, "metadata 'config'"),  # was TypeError in Config.from_dict
    ({"classnames": "{}"}, "metadata 'classnames'"),
    ({"method_options": "[1]"}, "metadata 'method_options'"),
])
def test_adapter_with_damaged_metadata_is_exit_2(tmp_path, capsys, meta, message):
    from lorevit.adapters.format import read_adapter

    run = _adapter_with(tmp_path, **meta)
    with pytest.raises(UserError, match=message):
        read_adapter(run)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    assert main(["predict", "--adapter", str(run), str(image)]) == 2
    assert message in _one_error_line(capsys)


@pytest.mark.parametrize("config", [b"\xfb{", b"{x", b"[1]", b"null"])  # were UnicodeDecodeError, JSONDecodeError,
def test_hub_folder_with_a_damaged_config_json_is_a_user_error(tmp_path, config):  # AttributeError in the mixin
    from lorevit.factory import from_pretrained

    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "model.safetensors").write_bytes(ADAPTER.read_bytes())
    (tmp_path / "hub" / "config.json").write_bytes(config)
    with pytest.raises(UserError, match="config.json"):
        from_pretrained(tmp_path / "hub", weights="random")
