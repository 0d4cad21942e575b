"""``eval_batch_size: auto`` (the default): 32 images per inference batch on the CPU, 128 on a GPU; an explicit
value wins; bad values are one readable error; the test phase's timing and batch land in metrics.json."""
import json
import subprocess
import sys

import pytest

from lorevit.cli import main
from lorevit.config import Config, ConfigError
from lorevit.training.loaders import AUTO_EVAL_BATCH, eval_batch_size

from .conftest import tiny_config


def test_auto_is_the_default_and_follows_the_device():
    assert Config().eval_batch_size == "auto"
    assert Config(eval_batch_size="AUTO").eval_batch_size == "auto"
    assert eval_batch_size(Config(accelerator="cpu")) == AUTO_EVAL_BATCH["cpu"] == 32
    assert eval_batch_size(Config(accelerator="gpu")) == AUTO_EVAL_BATCH["gpu"] == 128  # the rule, not the machine


@pytest.mark.parametrize("value, expected", [(7, 7), ("64", 64), ("1_000", 1000), (256.0, 256)])
def test_an_explicit_value_wins(value, expected):
    for accelerator in ("cpu", "gpu"):
        cfg = Config(eval_batch_size=value, accelerator=accelerator)
        assert cfg.eval_batch_size == expected and eval_batch_size(cfg) == expected


@pytest.mark.parametrize("value, fragment", [("big", "expected an integer or auto, got 'big'"),
                                             (0, "eval_batch_size: must be >= 1"), (2.5, "integer or auto"),
                                             (True, "integer or auto"), (None, "null is not allowed")])
def test_bad_values_are_config_errors(value, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        Config(eval_batch_size=value)


def test_bad_value_on_the_command_line_is_one_line_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lorevit", "train", "--eval-batch-size", "big", "--output",
                             str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if line.startswith("lorevit: error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr
    assert "eval_batch_size: expected an integer or auto, got 'big'" in errors[0]
    assert not (tmp_path / "run").exists()


def test_loaders_use_the_resolved_batch(tmp_path, color_folder):
    from lorevit.training.datamodule import ClassificationData

    data_config = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear", "crop_pct": 1.0}
    auto = ClassificationData(tiny_config(tmp_path, color_folder), data_config)
    assert auto.test_dataloader().batch_size == 32 and auto.train_dataloader().batch_size == 8
    explicit = ClassificationData(tiny_config(tmp_path, color_folder, eval_batch_size=5), data_config)
    assert explicit.test_dataloader().batch_size == 5
    assert len(explicit.test_dataloader()) == -(-len(explicit.test_indices) // 5)


def test_metrics_record_the_test_phase(tmp_path, color_folder):
    run = tmp_path / "run"
    argv = ["train", "--backbone", "vit_tiny_patch16_224", "--weights", "random", "--img-size", "32",
            "--backbone-kwargs", "{patch_size: 8, depth: 2, embed_dim: 32, num_heads: 2}", "--progress", "false",
            "--accelerator", "cpu", "--dataset", "imagefolder", "--data-root", str(color_folder), "--shots", "4",
            "--epochs", "1", "--batch-size", "4", "--method", "vpt-deep", "--output", str(run),
            "--eval-batch-size", "auto"]
    assert main(argv) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["eval_batch_size_used"] == 32
    assert metrics["test_s"] > 0
    n, s = metrics["num_test"], metrics["test_s"]  # test_s is rounded to 10 ms
    assert n / (s + 0.0051) <= metrics["test_img_per_s"] <= n / max(s - 0.0051, 1e-3)
