"""``lorevit bench suite`` (issue 21 §2–3): the averaging rules against hand and published numbers, the
tune-then-retrain bookkeeping, resume after SIGKILL, the stand-ins through the real readers, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lorevit.bench.suite import PUBLISHED_VTAB, base2novel_average, choose_point, harmonic_mean, vtab_average
from lorevit.cli import main
from tests.conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT

TINY = ["--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs", json.dumps(TINY_KWARGS),
        "--img-size", str(TINY_SIZE), "--eval-batch-size", "64"]


# ------------------------------------------------------------------------------------------- averaging
def test_vtab_average_matches_the_published_vpt_deep_row():
    avg = vtab_average(PUBLISHED_VTAB["VPT-deep"])  # BASELINES_VISION §B1: 3-group 72.0, mean of 19 69.4
    assert round(avg["natural"], 1) == 78.5 and round(avg["specialized"], 1) == 82.4 and round(avg["structured"], 1) == 55.0
    assert round(avg["mean_of_groups"], 1) == 72.0 and round(avg["mean_of_19"], 1) == 69.4 and avg["tasks"] == 19
    # the other rows' published averages (NOAH "Average" / V-PETL "Mean")
    assert round(vtab_average(PUBLISHED_VTAB["Linear"])["mean_of_groups"], 1) == 57.6
    assert round(vtab_average(PUBLISHED_VTAB["Linear"])["mean_of_19"], 1) == 52.9


def test_vtab_average_by_hand():
    scores = {"cifar": 50.0, "dtd": 70.0, "eurosat": 90.0, "clevr_count": 30.0, "kitti": 40.0}
    avg = vtab_average(scores)
    assert avg["natural"] == 60.0 and avg["specialized"] == 90.0 and avg["structured"] == 35.0
    assert avg["mean_of_groups"] == pytest.approx((60 + 90 + 35) / 3)
    assert avg["mean_of_19"] == pytest.approx(56.0)  # plain mean of the five given
    assert vtab_average({"cifar": 1.0})["mean_of_groups"] is None  # a group without a task: no 3-group mean
    with pytest.raises(ValueError, match="unknown VTAB-1k task"):
        vtab_average({"vtab-cifar": 1.0})


def test_harmonic_mean_and_base2novel_average():
    assert harmonic_mean(80, 60) == pytest.approx(2 * 80 * 60 / 140)
    assert harmonic_mean(0, 0) == 0.0
    assert round(harmonic_mean(82.69, 63.22), 2) == 71.66  # CoOp's published average row (BASELINES_CLIP §8)
    avg = base2novel_average({"a": (80.0, 60.0), "b": (60.0, 80.0)})
    assert avg["base"] == 70.0 and avg["new"] == 70.0 and avg["hm"] == pytest.approx(70.0)  # HM of the averages …
    assert avg["mean_of_hm"] == pytest.approx(2 * 80 * 60 / 140)  # … not the mean of the per-dataset HMs


# ------------------------------------------------------------------------------------- the declared grids
def test_vpt_grid_is_the_spec_numbers_by_hand():
    from lorevit.config import Config
    from lorevit.methods import METHODS

    cfg = Config(method="vpt-deep", batch_size=128)  # VPT:tune_vtab.py get_lrwd_range("prompt"), lr × 128 / 256
    grid = METHODS["vpt-deep"].tuning_grid(cfg, "vtab")
    lrs = [25.0, 12.5, 5.0, 2.5, 1.25, 0.5, 0.25, 0.125, 0.05, 0.025]  # {50, 25, 10, 5, 2.5, 1, .5, .25, .1, .05} / 2
    wds = [0.01, 0.001, 0.0001, 0.0]
    assert [p["lr"] for p in grid.points] == pytest.approx([lr for lr in lrs for _ in wds])  # lr outermost
    assert [p["weight_decay"] for p in grid.points] == wds * 10
    assert "get_lrwd_range('prompt')" in grid.source and "§A5" in grid.source
    assert grid.quick_grid().points == ({"lr": pytest.approx(0.025), "weight_decay": 0.0001},
                                        {"lr": pytest.approx(0.05), "weight_decay": 0.0001})  # the 2 smallest lrs
    assert METHODS["linear"].tuning_grid(cfg, "fgvc").points == grid.points  # VPT's linear grid: the same numbers
    full = METHODS["full"].tuning_grid(cfg.replace(batch_size=256), "vtab").points
    assert sorted({p["lr"] for p in full}) == [0.0001, 0.0005, 0.001, 0.005] and len(full) == 16
    lora = METHODS["lora"].tuning_grid(cfg, "vtab").points  # PETL_Vision: lr {1e-3, 1e-2} × wd {1e-4, 1e-3}
    assert [(p["lr"], p["weight_decay"]) for p in lora] == [(1e-3, 1e-4), (1e-3, 1e-3), (1e-2, 1e-4), (1e-2, 1e-3)]
    af = METHODS["adaptformer"].tuning_grid(cfg, "vtab").points
    assert len(af) == 36 and {p["method_options"]["bottleneck_dim"] for p in af} == {4, 16, 32}
    assert {p["method_options"]["scale"] for p in af} == {0.05, 0.1, 0.2}
    lore = METHODS["lore"].tuning_grid(cfg.replace(lr=0.004), "vtab")
    assert len(lore.points) == 12 and "our choice" in lore.source
    assert lore.quick_grid().points == ({"lr": 0.004, "weight_decay": 0.5}, {"lr": 0.008, "weight_decay": 0.5})
    coop = METHODS["coop"].tuning_grid(cfg.replace(lr=0.002), "vtab")  # no declared grid: lr × 0.5, 1, 2
    assert coop.names == ("lr0.5x", "lr1x", "lr2x") and "no declared grid" in coop.source


def test_choose_point_by_hand():
    rows = [{"point": "a", "lr": 0.1, "val_top1": 50.0}, {"point": "b", "lr": 0.01, "val_top1": 60.0},
            {"point": "c", "lr": 0.001, "val_top1": 60.0}, {"point": "d", "lr": 0.0001, "val_top1": None}]
    assert choose_point(rows)["point"] == "c"  # the best val top-1; a tie goes to the smaller lr (VPT)
    assert choose_point(rows[:2])["point"] == "b"
    rows[3]["val_top1"] = 99.0
    assert choose_point(rows[2:])["point"] == "d"
    from lorevit.errors import ConfigError

    with pytest.raises(ConfigError, match="every point of the tuning grid diverged"):
        choose_point([{"point": "a", "lr": 1.0, "val_top1": None}])


# ------------------------------------------------------------------------------------------- stand-ins
@pytest.fixture(scope="session")
def standins(tmp_path_factory):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist (make setup)")
    from lorevit.tasks.standins.protocols import build

    return build(tmp_path_factory.mktemp("suite") / "standins")


def test_standins_are_read_by_the_real_readers(standins):
    from lorevit.data import build_dataset

    train = build_dataset("vtab-svhn", "train", root=standins / "vtab-1k")
    tune = build_dataset("vtab-svhn@tune", "train", root=standins / "vtab-1k" / "svhn")
    assert len(train) == 100 and len(tune) == 80 and len(train.classnames) == 10
    assert len(build_dataset("vtab-clevr_count", "test", root=standins).classnames) == 8
    cub = build_dataset("fgvc-cub", "train", root=standins)
    assert sorted(set(cub.targets)) == list(range(len(cub.classnames))) and len(cub.classnames) >= 4
    food = build_dataset("food101@new", "test", root=standins)
    assert len(food.classnames) == 5 and food.classnames[0] == "sandal"
    image = train[0][0]
    assert isinstance(image, Image.Image) and image.mode == "RGB"


def _count_reads(monkeypatch) -> dict:
    from lorevit.data.dataset import LabeledDataset

    counts: dict = {}
    original = LabeledDataset.__getitem__

    def counted(self, i):
        counts[(self.name, self.split)] = counts.get((self.name, self.split), 0) + 1
        return original(self, i)

    monkeypatch.setattr(LabeledDataset, "__getitem__", counted)
    return counts


def test_vtab_tunes_on_val200_then_reads_the_test_split_once(standins, tmp_path, monkeypatch, capsys):
    from lorevit.methods.linear import LinearProbe
    from lorevit.methods.tuning import TuningGrid

    counts = _count_reads(monkeypatch)
    points = ({"lr": 0.003, "weight_decay": 0.5}, {"lr": 0.03, "weight_decay": 0.0},
              {"lr": 1e38, "weight_decay": 0.0})  # the third diverges: recorded, never chosen
    monkeypatch.setattr(LinearProbe, "tuning_grid",
                        classmethod(lambda cls, cfg, protocol: TuningGrid(points, "a test grid", (0, 1, 2))))
    out = tmp_path / "suite"
    args = ["bench", "suite", "--protocol", "vtab", "--quick", "--data-root", str(standins), "--methods", "linear",
            "--datasets", "vtab-svhn,vtab-eurosat,vtab-clevr_count", "--output", str(out), *TINY]
    assert main(args) == 0
    for task in ("svhn", "eurosat", "clevr_count"):
        n_test = sum(1 for _ in open(standins / "vtab-1k" / task / "test.txt"))
        n_val = sum(1 for _ in open(standins / "vtab-1k" / task / "val200.txt"))
        assert counts[(f"vtab-{task}", "test")] == n_test  # the test split: once, for the retrained model only
        assert counts[(f"vtab-{task}@tune", "test")] == 2 * n_val  # val200: once per grid point that trained
    report = json.loads((out / "suite.json").read_text())["protocols"]["vtab"]
    assert set(report["tuning"]) == {"vtab-svhn|linear", "vtab-eurosat|linear", "vtab-clevr_count|linear"}
    for key, chosen in report["tuning"].items():
        assert chosen["grid"].startswith("a test grid") and [r["overrides"] for r in chosen["points"]] == list(points)
        assert chosen["points"][2]["status"] == "diverged" and chosen["points"][2]["val_top1"] is None
        ran = chosen["points"][:2]
        best = max(ran, key=lambda r: (r["val_top1"], -r["lr"]))  # the highest val top-1, ties to the smaller lr
        assert chosen["chosen"] == best["point"]
        cell = report["cells"][key.replace("|linear", "|linear|None|1")]
        assert (cell["lr"], cell["weight_decay"]) == (best["lr"], best["weight_decay"])  # the retrain uses the choice
        assert cell["tuned"] == best["point"] and cell["overrides"] == best["overrides"]
    cell = report["cells"]["vtab-svhn|linear|None|1"]
    cfg = (out / cell["run"] / "config.yaml").read_text()
    assert f"weight_decay: {cell['weight_decay']}\n" in cfg
    assert "dataset: vtab-svhn\n" in cfg and "protocol: full" in cfg  # train800val200, all of it
    row = report["tables"]["linear"]
    scores = {d.removeprefix("vtab-"): v["mean"] for d, v in row["per_dataset"].items()}
    assert row["average"] == vtab_average(scores)  # both averages, from the per-task numbers
    assert report["tables"]["(chance)"]["per_dataset"]["vtab-clevr_count"]["mean"] == pytest.approx(12.5)
    env = json.loads((out / cell["run"] / "env.json").read_text())
    split = env["data"]["split_files"]
    assert any(p.endswith("train800val200.txt") for p in split) and all(len(h) == 64 for h in split.values())
    md = (out / "suite.md").read_text()
    assert "mean of groups" in md and "mean of tasks" in md and "(published)" in md and "Rule." in md
    assert "declared grid" in md and "grid: a test grid" in md and "lr1e+38_wd0: diverged" in md
    assert (out / "vtab.png").stat().st_size > 1000
    # a second run reads every cell back (nothing retrained)
    mtime = (out / cell["run"] / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / cell["run"] / "metrics.json").stat().st_mtime_ns == mtime
    assert "done before" in capsys.readouterr().out


def test_fgvc_coop_and_base2novel_quick(standins, tmp_path):
    out = tmp_path / "suite"
    common = ["--quick", "--data-root", str(standins), "--output", str(out), *TINY]
    assert main(["bench", "suite", "--protocol", "fgvc", "--methods", "linear", "--lr-factors", "1", *common]) == 0
    assert main(["bench", "suite", "--protocol", "coop-fewshot", "--methods", "linear,vpt-deep", *common]) == 0
    assert main(["bench", "suite", "--protocol", "base2novel", "--methods", "linear", "--shots", "4", *common]) == 0
    protocols = json.loads((out / "suite.json").read_text())["protocols"]
    assert set(protocols) == {"fgvc", "coop-fewshot", "base2novel"}  # one suite.json for every protocol run here
    tuned = protocols["fgvc"]["tuning"]["fgvc-cub|linear"]  # --lr-factors replaces the declared grid
    assert [r["point"] for r in tuned["points"]] == ["lr1x"] and tuned["grid"].startswith("--lr-factors")
    fgvc = protocols["fgvc"]["tables"]["linear"]
    assert fgvc["average"]["mean"] == fgvc["per_dataset"]["fgvc-cub"]["mean"]
    coop = protocols["coop-fewshot"]
    assert set(coop["tables"]["vpt-deep"]) == {"1", "4"}
    one = coop["tables"]["linear"]["1"]
    assert one["average_coop11"] == one["per_dataset"]["food101"]["mean"]  # food101 is one of CoOp's 11 …
    assert one["average_lore12"] is None  # … and none of LORE's 12
    assert {c["fewshot_source"] for c in coop["cells"].values()} == {"lorevit-seeded"}
    b2n = protocols["base2novel"]
    cell = b2n["cells"]["food101@base|linear|4|1"]
    assert cell["new_top1"] is None and "New n/a" in b2n["notes"]["linear"]  # a per-class head: no new classes
    indices = json.loads((out / cell["run"] / "indices.json").read_text())["train"]
    assert len(indices) == 5 * 4  # 4 shots of the 5 base classes only
    assert b2n["tables"]["(chance)"]["per_dataset"]["food101"] == {"base": 20.0, "new": 20.0, "hm": 20.0}
    md = (out / "suite.md").read_text()
    assert "# fgvc" in md and "# coop-fewshot" in md and "# base2novel" in md and "HM" in md


def test_suite_resumes_after_sigkill(standins, tmp_path):
    out = tmp_path / "suite"
    cmd = [sys.executable, "-m", "lorevit", "bench", "suite", "--protocol", "coop-fewshot", "--quick", "--methods",
           "linear", "--shots", "1,2,4", "--data-root", str(standins), "--output", str(out), *TINY]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    first = out / "runs" / "coop-fewshot" / "food101" / "linear" / "1shot" / "seed1" / "metrics.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(first.read_text()).get("fewshot_source"):  # the first cell is finished and recorded
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    assert proc.poll() is None, "the suite ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    mtime = first.stat().st_mtime_ns
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert first.stat().st_mtime_ns == mtime  # the finished cell was not rerun
    assert "done before" in result.stdout
    report = json.loads((out / "suite.json").read_text())["protocols"]["coop-fewshot"]
    assert {c["shots"] for c in report["cells"].values()} == {1, 2, 4}


# ------------------------------------------------------------------------------------------- bad input
def test_bad_input_is_one_line(tmp_path, capsys, standins):
    assert main(["bench", "suite", "--protocol", "vtab-1k", "--output", str(tmp_path / "o")]) == 2
    assert "lorevit: error: --protocol 'vtab-1k'" in capsys.readouterr().err
    assert main(["bench", "suite", "--protocol", "vtab", "--datasets", "vtab-cifar10", "--data-root", str(standins),
                 "--output", str(tmp_path / "o")]) == 2
    assert "not datasets of protocol vtab" in capsys.readouterr().err
    assert main(["bench", "suite", "--protocol", "fgvc", "--data-root", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no dataset of protocol fgvc" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "suite", "--protocol", "vtab", "--methods", "nope", "--data-root", str(standins),
                 "--output", str(tmp_path / "o")]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["bench", "suite", "--protocol", "vtab", "--lr-factors", "1,1", "--data-root", str(standins),
                 "--output", str(tmp_path / "o")]) == 2
    assert "--lr-factors takes distinct positive numbers" in capsys.readouterr().err
    assert not (tmp_path / "o" / "suite.json").exists()  # nothing half-written
    (tmp_path / "file").write_text("x")
    assert main(["bench", "suite", "--protocol", "vtab", "--output", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


# ------------------------------------------------------------------------------- dg on a generated ImageNet
def _img(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value % 256, np.uint8)).save(path)


def test_dg_masks_a_1000_way_head_on_generated_folders(tmp_path):
    from lorevit.data.benchmarks import imagenet_200_mask, imagenet_wnids

    wnids = imagenet_wnids()
    root = tmp_path / "data"
    for i, w in enumerate(wnids):
        _img(root / "imagenet" / "images" / "train" / w / "a.jpg", i)
        _img(root / "imagenet" / "images" / "val" / w / "b.jpg", i)
        _img(root / "imagenet-sketch" / "images" / w / "c.jpg", i)
        _img(root / "imagenetv2" / "imagenetv2-matched-frequency-format-val" / str(i) / "d.jpeg", i)
    for variant, folder in (("a", "imagenet-adversarial/imagenet-a"), ("r", "imagenet-rendition/imagenet-r")):
        for i in imagenet_200_mask(variant):
            _img(root / folder / wnids[i] / "e.jpg", i)
    out = tmp_path / "suite"
    assert main(["bench", "suite", "--protocol", "dg", "--methods", "linear", "--data-root", str(root), "--shots", "1",
                 "--seeds", "1", "--epochs", "1", "--output", str(out), *TINY]) == 0
    report = json.loads((out / "suite.json").read_text())["protocols"]["dg"]
    cell = report["cells"]["imagenet|linear|1|1"]
    assert set(cell["targets"]) == {"imagenet-v2", "imagenet-sketch", "imagenet-a", "imagenet-r"}
    evals = {t: json.loads((out / cell["run"] / "eval" / f"{t}.json").read_text()) for t in cell["targets"]}
    assert evals["imagenet-a"]["masked"] and evals["imagenet-a"]["num_test"] == 200
    assert not evals["imagenet-v2"]["masked"] and evals["imagenet-v2"]["num_test"] == 1000
    row = report["tables"]["linear"]
    assert row["average"] == pytest.approx(np.mean([v["mean"] for v in row["per_target"].values()]))


# ------------------------------------------------------------- the ImageNet family of stand-ins (xd, dg)
def test_standin_shifts_on_generated_images():
    from lorevit.tasks.standins.protocols import pixel_probe, rendition, sketch

    square = np.zeros((12, 12), np.uint8)
    square[3:9, 3:9] = 255  # a white square on black, as Fashion-MNIST's objects
    drawn = sketch(square)
    assert drawn.shape == (12, 12) and drawn.dtype == np.uint8
    assert drawn[0, 0] == 255 and drawn[5, 5] == 255  # flat regions (background, inside) are white paper …
    assert drawn.min() == 0 and drawn[3, 5] < 128 and drawn[5, 2] < 128  # … the outline is dark strokes
    ramp = np.repeat(np.arange(0, 256, 16, dtype=np.uint8)[None], 4, axis=0)  # 16 grey levels
    painted = rendition(ramp, np.random.default_rng(0))
    assert painted.shape == (4, 16, 3) and painted.dtype == np.uint8
    colours = {tuple(c) for c in painted.reshape(-1, 3)}
    assert len(colours) == 4  # four flat tones …
    assert len({tuple(painted[0, i]) for i in range(4)}) == 1  # … equal grey levels, equal colour
    assert not np.array_equal(painted, rendition(ramp, np.random.default_rng(1)))  # the palette is random
    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, (60, 6, 6)).astype(np.uint8)
    labels = np.arange(60) % 3
    for c in range(3):
        images[labels == c, c * 2:(c + 1) * 2] += 200  # each class lights its own columns
    predict = pixel_probe(images[:30], labels[:30], 3)
    assert (predict(images[30:]) == labels[30:]).all()  # linearly separable: the probe is right on held-out images


def test_standin_build_writes_again_only_the_parts_not_complete(tmp_path, monkeypatch):
    from lorevit.tasks.standins import protocols

    calls = []

    def fake(name, last):
        def builder(root, sizes):
            calls.append(name)
            (root / last).parent.mkdir(parents=True, exist_ok=True)
            (root / last).write_text("x")
            return [name]
        return builder

    parts = {n: (folders, last, fake(n, last), sizes) for n, (folders, last, _, sizes) in protocols.PARTS.items()}
    monkeypatch.setattr(protocols, "PARTS", parts)
    monkeypatch.setattr(protocols, "imagenet_folders", lambda root: calls.append("empty class folders"))
    protocols.build(tmp_path)
    assert calls == ["vtab", "fgvc", "coop", "imagenet"]
    calls.clear()
    protocols.build(tmp_path)
    assert calls == ["empty class folders"]  # all complete: only git's missing empty folders are made again
    (tmp_path / parts["imagenet"][1]).unlink()  # a checkout without the (ignored) ImageNet stand-in images
    calls.clear()
    protocols.build(tmp_path)
    assert calls == ["imagenet"]
    (tmp_path / protocols.MARKER).write_text("lorevit protocol stand-ins (x): vtab-svhn, vtab-eurosat, fgvc-cub, food101\n")
    calls.clear()
    protocols.build(tmp_path)  # an older lorevit's marker: its three parts are kept, ImageNet's is written
    assert calls == ["imagenet"]


def test_imagenet_standins_are_read_by_the_real_readers(standins):
    from lorevit.data import build_dataset
    from lorevit.data.benchmarks import imagenet_200_mask, imagenet_wnids
    from lorevit.tasks.standins.protocols import FASHION_WNIDS

    index = {w: i for i, w in enumerate(imagenet_wnids())}
    mapped = sorted(index[w] for _, w in FASHION_WNIDS)
    train = build_dataset("imagenet", "train", root=standins / "imagenet")
    assert len(train.classnames) == 1000 and sorted(set(train.targets)) == mapped  # a 1000-way head, 10 populated
    assert train.classnames[index["n04133789"]] == "Sandal" and train.classnames[0] == "tench"  # classnames.txt
    v2 = build_dataset("imagenet-v2", "test", root=standins)
    sketches = build_dataset("imagenet-sketch", "test", root=standins)
    assert sorted(set(v2.targets)) == mapped == sorted(set(sketches.targets)) and len(v2.classnames) == 1000
    for variant in ("a", "r"):
        ds = build_dataset(f"imagenet-{variant}", "test", root=standins)
        assert ds.logit_mask == imagenet_200_mask(variant) and len(ds.classnames) == 200
        assert {ds.logit_mask[t] for t in ds.targets} == set(mapped)  # the masked head's label j is wnid mask[j]
    assert (standins / "imagenet-adversarial" / "imagenet-a" / "README.txt").read_text().count("gets wrong") == 1
    grey = np.asarray(v2[0][0], np.float32)
    drawn = np.asarray(sketches[0][0], np.float32)
    rendered = np.asarray(build_dataset("imagenet-r", "test", root=standins)[0][0], np.float32)
    assert grey.mean() < 128 < drawn.mean()  # black background → white paper
    assert np.abs(rendered[..., 0] - rendered[..., 1]).max() > 20  # colour, not grey


def test_dg_and_xd_quick_on_the_standins(standins, tmp_path):
    out = tmp_path / "suite"
    common = ["--quick", "--data-root", str(standins), "--output", str(out), "--methods", "linear", *TINY]
    assert main(["bench", "suite", "--protocol", "dg", *common]) == 0
    assert main(["bench", "suite", "--protocol", "xd", *common]) == 0
    protocols = json.loads((out / "suite.json").read_text())["protocols"]
    dg = protocols["dg"]
    cell = dg["cells"]["imagenet|linear|16|1"]
    assert set(cell["targets"]) == {"imagenet-v2", "imagenet-sketch", "imagenet-a", "imagenet-r"}
    evals = {t: json.loads((out / cell["run"] / "eval" / f"{t}.json").read_text()) for t in cell["targets"]}
    assert evals["imagenet-a"]["masked"] and evals["imagenet-r"]["masked"] and not evals["imagenet-v2"]["masked"]
    assert len(json.loads((out / cell["run"] / "indices.json").read_text())["train"]) == 16 * 10
    chance, majority = dg["tables"]["(chance)"], dg["tables"]["(majority)"]
    assert chance["per_target"]["imagenet-a"]["mean"] == pytest.approx(0.5)  # 200-way
    assert chance["per_target"]["imagenet-v2"]["mean"] == pytest.approx(0.1) and chance["source"] == pytest.approx(0.1)
    assert majority["per_target"]["imagenet-v2"]["mean"] == pytest.approx(10.0)  # 1 of the 10 balanced classes
    assert majority["source"] == pytest.approx(10.0)
    xd = protocols["xd"]
    assert xd["setup"]["datasets"] == ["food101"]
    assert xd["cells"]["imagenet|linear|16|1"]["targets"] == {} and "cross-dataset n/a" in xd["notes"]["linear"]
    assert xd["tables"]["(chance)"]["per_target"]["food101"]["mean"] == pytest.approx(10.0)
    assert xd["tables"]["(majority)"]["per_target"]["food101"] is None  # another dataset's classes
    md = (out / "suite.md").read_text()
    assert "# dg" in md and "# xd" in md and "| (chance) |" in md and "imagenet-sketch" in md
