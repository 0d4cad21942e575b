"""Figures: Fig. 3 attention grids from adapters (files and CLI) and training curves, by pixel size."""
import pytest
import torch
from PIL import Image

import lorevit
from lorevit.adapters.format import save_adapter
from lorevit.cli import main
from lorevit.tools.visualize import attention_maps, CELL_INCHES, visualize
from lorevit.training.figures import CURVES_INCHES
from lorevit.training.figures import plot_training_curves
from lorevit.utils.plotting import DPI

from .conftest import CLASSES, TINY_SIZE, tiny_config

CELL = int(CELL_INCHES * DPI)


def _adapter(tmp_path, backbone, color_folder, method="lore"):
    from lorevit.data import build_dataset

    cfg = tiny_config(tmp_path / method, color_folder, method=method)
    classnames = build_dataset("imagefolder", "train", root=color_folder).classnames
    model = lorevit.create_model(method, classnames, backbone=backbone, knowledge=cfg.knowledge)
    model.train()(torch.randn(4, 3, TINY_SIZE, TINY_SIZE))  # BN statistics, as after training
    save_adapter(model.eval(), cfg, cfg.output)
    return cfg.output


def _size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_attention_maps_shapes_and_range(tiny_backbone):
    model = lorevit.create_model("lore", CLASSES, backbone=tiny_backbone, knowledge="st:minilm")
    maps = attention_maps(model, torch.randn(2, 3, TINY_SIZE, TINY_SIZE), torch.tensor([0, 2]))
    grid = (TINY_SIZE // 8, TINY_SIZE // 8)
    for key in ("blackbox", "kla", "model"):
        assert maps[key].shape == (2, *grid)
        assert maps[key].min() >= 0 and maps[key].max() <= 1 + 1e-6
    assert maps["kla_classes"].tolist() == [0, 2]
    # the Black Box map ignores the prompts; LORE's does not
    assert not torch.allclose(maps["blackbox"], maps["model"])


def test_visualize_dataset_images_lore(tmp_path, tiny_backbone, color_folder):
    adapter = _adapter(tmp_path, tiny_backbone, color_folder)
    info = visualize(adapter, tmp_path / "fig3.png", count=3)
    assert info["rows"] == 3 and info["columns"] == 4 and len(info["true"]) == 3
    assert _size(tmp_path / "fig3.png") == (4 * CELL, 3 * CELL)


def test_visualize_cli_image_files_and_non_lore(tmp_path, tiny_backbone, color_folder, capsys):
    files = sorted((color_folder / "test").rglob("*.png"))[:2]
    lore = _adapter(tmp_path, tiny_backbone, color_folder)
    out = tmp_path / "files.png"
    assert main(["visualize", "--adapter", lore, *map(str, files), "--output", str(out)]) == 0
    assert _size(out) == (4 * CELL, 2 * CELL)
    vpt = _adapter(tmp_path, tiny_backbone, color_folder, method="vpt-deep")
    out = tmp_path / "vpt.png"
    assert main(["visualize", "--adapter", vpt, "--count", "1", "--output", str(out)]) == 0
    assert _size(out) == (3 * CELL, CELL)  # no KLA column without knowledge
    assert main(["visualize", "--adapter", vpt, str(tmp_path / "missing.png")]) == 2
    assert "cannot read image" in capsys.readouterr().err


@pytest.mark.parametrize("with_val", [True, False])
def test_training_curves(tmp_path, with_val):
    history = [{"epoch": e, "train_loss": 2.0 / e, "train_task": 1.8 / e, "train_kp": -0.1 * e, "train_acc": 20.0 * e,
                **({"val_top1": 15.0 * e} if with_val else {})} for e in range(1, 5)]
    metrics = {"method": "lore", "dataset": "fashion-mnist", "shots": 16, "seed": 0, "test_top1": 61.5,
               "history": history}
    path = plot_training_curves(metrics, tmp_path / "curves.png")
    assert _size(path) == (int(CURVES_INCHES[0] * DPI), int(CURVES_INCHES[1] * DPI))
    assert metrics["history"] == history  # pure: the dict is not changed


def test_training_curves_without_history(tmp_path):
    path = plot_training_curves({"method": "zero-shot", "test_top1": 40.0, "history": []}, tmp_path / "c.png")
    assert _size(path) == (int(CURVES_INCHES[0] * DPI), int(CURVES_INCHES[1] * DPI))
