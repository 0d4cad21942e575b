"""Integration: a tiny random ViT trains on generated images through the real run (Lightning)."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors import safe_open

from lorevit.factory import load_adapter
from lorevit.errors import ConfigError
from lorevit.errors import RunError
from lorevit.training.run import train

from .conftest import tiny_config


@pytest.mark.parametrize("method", ["lore", "vpt-deep", "linear"])
def test_loss_falls_and_run_files_are_written(tmp_path, color_folder, method):
    cfg = tiny_config(tmp_path / "run", color_folder, method=method, epochs=6, lr=0.05, val_every=1)
    metrics = train(cfg)
    losses = [row["train_loss"] for row in metrics["history"]]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert all("val_top1" in row for row in metrics["history"])
    out = tmp_path / "run"
    for name in ("config.yaml", "metrics.json", "indices.json", "adapter.safetensors", "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name
    assert (out / "logs" / "metrics.csv").is_file()
    saved = json.loads((out / "metrics.json").read_text())
    assert 0 <= saved["test_top1"] <= 100 and saved["num_test"] == 18 and saved["num_train"] == 24
    assert yaml.safe_load((out / "config.yaml").read_text())["method"] == method
    assert len(json.loads((out / "indices.json").read_text())["train"]) == 24
    with safe_open(str(out / "adapter.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["classnames"]) == sorted(["red square", "green square", "blue square"])
        assert not any(k.startswith("backbone") for k in f.keys())
    if method == "lore":
        assert "train_kp" in metrics["history"][0] and metrics["negatives"] == "own-prediction"


def test_adapter_reproduces_the_runs_test_accuracy(tmp_path, color_folder):
    metrics = train(tiny_config(tmp_path / "run", color_folder, epochs=2))
    model, cfg = load_adapter(tmp_path / "run")
    from lorevit.training.datamodule import ClassificationData
    from lorevit.training.passes import predict_loader

    data = ClassificationData(cfg, model.backbone.data_config, train_indices=[])
    preds, indices = predict_loader(model, data.test_dataloader())
    labels = torch.tensor([data.test_set.targets[i] for i in indices])
    assert (preds == labels).float().mean().item() * 100 == pytest.approx(metrics["test_top1"], abs=1e-4)


def test_checkpoints_leave_the_vit_out_and_resume_continues(tmp_path, color_folder):
    train(tiny_config(tmp_path / "run", color_folder, epochs=2))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    # written at the end of the 2nd epoch (Lightning's 0-based epoch 1, 2 × 3 steps of 8 images done)
    assert (ckpt["epoch"], ckpt["global_step"]) == (1, 6)
    assert not any(k.startswith("model.backbone") for k in ckpt["state_dict"])
    resumed = train(tiny_config(tmp_path / "run", color_folder, epochs=4, resume=True))
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3, 4]
    lrs = [row["lr"] for row in resumed["history"]]
    assert lrs[2] >= lrs[3] and lrs[3] > 0  # the longer run continues on its own cosine; it never climbs back


def test_cosine_factor_closed_form():
    from lorevit.training.module import cosine_factor

    assert cosine_factor(0, 10, 0.1, 0.001) == pytest.approx(1.0)
    assert cosine_factor(5, 10, 0.1, 0.001) == pytest.approx((0.001 + 0.099 * 0.5) / 0.1)
    assert cosine_factor(10, 10, 0.1, 0.001) == cosine_factor(25, 10, 0.1, 0.001) == pytest.approx(0.01)


def test_resume_refuses_a_different_config_and_a_foreign_checkpoint(tmp_path, color_folder):
    train(tiny_config(tmp_path / "run", color_folder, epochs=1))
    snapshot = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    with pytest.raises(RunError, match=r"differs from the run's.*shots: 8 → 4; lr: 0\.003 → 0\.01"):
        train(tiny_config(tmp_path / "run", color_folder, epochs=2, resume=True, lr=0.01, shots=4))
    with pytest.raises(RunError, match="epochs 0 is fewer"):
        train(tiny_config(tmp_path / "run", color_folder, epochs=0, resume=True))
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == snapshot
    ckpt_path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    dropped = next(iter(ckpt["state_dict"]))
    del ckpt["state_dict"][dropped]
    torch.save(ckpt, ckpt_path)
    with pytest.raises(RunError, match=f"missing \\['{dropped}'\\]"):
        train(tiny_config(tmp_path / "run", color_folder, epochs=2, resume=True, progress=True))


def test_overwrite_removes_the_old_runs_checkpoints_and_logs(tmp_path, color_folder):
    train(tiny_config(tmp_path / "run", color_folder, epochs=1))
    (tmp_path / "run" / "logs" / "stale.txt").write_text("old")
    train(tiny_config(tmp_path / "run", color_folder, epochs=1, overwrite=True))
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["last.ckpt"]
    assert not (tmp_path / "run" / "logs" / "stale.txt").exists()


def test_finished_run_is_not_overwritten_by_accident(tmp_path, color_folder):
    train(tiny_config(tmp_path / "run", color_folder, epochs=1))
    before = (tmp_path / "run" / "adapter.safetensors").read_bytes()
    with pytest.raises(RunError, match="already holds a finished run"):
        train(tiny_config(tmp_path / "run", color_folder, epochs=1))
    with pytest.raises(RunError, match="no checkpoint"):
        train(tiny_config(tmp_path / "other", color_folder, resume=True))
    assert (tmp_path / "run" / "adapter.safetensors").read_bytes() == before


def test_bad_config_fails_before_writing(tmp_path, color_folder):
    with pytest.raises(ConfigError, match="method"):
        train(tiny_config(tmp_path / "run", color_folder, method="no-such-method"))
    with pytest.raises(ConfigError, match="shots"):
        train(tiny_config(tmp_path / "run", color_folder, shots=0))
    assert not (tmp_path / "run").exists()


def test_easy_to_hard_runs_both_stages(tmp_path, color_folder):
    cfg = tiny_config(tmp_path / "e2h", color_folder, protocol="easy-to-hard", stage_shots=3, epochs=2, hard_epochs=2,
                      selection_pool=None)
    metrics = train(cfg)
    easy, hard = metrics["stages"]["easy"], metrics["stages"]["hard"]
    assert len(easy["indices"]) == len(hard["indices"]) == 9
    assert metrics["improvement"] == pytest.approx(hard["test_top1"] - easy["test_top1"])
    assert len(metrics["history"]) == 4


def test_ddp_two_cpu_processes(tmp_path, color_folder):
    """Lightning's DDP with the gloo backend: two CPU processes, a few steps, one set of files."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "lorevit", "train", "--backbone", "vit_tiny_patch16_224", "--weights", "random",
           "--backbone_kwargs", "{patch_size: 8, depth: 2, embed_dim: 32, num_heads: 2}", "--img_size", "32",
           "--dataset", "imagefolder", "--data_root", str(color_folder), "--shots", "8", "--epochs", "2",
           "--batch_size", "4", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
           "--progress", "false", "--output", str(out), "--eval-batch-size", "4"]
    # 19 test images (odd), the first of them mislabelled (a red square filed as blue): torch's
    # DistributedSampler would pad the shards to 20 with that first image and count its error twice.
    shutil.copy(color_folder / "test" / "red_square" / "000.png", color_folder / "test" / "blue_square" / "00.png")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test top-1" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2
    assert metrics["world_size"] == 2
    # Test metrics under DDP are exact: 19 images split 10 + 9 over two ranks, none counted twice.
    from lorevit.training.datamodule import ClassificationData
    from lorevit.training.passes import predict_loader

    model, cfg = load_adapter(out)
    data = ClassificationData(cfg.replace(devices=1, strategy="auto"), model.backbone.data_config)
    preds, index = predict_loader(model, data.test_dataloader())
    labels = torch.tensor([data.test_set.targets[i] for i in index.tolist()])
    assert len(index) == 19 and preds[0] != labels[0]
    assert metrics["test_top1"] == pytest.approx((preds == labels).double().mean().item() * 100, abs=1e-9)


def test_bf16_mixed_precision_trains_and_saves_float32(tmp_path, color_folder):
    """--precision bf16-mixed on the CPU: autocast runs the step in bfloat16, the loss stays finite and falls,
    and the adapter holds float32 weights (Lightning keeps the master weights in float32)."""
    cfg = tiny_config(tmp_path / "run", color_folder, method="lore", epochs=6, lr=0.05, precision="bf16-mixed")
    metrics = train(cfg)
    losses = [row["train_loss"] for row in metrics["history"]]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    with safe_open(str(tmp_path / "run" / "adapter.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert {d for d in dtypes if d.is_floating_point} == {torch.float32}  # (BatchNorm's step counter is int64)


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, color_folder):
    """Kill a training process (SIGKILL) in the middle of an epoch, resume it: the same loss history and the same
    final test metrics as a run that was never interrupted (every epoch's randomness is a function of seed and
    epoch; model, optimizer and schedule come back from the last epoch's checkpoint)."""
    import signal
    import time as clock

    def argv(out, *extra):
        return [sys.executable, "-m", "lorevit", "train", "--backbone", "vit_tiny_patch16_224", "--weights", "random",
                "--backbone_kwargs", "{patch_size: 8, depth: 2, embed_dim: 32, num_heads: 2}", "--img_size", "32",
                "--dataset", "imagefolder", "--data_root", str(color_folder), "--shots", "12", "--epochs", "8",
                "--batch_size", "1", "--accelerator", "cpu", "--progress", "false", "--knowledge", "st:minilm",
                "--output", str(out), *extra]

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    killed = tmp_path / "killed"
    process = subprocess.Popen(argv(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, seen, deadline = killed / "checkpoints" / "last.ckpt", set(), clock.time() + 180
    while len(seen) < 2 and process.poll() is None and clock.time() < deadline:  # two epochs done
        if ckpt.is_file():
            seen.add(ckpt.stat().st_mtime_ns)
        clock.sleep(0.005)
    clock.sleep(0.05)  # inside the third epoch (36 steps of one image each)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "metrics.json").exists()
    resumed = subprocess.run(argv(killed, "--resume"), env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = subprocess.run(argv(tmp_path / "straight"), env=env, capture_output=True, text=True, timeout=240)
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = json.loads((killed / "metrics.json").read_text())
    b = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert [row["epoch"] for row in a["history"]] == list(range(1, 9))
    for key in ("train_loss", "train_acc", "lr"):
        assert [row[key] for row in a["history"]] == pytest.approx([row[key] for row in b["history"]], abs=1e-6), key
    assert (a["test_top1"], a["test_top5"]) == (b["test_top1"], b["test_top5"])


# --- config key `logger` (issue 12 §5): Lightning's own loggers, each only when its package is installed ---

def _installed(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_logger_csv_only_writes_no_tensorboard_logs(tmp_path, color_folder):
    out = tmp_path / "run"
    train(tiny_config(out, color_folder, epochs=1, shots=2, logger="csv"))
    assert (out / "logs" / "metrics.csv").is_file()
    assert not (out / "logs" / "tensorboard").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["logger"] == "csv"


@pytest.mark.skipif(not _installed("tensorboard"), reason="tensorboard is not installed")
def test_logger_csv_and_tensorboard(tmp_path, color_folder):
    out = tmp_path / "run"
    train(tiny_config(out, color_folder, epochs=1, shots=2, logger=" CSV , tensorboard"))
    assert (out / "logs" / "metrics.csv").is_file()
    assert list((out / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_logger_names_are_checked_and_canonical():
    from lorevit.config import Config, logger_names

    assert Config(logger="tensorboard, csv,csv").logger == "tensorboard,csv"
    assert logger_names(Config())[0] == "csv"  # auto: csv, + tensorboard when installed
    for bad in ("csv,neptune", "", "auto,csv"):
        with pytest.raises(ConfigError) as err:
            Config(logger=bad)
        assert "csv, tensorboard, wandb, mlflow" in str(err.value) or "auto stands alone" in str(err.value)


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_logger_whose_package_is_missing_fails_before_any_file(tmp_path, color_folder, name):
    if _installed(name):
        pytest.skip(f"{name} is installed here")
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=f"pip install {name}"):
        train(tiny_config(out, color_folder, epochs=1, logger=f"csv,{name}"))
    assert not out.exists()


@pytest.mark.parametrize("name,path", [("wandb", "wandb"), ("mlflow", "mlruns")])
def test_logger_wandb_and_mlflow_write_local_files(tmp_path, color_folder, monkeypatch, name, path):
    if not _installed(name):
        pytest.skip(f"{name} is not installed")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    train(tiny_config(out, color_folder, epochs=1, shots=2, logger=f"csv,{name}"))
    assert (out / "logs" / path).is_dir()
