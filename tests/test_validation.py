"""The validation split of issue 11 §5: held out of the train split, disjoint from the training shots and
from the test split, seeded, and what ``val_every`` and model selection read (never the test split)."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from lorevit.config import Config
from lorevit.errors import ConfigError
from lorevit.data import few_shot_indices
from lorevit.data.sampling import validation_indices
from tests.conftest import CLASSES, tiny_config, write_color_folder

TARGETS = [i % 5 for i in range(200)]  # 5 classes × 40


@pytest.mark.parametrize("shots", [1, 4, 16, 36])
def test_validation_is_disjoint_from_the_shots_seeded_and_per_class(shots):
    val = validation_indices(TARGETS, 4, seed=3, reserved=shots)
    train = few_shot_indices(TARGETS, shots, seed=3)
    assert not set(val) & set(train)
    assert Counter(TARGETS[i] for i in val) == {c: 4 for c in range(5)}
    assert val == validation_indices(TARGETS, 4, seed=3, reserved=shots)
    assert val != validation_indices(TARGETS, 4, seed=4, reserved=shots)


def test_validation_images_do_not_depend_on_k_when_the_class_is_large():
    assert validation_indices(TARGETS, 4, 0, reserved=4) == validation_indices(TARGETS, 4, 0, reserved=16)


def test_a_small_class_gives_what_is_left_after_its_shots():
    targets = [0] * 10 + [1] * 5
    val = validation_indices(targets, 4, seed=0, reserved=3)
    assert Counter(targets[i] for i in val) == {0: 4, 1: 2}
    assert not set(val) & set(few_shot_indices(targets, 3, seed=0))


def test_default_validation_shots_follow_coop():
    assert Config(shots=16).validation_shots == 4
    assert Config(shots=2).validation_shots == 2
    assert Config(protocol="easy-to-hard", stage_shots=3).validation_shots == 3
    assert Config(protocol="full").validation_shots == 0
    assert Config(shots=16, val_shots=10).validation_shots == 10
    assert Config(shots=16, val_shots=0).validation_shots == 0


def test_val_every_without_a_validation_split_is_a_config_error():
    with pytest.raises(ConfigError, match="val_shots"):
        Config(protocol="full", val_every=1)
    with pytest.raises(ConfigError, match="val_shots"):
        Config(val_shots=0, val_every=2)


def test_a_run_validates_on_held_out_train_images_and_records_them(tmp_path, color_folder):
    from lorevit.training.run import train

    cfg = tiny_config(tmp_path / "run", color_folder, shots=6, val_shots=3, epochs=2, val_every=1)
    metrics = train(cfg)
    indices = json.loads((tmp_path / "run" / "indices.json").read_text())
    assert not set(indices["val"]) & set(indices["train"])
    assert len(indices["val"]) == metrics["num_val"] == 3 * len(CLASSES)  # 3 per class (12 train images each)
    assert 0 <= metrics["val_top1"] <= 100 and "test_top1" in metrics
    assert [row["epoch"] for row in metrics["history"] if "val_top1" in row] == [1, 2]


def test_selection_runs_never_touch_the_test_split(tmp_path, color_folder):
    from lorevit.training.run import train

    metrics = train(tiny_config(tmp_path / "run", color_folder, epochs=1), test=False)
    assert "val_top1" in metrics and not {"test_top1", "test_top5"} & set(metrics)


def test_full_protocol_holds_its_validation_images_out_of_training(tmp_path, color_folder):
    from lorevit.backbone import create_backbone
    from lorevit.training.datamodule import ClassificationData

    cfg = tiny_config(tmp_path / "run", color_folder, protocol="full", val_shots=2)
    data = ClassificationData(cfg, create_backbone(cfg.backbone, cfg.weights, cfg.img_size, **cfg.backbone_kwargs).data_config)
    assert len(data.val_indices) == 2 * len(CLASSES) and len(data.train_indices) == 10 * len(CLASSES)
    assert not set(data.val_indices) & set(data.train_indices)


def test_validation_is_disjoint_from_a_test_fraction_split(tmp_path):
    """An ImageFolder without train/ and test/: the seeded test share and the validation images are different files."""
    flat = tmp_path / "flat"
    write_color_folder(tmp_path / "colors", per_class=(10, 0))
    (tmp_path / "colors" / "train").rename(flat)
    cfg = tiny_config(tmp_path / "run", flat, shots=3, val_shots=3, test_fraction=0.3)
    from lorevit.training.datamodule import ClassificationData

    data = ClassificationData(cfg, {"mean": (0.5,) * 3, "std": (0.5,) * 3})
    train_files = {data.train_set.items[i] for i in data.val_indices + data.train_indices}
    assert data.val_indices and not train_files & set(data.test_set.items)


# ----------------------------------------------------------------------------- choosing settings on validation

def test_select_on_validation_takes_the_best_mean_and_the_first_on_a_tie():
    from lorevit.bench.ablation import AblationPlan, point_name, select_on_validation

    plan = AblationPlan(Config(), methods=["linear", "lore"], shots=[4], seeds=[0, 1],
                        grid={"epochs": [10, 30], "weight_decay": [0.001, 0.01]})
    assert [point_name(p) for p in plan.points()] == ["ep10-wd0.001", "ep10-wd0.01", "ep30-wd0.001", "ep30-wd0.01"]
    val = {"linear": [50, 60, 70, 40], "lore": [80, 80, 10, 10]}  # seed 0; seed 1 is 2 points higher
    runs = {(m, 4, s, point_name(p)): {"val_top1": float(val[m][i] + 2 * s)}
            for m in val for s in (0, 1) for i, p in enumerate(plan.points())}
    chosen, table = select_on_validation(plan, runs)
    assert chosen == {("linear", 4): {"epochs": 30, "weight_decay": 0.001},
                      ("lore", 4): {"epochs": 10, "weight_decay": 0.001}}
    best = table["linear"]["4"]["points"][2]
    assert table["linear"]["4"]["chosen"] == "ep30-wd0.001" and best["mean"] == 71.0 and best["std"] == pytest.approx(1.4142, abs=1e-4)


def test_bench_ablation_grid_tests_only_the_runs_chosen_on_validation(tmp_path, color_folder, capsys):
    from lorevit.cli import main
    from tests.conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT

    out = tmp_path / "ablation"
    args = ["bench", "ablation", "--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs", str(TINY_KWARGS),
            "--img-size", str(TINY_SIZE), "--dataset", "imagefolder", "--data-root", str(color_folder),
            "--methods", "linear,lore", "--shots", "2", "--seeds", "0,1", "--select-seeds", "0", "--batch-size", "8",
            "--test-subset", "9",
            "--accelerator", "cpu", "--lr", "0.05", "--grid", "epochs=1,2", "--val-shots", "3", "--output", str(out)]
    assert main(args) == 0
    report = json.loads((out / "ablation.json").read_text())
    for method in ("linear", "lore"):
        entry = report["selection"][method]["2"]
        vals = {p["name"]: p["mean"] for p in entry["points"]}
        assert set(vals) == {"ep1", "ep2"} and entry["chosen"] == max(vals, key=vals.get)
        for name in vals:  # the test split was read for the chosen run only
            metrics = json.loads((out / "runs" / method / "2shot" / name / "seed0" / "metrics.json").read_text())
            assert metrics["num_val"] == 3 * len(CLASSES) and metrics["val_top1"] == vals[name]
            assert ("test_top1" in metrics) == (name == entry["chosen"])
        chosen = out / "runs" / method / "2shot" / entry["chosen"]
        assert report["results"][method]["2"]["runs"] == [  # seed 1 was not searched: trained at the chosen point
            round(json.loads((chosen / f"seed{s}" / "metrics.json").read_text())["test_top1"], 4) for s in (0, 1)]
        assert yaml.safe_load((chosen / "seed1" / "config.yaml").read_text())["epochs"] == int(entry["chosen"][2:])
        assert not any((out / "runs" / method / "2shot" / name / "seed1").exists() for name in vals if name != entry["chosen"])
    assert "chosen on the validation split" in (out / "ablation.md").read_text()
    capsys.readouterr()
    assert main(args) == 0  # resumable: read back, nothing retrained or retested
    assert "done before" in capsys.readouterr().out
    assert main([*args[:-2], "--grid", "momentum=0.5", "--output", str(out)]) == 2
    assert main([*args[:-4], "--val-shots", "0", "--output", str(tmp_path / "x")]) == 2
