"""CSV datasets (issue 22 §4): ``--dataset csv --data-root list.csv`` with columns path,label[,split]."""
from __future__ import annotations

import json

import pytest

from lorevit.cli import main
from lorevit.data.dataset import DatasetError
from lorevit.data.registry import build_dataset

from tests.conftest import write_color_folder
from tests.test_cli import TINY_ARGS


def write_csv(folder, with_split=True, extra_rows=()):
    """list.csv over a colour tree: paths relative to the CSV's folder, labels = the folder names."""
    write_color_folder(folder / "images", per_class=(4, 2))
    lines = ["path,label,split" if with_split else "path,label"]
    for split in ("train", "test"):
        for image in sorted((folder / "images" / split).rglob("*.png")):
            rel = image.relative_to(folder).as_posix()
            lines.append(f"{rel},{image.parent.name}" + (f",{split}" if with_split else ""))
    lines.extend(extra_rows)
    path = folder / "list.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_reads_paths_labels_and_splits(tmp_path):
    path = write_csv(tmp_path)
    train = build_dataset("csv", "train", root=path)
    test = build_dataset("csv", "test", root=path)
    assert len(train) == 3 * 4 and len(test) == 3 * 2
    # classes: the sorted labels (blue, green, red folders), no classnames.txt next to the CSV
    assert train.classnames == ["blue square", "green square", "red square"]
    for dataset in (train, test):
        for item, target in zip(dataset.items, dataset.targets):
            assert f"/{dataset.classnames[target].replace(' ', '_')}/" in item  # the row's label, not a guess
    assert train.class_counts() == [4, 4, 4]
    assert str(path) in train.split_files


def test_csv_classnames_file_and_numeric_order(tmp_path):
    write_color_folder(tmp_path / "images", per_class=(1, 1))
    images = sorted((tmp_path / "images" / "train").rglob("*.png"))
    rows = [f"{images[0].relative_to(tmp_path).as_posix()},10,train",
            f"{images[1].relative_to(tmp_path).as_posix()},2,train",
            f"{images[2].relative_to(tmp_path).as_posix()},2,val"]
    (tmp_path / "mine.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    (tmp_path / "classnames.txt").write_text("2 two things\n10 ten things\n")
    train = build_dataset("csv", "train", root=tmp_path / "mine.csv")
    assert train.classnames == ["two things", "ten things"]  # "2" before "10"
    assert sorted(train.targets) == [0, 1]
    assert build_dataset("csv", "test", root=tmp_path / "mine.csv").targets == [0]  # val is the test split
    # the folder holding one CSV works as the root too
    assert len(build_dataset("csv", "train", root=tmp_path)) == 2


def test_csv_missing_file_named_with_its_line_number(tmp_path):
    path = write_csv(tmp_path, extra_rows=["images/train/gone.png,red_square,train"])
    line = len(path.read_text().splitlines())
    with pytest.raises(DatasetError, match=rf"line {line}: .*gone\.png.*bad_images='skip'"):
        build_dataset("csv", "train", root=path)
    with pytest.warns(UserWarning, match=rf"skipping 1 row.*line {line}"):
        train = build_dataset("csv", "train", root=path, bad_images="skip")
    assert len(train) == 12 and train.num_skipped == 1 and "gone.png" in train.skipped[0]


def test_csv_unreadable_image_named_with_its_line_number(tmp_path):
    path = write_csv(tmp_path)
    lines = path.read_text().splitlines()
    n, row = next((i + 1, r) for i, r in enumerate(lines) if r.endswith(",train") and i > 0)
    (tmp_path / row.split(",")[0]).write_bytes(b"not a png")
    train = build_dataset("csv", "train", root=path)
    broken = train.items.index(str(tmp_path / row.split(",")[0]))
    with pytest.raises(DatasetError, match=rf"list\.csv line {n}"):
        train[broken]


def test_csv_without_split_column_needs_test_fraction(tmp_path):
    path = write_csv(tmp_path, with_split=False)
    with pytest.raises(DatasetError, match="no 'split' column.*test_fraction"):
        build_dataset("csv", "train", root=path)
    train = build_dataset("csv", "train", root=path, test_fraction=0.25, split_seed=1)
    test = build_dataset("csv", "test", root=path, test_fraction=0.25, split_seed=1)
    assert len(train) + len(test) == 18 and not set(train.items) & set(test.items)
    assert test.class_counts() == [2, 2, 2]  # round(6 * 0.25) = 2 per class
    again = build_dataset("csv", "test", root=path, test_fraction=0.25, split_seed=1)
    assert again.items == test.items


@pytest.mark.parametrize("body, problem", [
    ("file,label\na.png,x\n", "no 'path' column"),
    ("path,label,split\n../outside.png,x,train\n", r"list\.csv:2: image path .*'\.\.'"),
    ("path,label,split\n/etc/passwd,x,train\n", "absolute"),
    ("path,label,split\na.png,x,holdout\n", r"list\.csv:2: split 'holdout'"),
    ("path,label,split\na.png\n", r"list\.csv:2: 1 field"),
])
def test_csv_bad_rows_are_named(tmp_path, body, problem):
    (tmp_path / "list.csv").write_text(body)
    with pytest.raises(DatasetError, match=problem):
        build_dataset("csv", "train", root=tmp_path / "list.csv")


def test_train_on_a_csv_through_the_cli(tmp_path, capsys):
    path = write_csv(tmp_path)
    out = tmp_path / "run"
    args = [a if a != "imagefolder" else "csv" for a in TINY_ARGS]
    assert main(["train", *args, "--data-root", str(path), "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test_top1" in metrics
    (tmp_path / "list.csv").write_text("path,label\nimages/x.png,a\n")
    assert main(["train", *args, "--data-root", str(path), "--output", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lorevit: error:") and "test_fraction" in err
