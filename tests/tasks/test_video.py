"""Video segmentation: palette PNGs, the DAVIS reader, DINO's propagation with a known answer, the scorer's
and the runner's CLI end to end, bad inputs, the stand-in builder and the bench plug-in (TASKS_SPEC §3, §4)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lorevit.cli import main
from lorevit.tasks.errors import TaskError
from lorevit.tasks.video.davis import VOC_PALETTE, Davis, read_mask, write_mask
from lorevit.tasks.video.propagate import (PropagationConfig, Propagator, first_labels, propagate_sequence, to_mask,
                                           working_size)

from ..conftest import TINY_KWARGS, TINY_VIT
from .video_fixtures import H, PATCH, W, PatchPixels, moving_squares, patch_pixels, write_davis


@pytest.fixture
def tiny_davis(tmp_path):
    return write_davis(tmp_path, {"squares-a": moving_squares(6, 0), "squares-b": moving_squares(5, 1, objects=1)})


# -- files -------------------------------------------------------------------------------------------

def test_palette_png_round_trip(tmp_path):
    ids = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10) % 7
    ids[0, 0] = 255
    write_mask(tmp_path / "m.png", ids)
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "P"
        assert image.getpalette()[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
    assert np.array_equal(read_mask(tmp_path / "m.png"), ids)
    assert VOC_PALETTE[3 * 255: 3 * 256] == [224, 224, 192]  # VOC's colour of 255 (void)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(TaskError, match="rgb.png.*mode-RGB"):
        read_mask(tmp_path / "rgb.png")


def test_reader(tiny_davis, tmp_path):
    davis = Davis(tiny_davis, need_frames=True)
    assert davis.names("val") == ["squares-a", "squares-b"]
    (seq,) = davis.sequences("val", ["squares-b"])
    assert seq.frame_ids == [f"{i:05d}" for i in range(5)] and seq.frames[0].suffix == ".jpg"
    gt = davis.ground_truth(seq)
    assert gt.shape == (5, H, W) and gt.dtype == np.uint8 and gt.max() == 1
    assert len(davis.sequences("val", max_frames=3)[0]) == 3
    with pytest.raises(TaskError, match="nope.*not in ImageSets"):
        davis.sequences("val", ["nope"])
    with pytest.raises(TaskError, match="train.txt"):
        davis.names("train")
    with pytest.raises(TaskError, match="Annotations"):
        Davis(tmp_path / "DAVIS" / "JPEGImages")


# -- propagation -------------------------------------------------------------------------------------

def test_working_size_is_dinos():
    assert working_size(854, 480) == (832, 480)
    assert working_size(910, 480) == (896, 480)
    assert working_size(1152, 480) == (1152, 480)
    assert working_size(480, 854) == (480, 832)


def test_first_labels_and_upsampling_are_patch_aligned():
    mask = np.zeros((H, W), np.uint8)
    mask[:, 16:40] = 2
    mask[:, 80:96] = 1
    onehot = first_labels(mask, (H // PATCH, W // PATCH))
    assert onehot.shape == (3, H // PATCH, W // PATCH) and torch.all(onehot.sum(0) == 1)
    assert np.array_equal(to_mask(onehot, PATCH, (W, H)), mask)  # vertical stripes: no rounded corners


def features_of(frames):
    mean, std = torch.tensor(PatchPixels.mean).view(3, 1, 1), torch.tensor(PatchPixels.std).view(3, 1, 1)
    images = torch.stack([(torch.from_numpy(f).permute(2, 0, 1).float() / 255 - mean) / std for f in frames])
    return patch_pixels(images)


def test_moving_object_is_tracked_exactly():
    """A textured block moving one patch a frame over a flat background: the mask follows it exactly."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (H, 24, 3), dtype=np.uint8)
    frames, masks = [], []
    for t in range(12):
        frame = np.full((H, W, 3), 120, np.uint8)
        mask = np.zeros((H, W), np.uint8)
        x = 8 + PATCH * t
        frame[:, x: x + 24] = texture
        mask[:, x: x + 24] = 1
        frames.append(frame)
        masks.append(mask)
    feats = features_of(frames)
    propagator = Propagator(feats[0], first_labels(masks[0], feats.shape[1:3]), PropagationConfig())
    for t in range(1, 12):
        soft = propagator.step(feats[t])
        assert np.array_equal(to_mask(soft, PATCH, (W, H)), masks[t]), t
    assert len(propagator.queue) == 7  # first frame + the 7 latest


def test_topk_keeps_ties_and_neighbourhood_limits():
    from lorevit.tasks.video.propagate import neighbourhood, propagate_step

    mask = neighbourhood((3, 4), 1)
    assert mask.shape == (12, 12) and mask[0].sum() == 4 and mask[5].sum() == 9
    target = torch.nn.functional.normalize(torch.randn(12, 5), dim=1)
    context = target[None].repeat(3, 1, 1)  # three identical context frames: ties
    labels = torch.stack([torch.eye(2)[torch.arange(12) % 2].T] * 3)  # K, C, N
    soft = propagate_step(target, context, labels, mask, topk=2, temperature=0.1)
    assert torch.allclose(soft, labels[0], atol=1e-6)  # the 3 tied self-matches win, the 2nd value is a tie


def test_static_scene_reproduces_first_mask_from_disk(tmp_path):
    """Through the files (JPEG frames, PNG masks): a static scene's predictions equal its first mask."""
    rng = np.random.default_rng(1)
    frame = np.full((H, W, 3), 90, np.uint8)
    frame[:, 16:48] = rng.integers(0, 256, (H, 32, 3), dtype=np.uint8)
    frame[:, 88:104] = rng.integers(0, 256, (H, 16, 3), dtype=np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[:, 16:48], mask[:, 88:104] = 1, 2
    davis = Davis(write_davis(tmp_path, {"static": ([frame] * 10, [mask] * 10)}), need_frames=True)
    (seq,) = davis.sequences("val")
    out = tmp_path / "out"
    timing = propagate_sequence(seq, patch_pixels, PATCH, PatchPixels.mean, PatchPixels.std, out,
                                PropagationConfig(short_side=H), batch_size=4)
    assert timing.frames == 10 and timing.features > 0 and timing.propagation > 0
    for frame_id in seq.frame_ids:
        assert np.array_equal(read_mask(out / "static" / f"{frame_id}.png"), mask), frame_id


def test_working_size_for_a_patch_that_does_not_divide_64_covers_the_frame():
    assert working_size(854, 480, patch=16) == working_size(854, 480) == (832, 480)  # DINO's rule for 8 and 16
    assert working_size(854, 480, patch=14) == (840, 476)
    assert working_size(480, 854, patch=14) == (476, 840)
    for width, height in ((854, 480), (910, 480), (1280, 720), (200, 112)):
        w, h = working_size(width, height, patch=14)
        assert w % 14 == 0 and h % 14 == 0 and w <= width * 480 / height + 1e-9 and h <= 480


def test_a_patch14_mask_moved_by_whole_patches_is_predicted_in_place(tmp_path):
    """DINOv2's patch 14 (issue 25 §4): textured squares moving one patch a frame, on frames whose size is a
    multiple of 14. With DINO's 64 rule the 196-px side became 192, the grid (13 patches) covered 182 px and the
    prediction was stretched to 196: masks moved by up to a patch. Now every predicted mask sits where the true
    one is (the same bounding box; DINO's bilinear ×p upsampling only rounds the square's corners)."""
    p, short, width = 14, 112, 196
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:short, :width]
    background = np.stack([xx, yy * 2, 255 - xx], -1).clip(0, 255).astype(np.uint8)
    texture = rng.integers(0, 256, (2 * p, 2 * p, 3), dtype=np.uint8)
    frames, masks = [], []
    for t in range(8):  # the square ends at the right edge, where the old stretch moved it most
        frame, mask = background.copy(), np.zeros((short, width), np.uint8)
        y, x = 2 * p, (5 + t) * p
        frame[y: y + 2 * p, x: x + 2 * p] = texture
        mask[y: y + 2 * p, x: x + 2 * p] = 1
        frames.append(frame)
        masks.append(mask)
    davis = Davis(write_davis(tmp_path, {"patch14": (frames, masks)}), need_frames=True)
    (seq,) = davis.sequences("val")
    out = tmp_path / "out"
    propagate_sequence(seq, lambda images: patch_pixels(images, p), p, PatchPixels.mean, PatchPixels.std, out,
                       PropagationConfig(short_side=short), batch_size=4)
    def box(m):
        ys, xs = np.nonzero(m)
        return xs.min(), xs.max(), ys.min(), ys.max()

    for frame_id, mask in zip(seq.frame_ids, masks):
        predicted = read_mask(out / "patch14" / f"{frame_id}.png") > 0
        assert box(predicted) == box(mask), frame_id
        assert (predicted & (mask > 0)).sum() / (predicted | (mask > 0)).sum() > 0.9, frame_id


# -- scorer CLI --------------------------------------------------------------------------------------

def copy_gt(davis_root, results, sequences=("squares-a", "squares-b")):
    for seq in sequences:
        for png in sorted((davis_root / "Annotations" / "480p" / seq).glob("*.png")):
            write_mask(results / seq / png.name, read_mask(png))


def test_score_cli_end_to_end(tiny_davis, tmp_path, capsys):
    results = tmp_path / "results"
    copy_gt(tiny_davis, results)
    (results / "global_results-val.csv").write_text("stale\n")  # never re-read: always recomputed
    assert main(["video-seg", "score", "--davis-root", str(tiny_davis), "--results", str(results)]) == 0
    scores = json.loads((results / "scores.json").read_text())
    for key in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"):
        assert scores[key] == pytest.approx(0.0 if "Decay" in key else 1.0)
    assert set(scores["per_object"]) == {"squares-a_1", "squares-a_2", "squares-b_1"}
    assert (results / "global_results-val.csv").read_text().splitlines() == [
        "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay", "1.000,1.000,1.000,0.000,1.000,1.000,0.000"]
    assert (results / "per-sequence_results-val.csv").read_text().splitlines()[1] == "squares-a_1,1.000,1.000"
    assert "J&F-Mean 1.000000" in capsys.readouterr().out

    # object 2 of squares-a moved 4 px right in the evaluated frames: J by hand
    moved = results / "squares-a" / "00002.png"
    ids = read_mask(moved)
    write_mask(moved, np.where(ids == 2, 0, ids) + np.roll(ids == 2, 4, axis=1) * 2)
    assert main(["video-seg", "score", "--davis-root", str(tiny_davis), "--results", str(results),
                 "--sequences", "squares-a"]) == 0
    scores = json.loads((results / "scores.json").read_text())
    j_frame = 12 * 16 / (20 * 16)  # 16×16 square shifted by 4: overlap 12 columns, union 20
    assert scores["per_object"]["squares-a_2"]["J-Mean"] == pytest.approx((3 + j_frame) / 4)
    assert scores["per_object"]["squares-a_1"]["J-Mean"] == 1.0
    assert list(scores["per_object"]) == ["squares-a_1", "squares-a_2"]


@pytest.mark.parametrize("damage, message", [
    ("missing-sequence", "squares-b is missing"),
    ("missing-frame", "00002.png is missing"),
    ("wrong-size", "00001.png is 64×32"),
    ("extra-object", "00003.png holds object id 3"),
    ("rgb", "00002.png is a mode-RGB image"),
])
def test_score_bad_results(tiny_davis, tmp_path, capsys, damage, message):
    results = tmp_path / "results"
    copy_gt(tiny_davis, results)
    seq = results / "squares-a"
    if damage == "missing-sequence":
        import shutil

        shutil.rmtree(results / "squares-b")
    elif damage == "missing-frame":
        (seq / "00002.png").unlink()
    elif damage == "wrong-size":
        write_mask(seq / "00001.png", np.zeros((32, 64), np.uint8))
    elif damage == "extra-object":
        ids = read_mask(seq / "00003.png")
        ids[0, 0] = 3
        write_mask(seq / "00003.png", ids)
    elif damage == "rgb":
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(seq / "00002.png")
    assert main(["video-seg", "score", "--davis-root", str(tiny_davis), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (results / "scores.json").exists()


def test_score_bad_davis_root(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    assert main(["video-seg", "score", "--davis-root", str(tmp_path / "none"), "--results", str(tmp_path / "results")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "DAVIS" / "Annotations" / "480p").mkdir(parents=True)
    assert main(["video-seg", "score", "--davis-root", str(tmp_path / "DAVIS"), "--results", str(tmp_path / "results")]) == 2
    assert "ImageSets" in capsys.readouterr().err


# -- run CLI, stand-ins, bench -------------------------------------------------------------------------

def test_run_cli_tiny_vit(tiny_davis, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["video-seg", "run", "--davis-root", str(tiny_davis), "--output", str(out), "--backbone", TINY_VIT,
                 "--weights", "random", "--backbone-kwargs", json.dumps(TINY_KWARGS), "--base-size", "32",
                 "--short-side", str(H), "--device", "cpu", "--sequences", "squares-a,squares-b"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "frames/s" in printed and "propagation" in printed
    for seq, n in (("squares-a", 6), ("squares-b", 5)):
        files = sorted((out / seq).glob("*.png"))
        assert [f.stem for f in files] == [f"{i:05d}" for i in range(n)]
        ids = read_mask(files[-1])
        assert ids.shape == (H, W) and ids.max() <= (2 if seq == "squares-a" else 1)
    run = json.loads((out / "run.json").read_text())
    assert run["timing"]["frames"] == 11 and run["setup"]["protocol"]["topk"] == 5
    assert run["setup"]["protocol"]["normalisation"] == "backbone"
    assert (out / "scores.json").is_file() and (out / "figure-squares-a.png").is_file()
    scores = json.loads((out / "scores.json").read_text())
    assert 0 <= scores["J&F-Mean"] <= 1


def test_standins_build(tmp_path, monkeypatch):
    from lorevit.tasks.standins import video as standins

    spec = standins.SEQUENCES[2]  # three objects, one leaves and comes back (frames 11–21)
    monkeypatch.setattr(standins, "SEQUENCES", [standins.Spec(spec.name, spec.background, 4, spec.pan, spec.objects)])
    assert standins.build(tmp_path, say=lambda _: None) == ["DAVIS"]
    davis = Davis(tmp_path / "DAVIS", need_frames=True)
    (seq,) = davis.sequences("val")
    assert len(seq) == 4
    with Image.open(seq.frames[0]) as image:
        assert image.size == (854, 480)
    gt = davis.ground_truth(seq)
    assert set(np.unique(gt[0])) == {0, 1, 2, 3}
    stamp = (tmp_path / "DAVIS" / "standins.json").stat().st_mtime_ns
    standins.build(tmp_path, say=lambda _: None)  # idempotent: found, not rebuilt
    assert (tmp_path / "DAVIS" / "standins.json").stat().st_mtime_ns == stamp
    sprites = {f.__name__: f() for f in (standins._horse, standins._face, standins._rocket)}
    background = standins._background(spec.background, spec.pan)
    frame, labels = standins.render(spec, 16, sprites, background)  # the face is out of the frame
    assert 2 not in labels and {1, 3} <= set(np.unique(labels))
    again, labels_again = standins.render(spec, 16, sprites, background)
    assert np.array_equal(frame, again) and np.array_equal(labels, labels_again)  # deterministic


def test_bench_quick(tiny_extractors, tiny_davis, tmp_path):
    from lorevit.tasks.bench import BenchContext
    from lorevit.tasks.video.bench import bench

    ctx = BenchContext(tiny_extractors, tiny_davis.parent, tmp_path / "standins", tmp_path / "work", quick=True,
                       say=lambda _: None)
    (result,) = bench(ctx)
    assert result.task == "video" and result.kind == "real" and result.unit == "frames/s"
    assert result.columns == ["J&F-Mean", "J-Mean", "F-Mean"] and result.scale == "percent"
    assert set(result.rows) == {"B-B", "LORE", "copy first frame"}
    for row in result.rows.values():
        assert 0 <= row["J&F-Mean"] <= 100
    assert set(result.throughput) == {"B-B", "LORE"} and all(v > 0 for v in result.throughput.values())
    assert result.details["timing"]["LORE"]["share_features"] > 0
