"""`lorevit predict` (issue 12 §4): files, folders and globs → top-k per image, printed or as CSV/JSON."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from lorevit.cli import main
from lorevit.tools.predict import PredictError, collect_images

from .conftest import TINY_SIZE


@pytest.fixture
def adapter(tiny_adapter):
    """The session's tiny LORE adapter (3 classes, tests/conftest.py)."""
    return tiny_adapter


def write_images(folder, count, seed=0, suffix=".png"):
    """``count`` small RGB images (different sizes: the eval transform resizes them) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        side = TINY_SIZE + 4 * i
        path = folder / f"img{i:02d}{suffix}"
        Image.fromarray(rng.integers(0, 255, (side, side + 3, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def inputs(tmp_path):
    """Two loose files, a folder with a nested sub-folder (+ a non-image file), and a folder reached by a glob."""
    files = write_images(tmp_path / "loose", 2, seed=1)
    folder = write_images(tmp_path / "album", 2, seed=2) + write_images(tmp_path / "album" / "nested", 1, seed=3,
                                                                        suffix=".jpg")
    (tmp_path / "album" / "notes.txt").write_text("not an image")
    globbed = write_images(tmp_path / "shots", 3, seed=4)
    argv = [str(p) for p in files] + [str(tmp_path / "album"), str(tmp_path / "shots" / "*.png")]
    return argv, [str(p) for p in files + folder + globbed]


def test_collect_images_expands_folders_and_globs(inputs, tmp_path):
    argv, expected = inputs
    assert sorted(map(str, collect_images(argv))) == sorted(expected)
    assert len(collect_images(argv + argv)) == len(expected)  # no duplicates
    with pytest.raises(PredictError, match="nowhere.png"):
        collect_images([str(tmp_path / "nowhere.png")])
    with pytest.raises(PredictError, match="matches no file"):
        collect_images([str(tmp_path / "*.webp")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictError, match="no images found"):
        collect_images([str(tmp_path / "empty")])


def test_csv_and_json_outputs(adapter, inputs, tmp_path, capsys):
    argv, expected = inputs
    out_csv, out_json = tmp_path / "preds.csv", tmp_path / "preds.json"
    assert main(["predict", "--adapter", str(adapter), *argv, "--top-k", "2", "--device", "cpu",
                 "--output", str(out_csv)]) == 0
    assert f"{len(expected)} image(s)" in capsys.readouterr().out
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "class_1", "prob_1", "class_2", "prob_2"]
    assert sorted(r["path"] for r in rows) == sorted(expected)
    classes = {"red square", "green square", "blue square"}
    for r in rows:
        p1, p2 = float(r["prob_1"]), float(r["prob_2"])
        assert {r["class_1"], r["class_2"]} <= classes and r["class_1"] != r["class_2"]
        assert 0 <= p2 <= p1 and p1 + p2 <= 1 + 1e-5

    assert main(["predict", "--adapter", str(adapter), *argv, "--top", "5", "--output", str(out_json)]) == 0
    saved = json.loads(out_json.read_text())
    assert (saved["count"], saved["skipped"], saved["top_k"]) == (len(expected), 0, 3)  # 3 classes < top 5
    for row in saved["predictions"]:
        assert len(row["top"]) == 3 and sum(t["prob"] for t in row["top"]) == pytest.approx(1, abs=1e-5)
    by_path = {r["path"]: r for r in rows}
    for row in saved["predictions"]:  # the same predictions in both formats
        assert row["top"][0]["class"] == by_path[row["path"]]["class_1"]
        assert row["top"][0]["prob"] == pytest.approx(float(by_path[row["path"]]["prob_1"]), abs=1e-6)


def test_batch_size_does_not_change_results(adapter, inputs, tmp_path):
    argv, _ = inputs
    results = []
    for size in (2, 32):
        out = tmp_path / f"b{size}.json"
        assert main(["predict", "--adapter", str(adapter), *argv, "--batch-size", str(size), "--output", str(out)]) == 0
        results.append(json.loads(out.read_text())["predictions"])
    small, large = results
    assert [r["path"] for r in small] == [r["path"] for r in large]
    for a, b in zip(small, large):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        assert [t["prob"] for t in a["top"]] == pytest.approx([t["prob"] for t in b["top"]], abs=1e-5)


def test_corrupt_image_is_skipped_and_counted_or_fails_with_strict(adapter, inputs, tmp_path, capsys):
    argv, expected = inputs
    bad = tmp_path / "album" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "preds.json"
    assert main(["predict", "--adapter", str(adapter), *argv, "--output", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "broken.jpg" in line]
    assert len(warnings) == 1 and "skipped" in warnings[0] and "Traceback" not in captured.err
    assert "1 unreadable image(s) skipped" in captured.out
    saved = json.loads(out.read_text())
    assert (saved["count"], saved["skipped"]) == (len(expected), 1)
    assert saved["skipped_files"][0]["path"] == str(bad)

    strict_out = tmp_path / "strict.csv"
    assert main(["predict", "--adapter", str(adapter), *argv, "--strict", "--output", str(strict_out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.jpg" in err[0] and err[0].startswith("lorevit: error:")
    assert not strict_out.exists() and not list(tmp_path.glob(".strict.csv*"))


def test_no_images_and_bad_output_suffix_are_one_line_errors(adapter, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", "--adapter", str(adapter), str(tmp_path / "empty")]) == 2
    assert "no images found" in capsys.readouterr().err
    image = write_images(tmp_path / "one", 1)[0]
    assert main(["predict", "--adapter", str(adapter), str(image), "--output", str(tmp_path / "p.xlsx")]) == 2
    err = capsys.readouterr().err
    assert "'.xlsx'" in err and ".csv" in err and not (tmp_path / "p.xlsx").exists()


def test_predict_from_python(adapter, tmp_path):
    from lorevit.factory import load_adapter
    from lorevit.tools.predict import predict_images

    model, cfg = load_adapter(adapter)
    paths = write_images(tmp_path / "py", 3)
    rows = predict_images(model, cfg, paths, batch_size=2, top_k=1, progress=False)
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert all(len(r["top"]) == 1 and 0 < r["top"][0]["prob"] <= 1 for r in rows)


@pytest.mark.parametrize("preset", ["vtab", "vpt-fgvc"])
def test_predict_uses_the_eval_transform_the_adapter_was_trained_with(tmp_path, color_folder, preset):
    """Issue 21: an adapter trained under ``transforms: vtab | vpt-fgvc`` predicts through that preset's eval
    transform (= training's test transform), not the default resize + centre crop; its metadata says which."""
    import torch

    from lorevit.adapters.format import read_adapter
    from lorevit.data.transforms import image_transforms
    from lorevit.factory import load_adapter
    from lorevit.training.run import train

    from .conftest import tiny_config

    run = tmp_path / "run"
    train(tiny_config(run, color_folder, method="linear", epochs=2, shots=4, batch_size=4, transforms=preset))
    # a wide noisy image: a squash keeps all of it, a centre crop the middle, VPT's crop a zoomed middle
    pixels = np.random.default_rng(0).integers(0, 256, (TINY_SIZE, 3 * TINY_SIZE, 3)).astype(np.uint8)
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    out = tmp_path / "preds.json"
    assert main(["predict", "--adapter", str(run), str(path), "--device", "cpu", "--output", str(out)]) == 0
    got = {t["class"]: t["prob"] for t in json.loads(out.read_text())["predictions"][0]["top"]}

    model, cfg = load_adapter(run)
    assert cfg.transforms == preset

    def probabilities(name):
        image = image_transforms(model.backbone.data_config, cfg.img_size, train=False, preset=name)(
            Image.open(path).convert("RGB"))
        with torch.no_grad():
            p = model.eval()(image[None]).logits.softmax(-1)[0]
        return {model.classnames[c]: float(v) for c, v in enumerate(p)}

    assert got == pytest.approx(probabilities(preset), abs=1e-6)
    default = probabilities("default")  # what predict did before: other numbers
    assert max(abs(got[c] - default[c]) for c in got) > 1e-5
    preprocessing = json.loads(read_adapter(run)[1]["preprocessing"])
    assert preprocessing["transforms"] == preset and preprocessing["img_size"] == cfg.img_size
