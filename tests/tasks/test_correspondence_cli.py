"""``lorevit correspondence`` end to end on a generated SPair tree (tiny ViT, tiny adapter) and the bench plug-in."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lorevit.cli import main

from .conftest import TINY_KWARGS, TINY_VIT
from .correspondence_fixtures import edit_pair, write_spair

TINY = ["--backbone", TINY_VIT, "--weights", "random", "--base-size", "32", "--image-size", "48",
        "--backbone-kwargs", json.dumps(TINY_KWARGS), "--device", "cpu"]


def test_cli_with_a_tiny_random_vit_writes_scores_predictions_and_figure(tmp_path, capsys):
    write_spair(tmp_path / "data")
    out = tmp_path / "out"
    assert main(["correspondence", "--data-root", str(tmp_path / "data"), "--output", str(out), *TINY]) == 0
    report = json.loads((out / "correspondence.json").read_text())
    assert set(report["pck"]) == {"0.1", "0.05", "0.15"}
    p = report["pck"]["0.1"]
    assert set(p) >= {"per_image", "per_point", "category_mean", "per_category"}
    assert set(p["per_category"]) == {"cat", "dog"} and report["pairs"] == 4 and report["points"] == 12
    assert report["identity_baseline"]["0.1"]["per_image"] == 100.0  # the fixture's GT is the scaled identity
    assert report["setup"]["features"] == "B-B" and report["setup"]["protocol"]["image_size"] == 48
    assert report["pairs_per_s"] > 0 and report["skipped"]["count"] == 0
    preds = json.loads((out / "predictions.json").read_text())["pairs"]
    assert [q["pair"] for q in preds][0] == "000001-c1-c2:cat"
    # anyone can recompute the score from predictions.json alone
    hits = [np.linalg.norm(np.subtract(q["pred_kps"], q["trg_kps"]), axis=1) <= q["threshold"] for q in preds]
    assert np.mean([h.mean() for h in hits]) * 100 == pytest.approx(p["per_image"])
    for q in preds:  # predictions are pixels of the target image ([x, y] inside [W, H])
        assert all(0 <= x and 0 <= y for x, y in q["pred_kps"])
    assert (out / "correspondence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PCK@0.1 per image" in capsys.readouterr().out


def test_cli_with_the_tiny_adapter_and_a_category_filter(tmp_path, tiny_adapter):
    write_spair(tmp_path / "data")
    out = tmp_path / "out"
    assert main(["correspondence", "--data-root", str(tmp_path / "data" / "SPair-71k"), "--adapter", str(tiny_adapter),
                 "--category", "dog", "--image-size", "40", "--figure-pairs", "0", "--output", str(out)]) == 0
    report = json.loads((out / "correspondence.json").read_text())
    assert report["setup"]["features"] == "LORE" and report["setup"]["provenance"]["source"] == "adapter"
    assert len(report["setup"]["provenance"]["adapter_sha256"]) == 64
    assert list(report["pck"]["0.1"]["per_category"]) == ["dog"] and report["pairs"] == 2
    assert not (out / "correspondence.png").exists()


def test_bad_pair_exits_2_with_one_line_and_no_results_unless_skipped(tmp_path, capsys):
    spair = write_spair(tmp_path / "data")
    name = edit_pair(spair, 1, trg_kps=[[0, 0]])
    out = tmp_path / "out"
    assert main(["correspondence", "--data-root", str(spair), "--output", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lorevit: error: pair ") and name in err and "\n" not in err
    assert not out.exists() or not any(out.iterdir())
    assert main(["correspondence", "--data-root", str(spair), "--output", str(out), "--skip-bad", *TINY]) == 0
    report = json.loads((out / "correspondence.json").read_text())
    assert report["skipped"]["count"] == 1 and report["skipped"]["pairs"][0]["pair"] == name and report["pairs"] == 3


def test_bench_plugin_on_a_generated_spair_tree(tmp_path, tiny_extractors):
    from lorevit.tasks.bench import BenchContext
    from lorevit.tasks.correspondence.bench import IDENTITY, bench

    write_spair(tmp_path / "data")
    ctx = BenchContext(tiny_extractors, tmp_path / "data", tmp_path / "standins", tmp_path / "work", quick=True,
                       say=lambda s: None)
    [result] = bench(ctx)
    assert result.task == "correspondence" and result.kind == "real" and result.scale == "percent"
    assert list(result.rows) == ["B-B", "LORE", IDENTITY] and result.columns == ["PCK@0.1"]
    assert result.rows[IDENTITY]["PCK@0.1"] == 100.0 and result.details["pairs"] == 2  # quick: 1 per category
    assert set(result.throughput) == {"B-B", "LORE"} and result.unit == "pairs/s"
    assert set(result.details["per_point"]) == {"B-B", "LORE", IDENTITY}
    assert (tmp_path / "work" / "correspondence" / "LORE.png").is_file()
