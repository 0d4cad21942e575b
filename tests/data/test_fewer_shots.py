"""``fewer_shots`` in metrics.json when ``allow_fewer_shots`` is used (issue 25 §5): the short class and its real
count, and the number of training images it implies; without the opt-in the same data is one error line."""
from __future__ import annotations

import json

from lorevit.cli import main

from ..conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT, write_color_folder

TINY = ["--backbone", TINY_VIT, "--weights", "random", "--img-size", str(TINY_SIZE), "--backbone-kwargs",
        json.dumps(TINY_KWARGS), "--progress", "false", "--accelerator", "cpu", "--dataset", "imagefolder",
        "--shots", "8", "--epochs", "1", "--batch-size", "8", "--knowledge", "st:minilm", "--method", "linear",
        "--val-shots", "0"]


def test_fewer_shots_is_recorded_with_the_real_counts(tmp_path, capsys):
    data = write_color_folder(tmp_path / "colors", per_class=(12, 2))
    for png in sorted((data / "train" / "blue_square").glob("*.png"))[3:]:
        png.unlink()  # blue square: 3 training images for 8 shots
    assert main(["train", *TINY, "--data-root", str(data), "--output", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "blue square" in err and "--allow-fewer-shots" in err
    assert main(["train", *TINY, "--data-root", str(data), "--output", str(tmp_path / "run"),
                 "--allow-fewer-shots", "true"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["fewer_shots"] == {"blue square": 3}
    assert metrics["num_train"] == 8 + 8 + 3
    assert main(["train", *TINY, "--data-root", str(write_color_folder(tmp_path / "full", per_class=(12, 2))),
                 "--output", str(tmp_path / "enough"), "--allow-fewer-shots", "true"]) == 0
    assert json.loads((tmp_path / "enough" / "metrics.json").read_text())["fewer_shots"] == {}  # opted in, none short
