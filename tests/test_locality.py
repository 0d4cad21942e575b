"""Locality (issue 23): attention in the object mask and the pointing game, by hand and through the CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import lorevit
from lorevit.adapters.format import save_adapter
from lorevit.cli import main
from lorevit.data.transforms import image_transforms
from lorevit.tools.locality import (LocalityError, bootstrap_interval, chance_levels, mask_share, patch_fractions,
                                    pointing_hit, transform_mask)

from .conftest import CLASSES, TINY_SIZE, tiny_config

# a 4×4 patch grid (8 px patches, 32 px image) with attention 1..16 in row-major order
ATTENTION = torch.arange(1.0, 17.0)[None]  # 1, 16
GRID, PATCH = (4, 4), (8, 8)


def test_share_and_pointing_on_a_patch_mask_by_hand():
    mask = torch.zeros(4, 4)
    mask[0, :] = 1  # top row: patches 1..4 → attention 1+2+3+4 = 10 of 136
    f = patch_fractions(mask, GRID, PATCH)[None]
    assert mask_share(ATTENTION, f).item() == pytest.approx(10 / 136)
    assert pointing_hit(ATTENTION, f).item() == 0.0  # the argmax (16) is the bottom-right patch
    mask[3, 3] = 1
    f = patch_fractions(mask, GRID, PATCH)[None]
    assert mask_share(ATTENTION, f).item() == pytest.approx(26 / 136)
    assert pointing_hit(ATTENTION, f).item() == 1.0


def test_pixel_mask_is_averaged_per_patch_by_hand():
    """A 32×32 pixel mask covering a 12×12 square at the top left: patch (0,0) all in, (0,1) and (1,0) half,
    (1,1) a quarter; share = (1·1 + 2·½ + 5·½ + 6·¼) / 136."""
    mask = np.zeros((32, 32), dtype=bool)
    mask[:12, :12] = True
    f = patch_fractions(transform_mask(mask, 32), GRID, PATCH)
    expected = torch.zeros(16)
    expected[[0, 1, 4, 5]] = torch.tensor([1.0, 0.5, 0.5, 0.25])
    torch.testing.assert_close(f, expected)
    assert mask_share(ATTENTION, f[None]).item() == pytest.approx((1 + 1 + 2.5 + 1.5) / 136)
    # pointing: the argmax patch of attention peaked at patch 1 (half object) counts, at patch 5 (a quarter) not
    peak = torch.zeros(1, 16)
    peak[0, 1] = 1
    assert pointing_hit(peak, f[None]).item() == 1.0
    peak = torch.zeros(1, 16)
    peak[0, 5] = 1
    assert pointing_hit(peak, f[None]).item() == 0.0


def test_pixels_beyond_the_patch_grid_are_not_seen():
    """A 35×35 mask (the ViT floors to 32×32): the last 3 rows and columns are outside every patch."""
    mask = torch.zeros(35, 35)
    mask[32:, :] = 1
    mask[0, 0] = 1
    f = patch_fractions(mask, GRID, PATCH)
    assert f[0].item() == pytest.approx(1 / 64) and f[1:].sum() == 0


def test_chance_level_is_the_mask_area_and_a_uniform_map_scores_it():
    rng = np.random.default_rng(0)
    mask = torch.from_numpy(rng.random((32, 32)) < 0.3).float()
    f = patch_fractions(mask, GRID, PATCH)[None]
    share, pointing = chance_levels(f)
    assert share.item() == pytest.approx(mask.mean().item())
    assert pointing.item() == pytest.approx((f >= 0.5).float().mean().item())
    assert mask_share(torch.ones(1, 16), f).item() == pytest.approx(mask.mean().item())


def test_transform_mask_follows_the_image_transform():
    """The mask goes through the eval transform's resize and centre crop: it lands where the object's pixels do."""
    image = np.zeros((48, 64, 3), dtype=np.uint8)  # H=48, W=64: resized to 32×42, cropped to 32×32
    mask = np.zeros((48, 64), dtype=bool)
    mask[6:30, 20:40] = True
    image[mask] = 255
    config = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
    seen = image_transforms(config, 32, train=False)(Image.fromarray(image))[0]  # 32, 32 in [0, 1]
    moved = transform_mask(mask, 32)
    assert moved.shape == (32, 32)
    assert ((moved > 0.5) == (seen > 0.5)).float().mean() > 0.97


def test_bootstrap_interval_is_reproducible_for_a_seed():
    values = np.random.default_rng(1).random(200)
    a, b = bootstrap_interval(values, seed=3), bootstrap_interval(values, seed=3)
    assert a == b
    assert a.low < a.mean < a.high and a.mean == pytest.approx(values.mean())
    assert bootstrap_interval(values, seed=4) != a
    constant = bootstrap_interval(np.full(50, 0.25))
    assert (constant.low, constant.mean, constant.high) == (0.25, 0.25, 0.25)
    # a 95 % interval of a mean of 200 U(0,1) values: about ±1.96·0.289/√200 = ±0.040
    assert a.high - a.low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(200), rel=0.15)


@pytest.mark.parametrize("shape", [(4, 5), (20, 20), (3, 32, 32)])
def test_mask_of_the_wrong_size_is_an_error(shape):
    with pytest.raises(LocalityError, match="mask"):
        patch_fractions(torch.ones(shape), GRID, PATCH)


def test_empty_mask_is_an_error():
    with pytest.raises(LocalityError, match="empty"):
        patch_fractions(torch.zeros(32, 32), GRID, PATCH)


# ----------------------------------------------------------------------------- through the CLI


def _adapter(tmp_path, backbone, folder, method):
    from lorevit.data import build_dataset

    cfg = tiny_config(tmp_path / method, folder, method=method)
    classnames = build_dataset("imagefolder", "train", root=folder).classnames
    model = lorevit.create_model(method, classnames, backbone=backbone, knowledge=cfg.knowledge)
    model.train()(torch.randn(4, 3, TINY_SIZE, TINY_SIZE))  # BN statistics, as after training
    with torch.no_grad():  # a trained-looking adapter: non-zero changes everywhere
        for p in model.trainable_parameters():
            p.add_(0.3 * torch.randn_like(p))
    save_adapter(model.eval(), cfg, cfg.output)
    return str(cfg.output)


def _write_masks(folder, area=(8, 24, 4, 20), size=TINY_SIZE):
    """masks/test/<class>/<stem>.png beside every test image: a rectangle (top, bottom, left, right)."""
    top, bottom, left, right = area
    for image in sorted((folder / "test").rglob("*.png")):
        target = folder / "masks" / image.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[top:bottom, left:right] = 255
        Image.fromarray(mask).save(target)


def test_bench_locality_end_to_end(tmp_path, tiny_backbone, color_folder, capsys):
    from lorevit.backbone import create_backbone

    from .conftest import TINY_KWARGS, TINY_VIT

    _write_masks(color_folder)
    lore = _adapter(tmp_path, tiny_backbone, color_folder, "lore")
    lora = _adapter(tmp_path, create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS), color_folder, "lora")
    out = tmp_path / "loc"
    code = main(["bench", "locality", "--adapter", lore, "--adapter", lora, "--limit", "9", "--resamples", "300",
                 "--batch-size", "4", "--output", str(out)])
    assert code == 0
    report = json.loads((out / "locality.json").read_text())
    assert (out / "locality.md").is_file() and (out / "locality.png").stat().st_size > 0
    assert report["images"] == 9
    assert set(report["rows"]) == {"B-B", "lore", "lore KLA (true class)", "lore KLA (predicted class)", "lora"}
    # 16×16 px of a 32×32 image: the chance level is the area, 1/4, for every image
    assert report["chance"]["share"]["mean"] == pytest.approx(0.25)
    # rows 8-24 (patch rows 1, 2), columns 4-20 (half of column 0, all of 1, half of 2): 6 patches ≥ ½ object
    assert report["chance"]["pointing"]["mean"] == pytest.approx(6 / 16)
    per_image = report["per_image"]
    for row, entry in report["rows"].items():
        for key in ("share", "pointing"):
            assert entry[key]["low"] <= entry[key]["mean"] <= entry[key]["high"]
            assert entry[key]["mean"] == pytest.approx(np.mean(per_image[row][key]))
        if row != "B-B":
            paired = np.subtract(per_image[row]["share"], per_image["B-B"]["share"]).mean()
            assert entry["minus_bb"]["share"]["mean"] == pytest.approx(paired)
    assert 0 <= report["rows"]["lore"]["accuracy"] <= 1
    # the adapters' maps differ from the Black Box's: LORE's prompts, LoRA's deltas in qkv
    assert per_image["lore"]["share"] != per_image["B-B"]["share"]
    assert per_image["lora"]["share"] != per_image["B-B"]["share"]
    assert "| B-B |" in capsys.readouterr().out

    # the B-B row is the frozen ViT whatever the adapter changed inside its own copy (LoRA alone: a clean one)
    alone = tmp_path / "alone"
    assert main(["bench", "locality", "--adapter", lora, "--limit", "9", "--resamples", "300", "--output",
                 str(alone)]) == 0
    again = json.loads((alone / "locality.json").read_text())["per_image"]
    np.testing.assert_allclose(again["B-B"]["share"], per_image["B-B"]["share"], rtol=1e-5)
    np.testing.assert_allclose(again["lora"]["share"], per_image["lora"]["share"], rtol=1e-5)


def _one_error_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lorevit: error:") and needle in err[0], err


def test_bench_locality_bad_masks(tmp_path, tiny_backbone, color_folder, capsys):
    lore = _adapter(tmp_path, tiny_backbone, color_folder, "linear")
    out = tmp_path / "loc"
    args = ["bench", "locality", "--adapter", lore, "--limit", "3", "--output", str(out)]
    assert main(args) == 2
    _one_error_line(capsys, "no object masks")
    _write_masks(color_folder, size=TINY_SIZE + 8)  # masks of another size than their images
    assert main(args) == 2
    _one_error_line(capsys, "a mask has its image's own size")
    _write_masks(color_folder, area=(0, 0, 0, 0))
    assert main(args) == 2
    _one_error_line(capsys, "empty")
    assert not out.exists()  # nothing half-written


def test_bench_locality_refuses_a_method_without_cls_attention(tmp_path, tiny_backbone, color_folder, capsys):
    from lorevit.methods import NoOptions, register_method, unregister_method
    from lorevit.methods.linear import LinearProbe

    class NoCls(LinearProbe):
        cls_attention = False

    register_method("test-no-cls", NoCls, NoOptions)
    try:
        _write_masks(color_folder)
        adapter = _adapter(tmp_path, tiny_backbone, color_folder, "test-no-cls")
        assert main(["bench", "locality", "--adapter", adapter, "--output", str(tmp_path / "loc")]) == 2
        _one_error_line(capsys, "no last-block CLS attention")
    finally:
        unregister_method("test-no-cls")


def test_visualize_puts_the_numbers_on_each_row(tmp_path, tiny_backbone, color_folder, capsys):
    """`lorevit visualize` scores each row's maps against its mask exactly as the bench does."""
    from lorevit.tools.visualize import visualize

    _write_masks(color_folder)
    adapter = _adapter(tmp_path, tiny_backbone, color_folder, "lore")
    info = visualize(adapter, tmp_path / "fig3.png", count=18)  # all 18 test images, as --limit 0 below
    assert set(info["locality"]) == {"blackbox", "model", "kla"}
    out = tmp_path / "loc"
    assert main(["bench", "locality", "--adapter", adapter, "--limit", "0", "--output", str(out)]) == 0
    per_image = json.loads((out / "locality.json").read_text())["per_image"]
    for key, row in (("blackbox", "B-B"), ("model", "lore"), ("kla", "lore KLA (true class)")):
        got = [s["share"] for s in info["locality"][key]]
        np.testing.assert_allclose(got, per_image[row]["share"], rtol=1e-5)
        assert [s["pointing"] for s in info["locality"][key]] == [bool(v) for v in per_image[row]["pointing"]]
    capsys.readouterr()
    assert main(["visualize", "--adapter", adapter, "--count", "2", "--output", str(tmp_path / "v.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  row 1: blackbox in mask ") and lines[2].startswith("  row 2: ")


def test_bench_locality_on_davis_frames(tmp_path, tiny_backbone, color_folder):
    """DAVIS-layout frames: every annotated object is the mask, void (255) is background, empty frames skipped."""
    from lorevit.tasks.video.davis import write_mask

    davis = tmp_path / "DAVIS"
    rng = np.random.default_rng(0)
    for seq in ("a", "b"):
        (davis / "JPEGImages" / "480p" / seq).mkdir(parents=True)
        (davis / "Annotations" / "480p" / seq).mkdir(parents=True)
        for t in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
                davis / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg")
            ids = np.zeros((40, 48), dtype=np.uint8)
            if not (seq == "b" and t == 2):  # the last frame of b: every object out of view
                ids[0:20, 8:28] = 1
                ids[20:40, 28:48] = 2
                ids[30:40, 0:8] = 255  # void
            write_mask(davis / "Annotations" / "480p" / seq / f"{t:05d}.png", ids)
    (davis / "ImageSets" / "2017").mkdir(parents=True)
    (davis / "ImageSets" / "2017" / "val.txt").write_text("a\nb\n")
    adapter = _adapter(tmp_path, tiny_backbone, color_folder, "lore")
    out = tmp_path / "loc"
    assert main(["bench", "locality", "--adapter", adapter, "--dataset", "davis", "--data-root", str(davis),
                 "--output", str(out)]) == 0
    report = json.loads((out / "locality.json").read_text())
    assert report["images"] == 5 and report["source"]["skipped_empty_frames"] == 1
    assert "lore KLA (true class)" not in report["rows"] and "lore KLA (predicted class)" in report["rows"]
    assert "accuracy" not in report["rows"]["lore"]
    # 40×48 → resized to 32×38, centre-cropped to 32×32 (columns 3-35 of 38): both objects, 800 of 1920 px
    expected = transform_mask(np.isin(np.asarray(Image.open(davis / "Annotations/480p/a/00000.png")), (1, 2)), 32)
    assert report["chance"]["share"]["mean"] == pytest.approx(expected.mean().item(), abs=1e-6)
