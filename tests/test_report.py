"""`lorevit report` (tables over runs), env.json of every run, and eval's per-class accuracy / confusion matrix."""
import csv
import hashlib
import importlib.metadata
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import lorevit
from lorevit.cli import main
from lorevit.config import Config
from lorevit.training.envinfo import list_sha256
from lorevit.training.evaluation import confusion_counts, per_class_accuracy, per_class_table
from lorevit.tools.report import group_runs, load_runs, seed_stats

from .conftest import CLASSES, TINY_KWARGS, TINY_SIZE, TINY_VIT


def write_run(folder, top1, top5=90.0, train_s=12.0, env=None, **changes):
    """A finished run's folder as `lorevit train` writes it: config.yaml (Config.to_yaml) + metrics.json."""
    values = dict(backbone=TINY_VIT, weights="random", backbone_kwargs=TINY_KWARGS, img_size=TINY_SIZE,
                  dataset="imagefolder", data_root="/data/colors", output=str(folder), progress=False)
    values.update(changes)
    cfg = Config(**values)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(cfg.to_yaml())
    metrics = {"method": cfg.method, "backbone": cfg.backbone, "dataset": cfg.dataset, "protocol": cfg.protocol,
               "shots": cfg.shots, "seed": cfg.seed, "img_size": cfg.img_size, "trainable_params": 1000,
               "total_params": 20000, "trainable_pct": 5.0, "num_test": 30, "test_top1": top1, "test_top5": top5,
               "history": [{"epoch": 1, "seconds": 1.0, "lr": 0.003, "train_loss": 1.0, "train_acc": 50.0}],
               "num_train": 24, "train_s": train_s, "test_s": 1.0, "world_size": 1, "negatives": "none",
               "wall_time_s": train_s + 2}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if env is not None:
        (folder / "env.json").write_text(json.dumps(env))
    return folder


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for seed, (top1, top5) in enumerate([(50.0, 90.0), (52.0, 92.0), (57.0, 94.0)]):
        write_run(root / f"lore-16-s{seed}", top1, top5, train_s=10.0 + seed, method="lore", shots=16, seed=seed,
                  num_workers=seed)  # workers differ: not a setting of the result
    for seed, top1 in enumerate([40.0, 44.0]):
        write_run(root / "vpt" / f"s{seed}", top1, method="vpt-deep", shots=16, seed=seed)
    write_run(root / "lore-4-s0", 30.0, method="lore", shots=4, seed=0)
    return root


def test_seed_stats_by_hand():
    assert seed_stats([50.0, 52.0, 57.0]) == {"mean": 53.0, "std": round(math.sqrt((9 + 1 + 16) / 2), 4)}
    assert seed_stats([58.08]) == {"mean": 58.08, "std": 0.0}


def test_report_groups_over_seeds_with_hand_computed_mean_and_std(runs, capsys):
    assert main(["report", str(runs)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| method | dataset | shots | backbone | n seeds | top-1 (%) | top-5 (%) | seeds |")
    lore16 = [r for r in rows if r.startswith("| lore | imagefolder | 16 |")]
    assert lore16 == [f"| lore | imagefolder | 16 | {TINY_VIT} | 3 | 53.00 ± 3.61 | 92.00 ± 2.00 | 0, 1, 2 | 11 s |"]
    assert "| lore | imagefolder | 4 |" in out and "| 1 | 30.00 ± 0.00 |" in out
    assert f"| vpt-deep | imagefolder | 16 | {TINY_VIT} | 2 | 42.00 ± 2.83 |" in out  # sqrt(8) = 2.828
    assert len(rows) == 1 + 3  # header + lore-4, lore-16, vpt-deep-16: num_workers/output never split a group


def test_runs_differing_in_another_key_are_not_merged(tmp_path):
    root = tmp_path / "runs"
    write_run(root / "a0", 50.0, seed=0, epochs=10)
    write_run(root / "a1", 54.0, seed=1, epochs=10)
    write_run(root / "b0", 70.0, seed=0, epochs=20, lr=0.01)
    columns, rows = group_runs(load_runs([root])[0])
    assert columns == ["method", "dataset", "shots", "backbone", "epochs", "lr"]
    assert [(r.columns["epochs"], r.columns["lr"], len(r.runs), r.stats("test_top1")["mean"]) for r in rows] == [
        ("10", "0.003", 2, 52.0), ("20", "0.01", 1, 70.0)]


def test_quoted_globs_parent_folders_and_unfinished_runs(runs, tmp_path, capsys):
    unfinished = runs / "lore-16-s9"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text(Config(output=str(unfinished)).to_yaml())
    assert main(["report", str(runs / "lore-16-*")]) == 0  # the glob as a quoted argument reaches us unexpanded
    captured = capsys.readouterr()
    assert "| 3 | 53.00 ± 3.61 |" in captured.out and "vpt-deep" not in captured.out
    assert "skipped" in captured.err and "lore-16-s9" in captured.err and "unfinished" in captured.err
    # a parent folder finds nested runs (vpt/s0, vpt/s1); the same run named twice counts once
    assert main(["report", str(runs / "vpt"), str(runs / "vpt" / "s0")]) == 0
    assert "| vpt-deep | imagefolder | 16 |" in capsys.readouterr().out.replace(f" {TINY_VIT} | 2 |", "")


@pytest.mark.parametrize("case", ["glob matches nothing", "missing folder", "no runs", "bad metrics", "only unfinished",
                                  "output is a file"])
def test_report_errors_are_one_line(tmp_path, case, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    if case == "glob matches nothing":
        args, expected = [str(tmp_path / "nope-*")], "matches nothing"
    elif case == "missing folder":
        args, expected = [str(tmp_path / "nowhere")], "no such file or folder"
    elif case == "no runs":
        args, expected = [str(empty)], "no finished runs"
    elif case == "bad metrics":
        run = write_run(tmp_path / "r", 50.0)
        (run / "metrics.json").write_text("{not json")
        args, expected = [str(run)], "cannot read"
    elif case == "only unfinished":
        (empty / "config.yaml").write_text(Config().to_yaml())
        args, expected = [str(empty)], "no finished runs"
    else:
        args, expected = [str(write_run(tmp_path / "r", 50.0))], "is a file"
        (tmp_path / "out").write_text("")
    assert main(["report", *args, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lorevit: error: ") and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").is_dir()  # nothing written


def test_output_files_and_csv_round_trip(runs, tmp_path):
    out = tmp_path / "report"
    (runs / "notes.txt").write_text("a file beside the runs: a glob may match it")
    assert main(["report", str(runs / "*"), "--output", str(out)]) == 0
    assert (out / "report.md").read_text().count("\n| ") == 1 + 3
    with open(out / "report.csv", newline="") as f:
        table = list(csv.DictReader(f))
    lore16 = next(r for r in table if r["method"] == "lore" and r["shots"] == "16")
    assert (int(lore16["n_seeds"]), float(lore16["top1_mean"]), float(lore16["top1_std"])) == (3, 53.0, 3.6056)
    assert (float(lore16["top5_mean"]), float(lore16["top5_std"]), lore16["seeds"]) == (92.0, 2.0, "0;1;2")
    assert float(lore16["train_s"]) == 11.0 and len(lore16["runs"].split(";")) == 3
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_mixed_versions_within_a_group_are_flagged(tmp_path):
    root = tmp_path / "runs"
    for seed, torch_version in enumerate(["2.4.0", "2.5.1"]):
        env = {"versions": {"lorevit": "0.1.0", "torch": torch_version}, "git": None}
        write_run(root / f"s{seed}", 50.0 + seed, seed=seed, env=env)
    _, rows = group_runs(load_runs([root])[0])
    assert rows[0].note == "mixed torch versions 2.4.0, 2.5.1"


def test_env_json_of_a_real_run(tiny_adapter):
    env = json.loads((tiny_adapter / "env.json").read_text())
    indices = json.loads((tiny_adapter / "indices.json").read_text())["train"]
    compact = json.dumps(indices, separators=(",", ":")).encode()
    assert env["data"]["train_indices_sha256"] == hashlib.sha256(compact).hexdigest() == list_sha256(indices)
    assert env["data"]["classes_sha256"] == list_sha256(sorted(CLASSES)) and env["data"]["num_classes"] == 3
    assert env["data"]["num_train"] == len(indices) == 3 * 4
    versions = env["versions"]
    assert versions["torch"] == importlib.metadata.version("torch") and versions["lorevit"] == lorevit.__version__
    assert {"lorevit", "python", "timm", "lightning", "open_clip", "numpy"} <= set(versions)
    device = env["device"]
    assert (device["accelerator"], device["used"], device["precision"], device["world_size"]) == ("cpu", "cpu", "32-true", 1)
    assert device["gpu_count"] == len(device["gpus"]) and device["cpu_count"] >= 1
    assert isinstance(device["malloc_tuned"], bool)  # True once the process ran the `lorevit` command
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()
    if head:  # the tests run from a git checkout
        assert env["git"]["commit"] == head and isinstance(env["git"]["dirty"], bool)


def test_easy_to_hard_runs_hash_each_stage():
    from lorevit.training.envinfo import data_info

    metrics = {"stages": {"easy": {"indices": [5, 1, 9]}, "hard": {"indices": [2, 7, 3]}}}
    info = data_info(Config(protocol="easy-to-hard"), ["a", "b"], [2, 7, 3], metrics)
    assert info["train_indices_sha256"] == {"easy": hashlib.sha256(b"[5,1,9]").hexdigest(),
                                            "hard": hashlib.sha256(b"[2,7,3]").hexdigest()}
    assert info["classes_sha256"] == hashlib.sha256(b'["a","b"]').hexdigest()


def test_git_state_outside_a_checkout_is_none(tmp_path):
    from lorevit.training.envinfo import git_state

    assert git_state(tmp_path) is None


def test_confusion_matrix_and_per_class_accuracy_by_hand():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    preds = torch.tensor([0, 1, 1, 2, 0, 2])
    confusion = confusion_counts(labels, preds, 4)  # class 3 has no test image
    assert confusion.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert per_class_accuracy(confusion.numpy()) == [50.0, 100.0, pytest.approx(200 / 3), None]
    table = per_class_table(confusion, ["a", "b", "c", "d"])
    assert table["top1"] == pytest.approx(400 / 6) and table["num_test"] == 6
    assert table["mean_class_accuracy"] == pytest.approx((50 + 100 + 200 / 3) / 3)
    assert table["classes"][0] == {"index": 0, "class": "a", "support": 2, "correct": 1, "predicted": 2, "accuracy": 50.0}


def test_eval_writes_per_class_accuracy_and_confusion_figure(tiny_adapter, tmp_path, capsys):
    out = tmp_path / "eval"
    before = sorted(p.name for p in tiny_adapter.iterdir())
    assert main(["eval", "--adapter", str(tiny_adapter), "--output", str(out)]) == 0
    assert "per_class.json" in capsys.readouterr().out
    assert sorted(p.name for p in tiny_adapter.iterdir()) == before  # --output: nothing written into the adapter
    evaluated = json.loads((out / "eval.json").read_text())
    table = json.loads((out / "per_class.json").read_text())
    confusion = np.array(table["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == evaluated["num_test"] == 3 * 2
    assert confusion.sum(1).tolist() == [2, 2, 2]  # two test images per class
    assert 100 * np.trace(confusion) / confusion.sum() == pytest.approx(evaluated["test_top1"])
    assert [c["class"] for c in table["classes"]] == sorted(CLASSES)  # ImageFolder order
    assert [c["accuracy"] for c in table["classes"]] == [100 * confusion[i, i] / 2 for i in range(3)]
    trained = json.loads((tiny_adapter / "metrics.json").read_text())
    assert evaluated["test_top1"] == pytest.approx(trained["test_top1"])
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("num_classes", [3, 60])
def test_confusion_figure_for_few_and_many_classes(tmp_path, num_classes):
    from lorevit.training.figures import plot_confusion

    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, num_classes, 500))
    confusion = confusion_counts(labels, labels.roll(1), num_classes)
    path = plot_confusion(confusion, [f"class {i}" for i in range(num_classes)], tmp_path / "c.png", title="t")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_report_over_real_tiny_runs(tmp_path, capsys):
    """2 methods × 2 seeds trained for real (tiny ViT, one epoch): the report's numbers are their metrics'."""
    from lorevit.backbone import create_backbone
    from lorevit.training.run import train

    from .conftest import tiny_config, write_color_folder

    data = write_color_folder(tmp_path / "colors", per_class=(4, 2))
    backbone = create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS)  # shared, as `bench ablation` does
    metrics = {}
    for method in ("vpt-shallow", "linear"):  # no knowledge encoder to load: fast
        for seed in (0, 1):
            out = tmp_path / "runs" / method / f"seed{seed}"
            metrics[method, seed] = train(tiny_config(out, data, method=method, seed=seed, epochs=1, shots=4,
                                                      batch_size=4), backbone=backbone)
            assert (out / "env.json").is_file()
    assert main(["report", str(tmp_path / "runs"), "--output", str(tmp_path / "report")]) == 0
    with open(tmp_path / "report" / "report.csv", newline="") as f:
        table = {row["method"]: row for row in csv.DictReader(f)}
    assert set(table) == {"vpt-shallow", "linear"}
    for method, row in table.items():
        expected = seed_stats([round(metrics[method, s]["test_top1"], 4) for s in (0, 1)])
        assert (row["n_seeds"], row["seeds"], row["shots"]) == ("2", "0;1", "4")
        assert (float(row["top1_mean"]), float(row["top1_std"])) == (expected["mean"], expected["std"])
        assert row["note"] == ""  # same versions and commit within each group


def test_eval_output_that_is_a_file_is_one_clear_error(tiny_adapter, tmp_path, capsys):
    target = tmp_path / "taken.json"
    target.write_text("{}")
    assert main(["eval", "--adapter", str(tiny_adapter), "--output", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err and target.read_text() == "{}"


def test_git_state_of_a_checkout(tmp_path):
    from lorevit.training.envinfo import git_state

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    assert git_state(tmp_path) == {"commit": git("rev-parse", "HEAD").strip(), "dirty": False}
    (tmp_path / "a.txt").write_text("2")
    assert git_state(tmp_path)["dirty"] is True
    (tmp_path / "sub").mkdir()
    assert git_state(tmp_path / "sub")["commit"] == git("rev-parse", "HEAD").strip()  # found from below
