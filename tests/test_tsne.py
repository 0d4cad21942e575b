"""t-SNE feature views (issue 22 §3): ``lorevit visualize --tsne``."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from lorevit.cli import main
from lorevit.tools.tsne import knn_accuracy


def test_knn_accuracy_by_hand():
    # two tight clusters of 3 and one point of class 1 sitting inside cluster 0
    points = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10], [0.5, 0.5]])
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    # k=1: the intruder's nearest is class 0 (wrong); points 0-2 have the intruder (class 1) nearest
    # for [0,1] and [1,0] (distance 0.71 < 1), [0,0] too (0.71): 3 wrong + 1 wrong = 4 wrong of 7
    assert knn_accuracy(points, labels, k=1) == pytest.approx(3 / 7)
    # k=3: cluster-0 points see {intruder, two class 0} -> 0 (right); intruder sees three class 0 -> wrong;
    # cluster-1 points see two class 1 + one more (the nearest other is class 1 or 0, majority still 1)
    assert knn_accuracy(points, labels, k=3) == pytest.approx(6 / 7)
    # k=2 ties go to the nearest of the tied labels: x=0 sees 1 (label 0) and 3 (label 1) -> 0, right;
    # x=1 sees 0 (label 0) and 3 (label 1) -> 0, right; x=3 sees two label-0 points -> wrong
    assert knn_accuracy(np.array([[0.0], [1.0], [3.0]]), np.array([0, 0, 1]), k=2) == pytest.approx(2 / 3)
    assert knn_accuracy(np.array([[0.0], [1.0], [3.0]]), np.array([0, 1, 0]), k=2) == 0.0


def test_visualize_tsne_through_the_cli(tiny_adapter, tmp_path, capsys):
    out = tmp_path / "views"
    assert main(["visualize", "--tsne", "--adapter", str(tiny_adapter), "--limit", "6", "--seed", "3",
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "t-SNE of 6 image(s)" in printed and "5-NN accuracy" in printed
    assert (out / "tsne.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "tsne.csv").open()))
    assert len(rows) == 6 and set(rows[0]) == {"index", "label", "class", "bb_x", "bb_y", "adapter_x", "adapter_y"}
    bb = np.array([[float(r["bb_x"]), float(r["bb_y"])] for r in rows])
    labels = np.array([int(r["label"]) for r in rows])
    knn_bb = float(printed.split("Black Box ")[1].split(",")[0])
    assert knn_accuracy(bb, labels) == pytest.approx(knn_bb, abs=5e-4)  # the printed number is the CSV's
    record = json.loads((out / "tsne.json").read_text())  # the same points as JSON
    assert np.asarray(record["points"]["bb"]) == pytest.approx(bb, abs=1e-5)
    assert np.asarray(record["points"]["adapter"]).shape == (6, 2) and record["labels"] == labels.tolist()
    assert record["indices"] == [int(r["index"]) for r in rows] and record["seed"] == 3
    first = (out / "tsne.csv").read_text()
    assert main(["visualize", "--tsne", "--adapter", str(tiny_adapter), "--limit", "6", "--seed", "3",
                 "--output", str(out)]) == 0
    assert (out / "tsne.csv").read_text() == first  # deterministic for a seed


def test_visualize_tsne_bad_input(tiny_adapter, tmp_path, capsys):
    assert main(["visualize", "--tsne", "--adapter", str(tiny_adapter), "--limit", "2",
                 "--output", str(tmp_path / "o")]) == 2
    assert "lorevit: error: --limit must be at least 3" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
