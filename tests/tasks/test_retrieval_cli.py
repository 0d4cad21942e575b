"""``lorevit retrieval`` end to end on a generated revisitop-layout set (tiny random ViT / tiny adapter), bad
input, the bench plug-in and the stand-in geometry helpers."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from lorevit.cli import main

from .conftest import TINY_KWARGS, TINY_VIT
from .retrieval_fixtures import write_gnd, write_retrieval_set

TINY_SOURCE = ["--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs", json.dumps(TINY_KWARGS),
               "--base-size", "32", "--device", "cpu"]


def _run(root, out, *extra, dataset="toyset"):
    return main(["retrieval", "--dataset", dataset, "--data-root", str(root), "--output", str(out), *extra])


def test_retrieval_end_to_end_bb_and_crop(tmp_path, capsys):
    write_retrieval_set(tmp_path / "data")
    out = tmp_path / "out"
    assert _run(tmp_path / "data", out, *TINY_SOURCE) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("retrieval toyset B-B: mAP E") and "retrieval.json" in line
    result = json.loads((out / "retrieval.json").read_text())
    assert set(result["mAP"]) == {"easy", "medium", "hard"}
    assert all(0 <= v <= 1 for v in result["mAP"].values())
    assert set(result["mP@k"]["medium"]) == {"mP@1", "mP@5", "mP@10"}
    assert result["n_db"] == 20 and result["n_queries"] == 4 and result["images_per_s"] > 0
    setup = result["setup"]
    assert setup["features"] == "B-B" and setup["provenance"]["source"] == "black-box"
    assert setup["protocol"]["crop_queries"] is False and setup["protocol"]["imsize"] == 224
    assert "no crop" in setup["protocol"]["query_mode"]
    assert _run(tmp_path / "data", out, *TINY_SOURCE, "--crop-queries", "--imsize", "16") == 0
    cropped = json.loads((out / "retrieval.json").read_text())
    assert cropped["setup"]["protocol"]["crop_queries"] is True and "bbx" in cropped["setup"]["protocol"]["query_mode"]


def test_retrieval_with_adapter(tmp_path, tiny_adapter):
    write_retrieval_set(tmp_path / "data")
    out = tmp_path / "out"
    assert _run(tmp_path / "data", out, "--adapter", str(tiny_adapter), "--device", "cpu") == 0
    result = json.loads((out / "retrieval.json").read_text())
    prov = result["setup"]["provenance"]
    assert result["setup"]["features"] == "LORE" and prov["source"] == "adapter" and len(prov["adapter_sha256"]) == 64


@pytest.mark.parametrize("breakage, message", [
    ("no-gnd", "no ground truth"),
    ("evil", "refused to load"),
    ("range", "out of range"),
    ("image", "missing"),
    ("dataset", "must be a folder name"),
])
def test_bad_input_exit_2_one_line_results_untouched(tmp_path, capsys, breakage, message):
    data = write_retrieval_set(tmp_path / "data")
    folder = tmp_path / "data" / "toyset"
    dataset = "toyset"
    if breakage == "no-gnd":
        (folder / "gnd_toyset.pkl").unlink()
    elif breakage == "evil":
        (folder / "gnd_toyset.pkl").write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
    elif breakage == "range":
        data["gnd"][1]["junk"] = [len(data["imlist"])]
        write_gnd(folder, "toyset", data)
    elif breakage == "image":
        (folder / "jpg" / "query_2.jpg").unlink()
    else:
        dataset = "../toyset"
    out = tmp_path / "out"
    out.mkdir()
    (out / "retrieval.json").write_text("previous results")
    capsys.readouterr()
    assert _run(tmp_path / "data", out, *TINY_SOURCE, dataset=dataset) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lorevit: error:") and message in err[0]
    assert (out / "retrieval.json").read_text() == "previous results"
    assert not (tmp_path / "pwned").exists()


def test_adapter_backbone_mismatch_exit_2(tmp_path, tiny_adapter, capsys):
    write_retrieval_set(tmp_path / "data")
    assert _run(tmp_path / "data", tmp_path / "out", "--adapter", str(tiny_adapter), "--backbone", "vit_small_patch16_224") == 2
    assert "was trained on backbone" in capsys.readouterr().err
    assert not (tmp_path / "out" / "retrieval.json").exists()


def test_bench_quick_on_a_real_layout(tmp_path, tiny_extractors):
    from lorevit.tasks.bench import BenchContext
    from lorevit.tasks.retrieval.bench import bench

    write_retrieval_set(tmp_path / "data", name="roxford5k")
    ctx = BenchContext(tiny_extractors, tmp_path / "data", tmp_path / "standins", tmp_path / "work", quick=True,
                       say=lambda s: None)
    results = bench(ctx)
    assert [(r.dataset, r.kind) for r in results] == [("roxford5k", "real")]
    r = results[0]
    assert list(r.rows) == ["B-B", "LORE", "random ranking"] and r.columns == ["mAP-M", "mAP-H"]
    assert all(0 <= r.rows[row][c] <= 1 for row in r.rows for c in ("mAP-M", "mAP-H", "mAP-E"))
    assert set(r.throughput) == {"B-B", "LORE"} and r.details["protocol"]["n_queries"] == 4
    assert not (tmp_path / "standins").exists()  # real data found: no stand-in built


def test_shrink_keeps_ground_truth_consistent(tmp_path):
    from lorevit.tasks.retrieval import read_dataset
    from lorevit.tasks.retrieval.bench import shrink

    write_retrieval_set(tmp_path)
    full = read_dataset(tmp_path, "toyset")
    small = shrink(full, 2, 3)
    assert len(small.qimlist) == 2
    for q in range(2):
        for k in ("easy", "hard", "junk"):
            assert sorted(small.imlist[i] for i in small.gnd[q][k]) == sorted(full.imlist[i] for i in full.gnd[q][k])


def test_standin_geometry_and_official_writer(tmp_path):
    from PIL import Image

    from lorevit.tasks.retrieval import read_dataset
    from lorevit.tasks.standins.geometry import view_homography, visible_fraction
    from lorevit.tasks.standins.retrieval import is_built, write_official

    H = view_homography((50, 40), (60, 40), 1.0, 0.0)
    assert np.allclose(H @ [50, 40, 1], [30, 20, 1])  # the centre lands at the view's centre
    assert visible_fraction(H, [21, 21, 79, 59], (60, 40)) == pytest.approx(1.0)
    assert visible_fraction(H, [50, 20, 110, 60], (60, 40)) == pytest.approx(0.5, abs=0.05)  # half the box lies right of the view
    images = {n: Image.new("RGB", (16, 12), c) for n, c in (("a", "red"), ("b", "blue"), ("q", "red"))}
    write_official(tmp_path / "tiny", "tiny", images, ["a", "b"], ["q"],
                   [{"bbx": [0, 0, 16, 12], "easy": [0], "hard": [], "junk": [1]}], {"kind": "test"})
    assert is_built(tmp_path, "tiny")
    raw = pickle.loads((tmp_path / "tiny" / "gnd_tiny.pkl").read_bytes())
    assert raw["gnd"][0] == {"bbx": [0.0, 0.0, 16.0, 12.0], "easy": [0], "hard": [], "junk": [1]}
    assert read_dataset(tmp_path, "tiny").qimlist == ["q"]


def test_protocol_without_positives_is_null_not_nan(tmp_path, capsys):
    data = write_retrieval_set(tmp_path / "data")
    for g in data["gnd"]:
        g["easy"], g["hard"] = g["easy"] + g["hard"], []  # no hard positive anywhere
    write_gnd(tmp_path / "data" / "toyset", "toyset", data)
    assert _run(tmp_path / "data", tmp_path / "out", *TINY_SOURCE, "--multiscale") == 0
    assert "H —" in capsys.readouterr().out
    text = (tmp_path / "out" / "retrieval.json").read_text()
    assert "NaN" not in text
    result = json.loads(text)
    assert result["mAP"]["hard"] is None and result["mP@k"]["hard"]["mP@1"] is None
    assert result["mAP"]["medium"] is not None
    assert result["setup"]["protocol"]["multiscale"] == pytest.approx([1, 2 ** -0.5, 0.5])


def test_class_level_standin_from_digits(tmp_path):
    from lorevit.tasks.retrieval import read_dataset
    from lorevit.tasks.standins.retrieval import DIGITS, build_digits, is_built

    assert build_digits(tmp_path / DIGITS, say=lambda s: None, per_class_q=2, per_class_db=4, size=32)
    assert is_built(tmp_path, DIGITS)
    ds = read_dataset(tmp_path, DIGITS)  # the real reader, unchanged
    assert len(ds.qimlist) == 20 and len(ds.imlist) == 40 and not set(ds.qimlist) & set(ds.imlist)
    for q, g in enumerate(ds.gnd):
        assert len(g["easy"]) == 2 and len(g["hard"]) == 2 and g["junk"] == []
        positives = {ds.imlist[i] for i in g["easy"] + g["hard"]}
        same_class = [p for j, h in enumerate(ds.gnd) if h["easy"] == g["easy"] for p in [ds.qimlist[j]]]
        assert len(same_class) == 2 and len(positives) == 4  # 2 queries share each class's 4 positives
