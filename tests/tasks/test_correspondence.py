"""Correspondence (TASKS_SPEC §2): PCK by hand, the exact upsampled-cosine trick, x/y order, the SPair reader."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lorevit.tasks import TaskError
from lorevit.tasks.correspondence.matching import (bilinear_taps, cosine_maps_explicit, cosine_maps_trick, identity_prediction,
                                                   match, sample_upsampled, upsampled_norm2)
from lorevit.tasks.correspondence.metrics import correct, pck, pck_table
from lorevit.tasks.correspondence.spair import read_pairs

from .correspondence_fixtures import edit_pair, write_spair

# ---- PCK on hand-made predictions --------------------------------------------------------------------------


def test_pck_all_right_all_wrong_and_exactly_at_the_threshold():
    gt = np.array([[10.0, 20.0], [30.0, 5.0]])
    assert pck([gt.copy()], [gt], [50.0], ["a"])["per_image"] == 100.0
    assert pck([gt + 100], [gt], [50.0], ["a"])["per_image"] == 0.0
    # T = 50, α = 0.1: threshold 5 px; a (3, 4) offset is exactly 5 px away and counts (≤), a hair more does not
    at = gt + [3.0, 4.0]
    assert correct(at, gt, 0.1 * 50).all()
    assert not correct(gt + [3.0, 4.001], gt, 0.1 * 50).any()
    table = pck_table([at], [gt], [50.0], ["a"])
    assert table["0.1"]["per_image"] == 100.0 and table["0.05"]["per_image"] == 0.0 and table["0.15"]["per_image"] == 100.0


def test_per_image_per_point_and_category_mean_differ_as_computed_by_hand():
    # pair 1 (cat): 1 of 1 right; pair 2 (dog): 1 of 3 right; pair 3 (dog): 0 of 2 right; T = 10, threshold 1 px
    gts = [np.zeros((1, 2)), np.zeros((3, 2)), np.zeros((2, 2))]
    preds = [np.zeros((1, 2)), np.array([[0, 0], [5, 0], [0, 5]]), np.full((2, 2), 9.0)]
    out = pck(preds, gts, [10.0] * 3, ["cat", "dog", "dog"])
    assert out["per_image"] == pytest.approx(100 * (1 + 1 / 3 + 0) / 3)  # 44.44: mean of per-pair fractions
    assert out["per_point"] == pytest.approx(100 * 2 / 6)  # 33.33: all correct / all keypoints
    assert out["per_category"]["dog"]["per_image"] == pytest.approx(100 * (1 / 3) / 2)
    assert out["per_category"]["dog"]["per_point"] == pytest.approx(100 * 1 / 5)
    assert out["category_mean"] == pytest.approx((100 + 100 / 6) / 2)  # 58.33
    assert (out["pairs"], out["points"]) == (3, 6)


# ---- the exact trick against the explicit upsampling -------------------------------------------------------


@pytest.mark.parametrize("n_in,n_out", [(4, 37), (16, 500), (5, 5), (7, 3)])
def test_bilinear_taps_reproduce_interpolate(n_in, n_out):
    line = torch.randn(n_in, dtype=torch.float64)
    ref = F.interpolate(line[None, None, None], size=(1, n_out), mode="bilinear", align_corners=False)[0, 0, 0]
    taps = bilinear_taps(n_in, n_out, torch.float64)
    torch.testing.assert_close((1 - taps.lam) * line[taps.lo] + taps.lam * line[taps.hi], ref)


@pytest.mark.parametrize("src_hw,trg_hw,src_size,trg_size", [
    ((16, 16), (16, 16), (150, 226), (188, 250)),  # the 224² protocol, ViT-S/14 grid
    ((5, 7), (6, 4), (37, 90), (61, 29)),  # non-square, non-integer factors
    ((3, 4), (4, 3), (3, 4), (2, 9)),  # equal size and a down-sampled axis
])
def test_trick_equals_explicit_upsampling_on_random_tokens(src_hw, trg_hw, src_size, trg_size):
    gen = torch.Generator().manual_seed(0)
    src, trg = torch.randn(*src_hw, 24, generator=gen), torch.randn(*trg_hw, 24, generator=gen)
    rng = np.random.default_rng(0)
    kps = np.stack([rng.integers(0, src_size[1], 15), rng.integers(0, src_size[0], 15)], axis=1)
    a = cosine_maps_trick(src, src_size, kps, trg, trg_size)
    b = cosine_maps_explicit(src, src_size, kps, trg, trg_size)
    assert a.shape == b.shape == (15, *trg_size)
    assert (a - b).abs().max() <= 1e-5
    # the predictions agree up to exact ties of the explicit map
    pred = match(src, src_size, kps, trg, trg_size, "trick")
    at_pred = b[torch.arange(15), torch.as_tensor(pred[:, 1]), torch.as_tensor(pred[:, 0])]
    assert (b.flatten(1).max(dim=1).values - at_pred).max() <= 1e-5


def test_norm_and_source_vector_are_those_of_the_upsampled_map():
    tokens = torch.randn(5, 6, 8, dtype=torch.float64)
    full = F.interpolate(tokens.permute(2, 0, 1)[None], size=(23, 41), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(upsampled_norm2(tokens, (23, 41)), (full ** 2).sum(0))
    yx = torch.tensor([[0, 0], [22, 40], [11, 7]])
    torch.testing.assert_close(sample_upsampled(tokens, (23, 41), yx), full[:, yx[:, 0], yx[:, 1]].T)


# ---- x/y and W/H order ---------------------------------------------------------------------------------------


def test_xy_and_wh_order_on_a_non_square_asymmetric_warp():
    """One-hot tokens on a 6 × 8 grid; the target is the horizontal mirror (x only) at another non-square size.
    Every keypoint is right with [x, y] and (H, W) as specified; a transposed implementation misses.
    (Interior tokens only: bilinear upsampling is flat over the outer half-token, so border maxima tie.)"""
    h, w = 6, 8
    src = torch.eye(h * w).reshape(h, w, h * w)  # token (i, j) = e_{i·w + j}
    trg = src.flip(1)  # token (i, j) of the target = source token (i, w − 1 − j)
    src_size, trg_size = (60, 120), (90, 100)  # (H, W)
    i, j = np.meshgrid(np.arange(1, h - 1), np.arange(1, w - 1), indexing="ij")
    i, j = i.ravel(), j.ravel()

    def centre(i, j, size):  # [x, y] of a token centre in pixels
        return np.stack([(j + 0.5) * size[1] / w - 0.5, (i + 0.5) * size[0] / h - 0.5], axis=1)

    src_kps = np.floor(centre(i, j, src_size))
    gt = centre(i, w - 1 - j, trg_size)
    T, alpha = 30.0, 0.1  # 3 px: less than half a token in either direction

    def score(pred):
        return pck([pred], [gt], [T], ["x"], alpha)["per_image"]

    assert score(match(src, src_size, src_kps, trg, trg_size)) == 100.0
    assert score(match(src, src_size, src_kps[:, ::-1], trg, trg_size)) < 50  # kps read as [y, x]
    assert score(match(src, src_size[::-1], src_kps, trg, trg_size[::-1])) < 50  # sizes read as (W, H)
    assert score(match(src, src_size, src_kps, trg, trg_size)[:, ::-1]) < 50  # predictions written as [y, x]


def test_identity_baseline_scales_pixel_centres_per_axis():
    kps = np.array([[0, 0], [9, 4], [5, 2]])
    assert (identity_prediction(kps, (5, 10), (5, 10)) == kps).all()
    np.testing.assert_array_equal(identity_prediction(kps, (5, 10), (15, 30)), [[1, 1], [28, 13], [16, 7]])  # 3x + 1
    np.testing.assert_array_equal(identity_prediction(kps, (5, 10), (10, 40)), [[2, 1], [38, 9], [22, 5]])  # half up


# ---- the SPair reader ----------------------------------------------------------------------------------------


def test_reader_on_a_generated_spair_tree(tmp_path):
    spair = write_spair(tmp_path)
    data = read_pairs(tmp_path, "test")  # the parent folder holding SPair-71k/ works as well as the folder itself
    assert data.root == spair and len(data.pairs) == 4 and data.categories == ["cat", "dog"] and not data.skipped
    p = data.pairs[0]
    assert p.name == "000001-c1-c2:cat" and p.category == "cat"
    assert p.src_size == (40, 56) and p.trg_size == (64, 40)  # (H, W) from [W, H, C]
    assert p.src_image == spair / "JPEGImages" / "cat" / "c1.jpg"
    assert p.bbox_side == 63.0  # target box [0, 0, 39, 63]: the longer side, no +1
    assert p.src_kps.shape == p.trg_kps.shape == (3, 2)
    assert [q.name for q in read_pairs(spair, "test", ["dog"]).pairs] == ["000003-d1-d2:dog", "000004-d3-d1:dog"]
    # the scaled identity baseline is exact on this fixture: right only if [W, H] and [x, y] are read in order
    for q in data.pairs:
        pred = identity_prediction(q.src_kps, q.src_size, q.trg_size)
        assert correct(pred, q.trg_kps, 0.75).all()  # rounding only (≤ √0.5 px)


def test_reader_falls_back_to_the_annotation_folder_and_filters(tmp_path):
    spair = write_spair(tmp_path)
    (spair / "Layout" / "large" / "test.txt").unlink()
    assert len(read_pairs(spair, "test").pairs) == 4
    with pytest.raises(TaskError, match="--category bird: not in split"):
        read_pairs(spair, "test", ["bird"])
    with pytest.raises(TaskError, match="not a SPair-71k split"):
        read_pairs(spair, "training")
    with pytest.raises(TaskError, match="no SPair-71k layout"):
        read_pairs(tmp_path / "nowhere")


@pytest.mark.parametrize("change,message", [
    ({"trg_kps": [[1, 1], [2, 2]]}, "src_kps has 3 points but trg_kps has 2"),
    ({"src_kps": [[3, 5], [60, 7], [28, 37]]}, r"src_kps\[1\] = \[60.0, 7.0\] lies outside the 56×40 image"),
    ({"trg_bndbox": [5, 5, 5, 30]}, "has zero size"),
    ({"src_imname": "gone.jpg"}, "gone.jpg is missing"),
    ({"trg_imsize": [64, 40, 3]}, "is 40×64 px but the annotation says"),
])
def test_bad_pairs_are_errors_naming_the_pair_or_skipped(tmp_path, change, message):
    spair = write_spair(tmp_path)
    name = edit_pair(spair, 0, **change)
    with pytest.raises(TaskError, match=message) as err:
        read_pairs(spair)
    assert f"pair {name}" in str(err.value)
    data = read_pairs(spair, skip_bad=True)
    assert len(data.pairs) == 3 and data.skipped[0]["pair"] == name


def test_missing_annotation_file_is_an_error(tmp_path):
    spair = write_spair(tmp_path)
    name = (spair / "Layout" / "large" / "test.txt").read_text().split()[2]
    (spair / "PairAnnotation" / "test" / f"{name}.json").unlink()
    with pytest.raises(TaskError, match=f"pair {name}: annotation file .* is missing"):
        read_pairs(spair)
    assert len(read_pairs(spair, skip_bad=True).pairs) == 3


# ---- stand-ins -----------------------------------------------------------------------------------------------


def test_opencv_matrix_parser_and_homography_from_corners(tmp_path):
    from lorevit.tasks.standins.geometry import apply_homography, homography_from_corners, read_opencv_matrix

    xml = tmp_path / "H.xml"
    xml.write_text('<?xml version="1.0"?>\n<opencv_storage>\n<H13 type_id="opencv-matrix">\n  <rows>3</rows>\n'
                   '  <cols>3</cols>\n  <dt>d</dt>\n  <data>\n\t1.5e+00 0. 2.\n\t0. 1. -3.\n 0. 0. 1. </data></H13>\n'
                   '</opencv_storage>\n')
    M = read_opencv_matrix(xml, "H13")
    np.testing.assert_array_equal(M, [[1.5, 0, 2], [0, 1, -3], [0, 0, 1]])
    np.testing.assert_allclose(apply_homography(M, np.array([[2.0, 4.0]])), [[5.0, 1.0]])
    src = np.array([[0, 0], [9, 0], [9, 5], [0, 5]], dtype=float)
    dst = np.array([[1, 2], [8, 0], [10, 7], [0, 6]], dtype=float)
    np.testing.assert_allclose(apply_homography(homography_from_corners(src, dst), src), dst, atol=1e-9)


def test_standins_are_exact_and_idempotent(tmp_path):
    pytest.importorskip("skimage")
    from lorevit.tasks.standins import correspondence as standins
    from lorevit.tasks.standins.photos import OPENCV_DATA

    if not (OPENCV_DATA / "graf1.png").is_file():
        pytest.skip("opencv-doc is not installed")
    root = standins.build(tmp_path, say=lambda s: None)[0]
    manifest = json.loads((tmp_path / standins.NAME / "standins.json").read_text())
    assert set(manifest["categories"]) == {"graffiti", "motorcycle", "aloe", "homography", "flip", "rotation"}
    check = manifest["checks"]["aloe_disparity_scale"]
    assert check["1"] < min(check["0.5"], check["2"], check["0"])  # aloeGT.png is full-resolution disparity
    data = read_pairs(root)
    assert len(data.pairs) == manifest["pairs"] and not data.skipped
    stamp = (tmp_path / standins.NAME / "standins.json").stat().st_mtime_ns
    assert standins.build(tmp_path, say=lambda s: None) == [root]
    assert (tmp_path / standins.NAME / "standins.json").stat().st_mtime_ns == stamp  # not rebuilt
    flips = [p for p in data.pairs if p.category == "flip"]
    for p in flips:  # x → W − 1 − x, y unchanged
        np.testing.assert_allclose(p.trg_kps, np.stack([p.src_size[1] - 1 - p.src_kps[:, 0], p.src_kps[:, 1]], 1))
    rotated = [p for p in data.pairs if p.trg_image.stem.endswith("rot90")]
    assert rotated and all(p.trg_size == p.src_size[::-1] for p in rotated)  # W and H swap exactly
