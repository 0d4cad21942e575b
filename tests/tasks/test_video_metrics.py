"""DAVIS measures against the official evaluator's test vectors and its OSVOS regression (TASKS_SPEC §3)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lorevit.tasks.video.metrics import (boundary_map, db_statistics, f_measure, f_measure_dilation, jaccard,
                                         label_measures, tolerance)

OSVOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "davis-osvos"


def square_pair(shift: int):
    gt = np.zeros((200, 200), bool)
    gt[100:150, 100:150] = True
    pred = np.zeros_like(gt)
    pred[100:150, 100 + shift: 150 + shift] = True
    return gt, pred


def disk_mask(radius_x: float, radius_y: float | None = None):
    yy, xx = np.mgrid[:480, :854]
    radius_y = radius_x if radius_y is None else radius_y
    return ((xx - 427) / radius_x) ** 2 + ((yy - 240) / radius_y) ** 2 <= 1


@pytest.mark.parametrize("shift, j, f", [(3, 0.886792, 1.0), (4, 0.851852, 0.53), (6, 0.785714, 0.51)])
def test_shifted_squares(shift, j, f):
    gt, pred = square_pair(shift)
    assert tolerance(gt.shape) == 3
    assert jaccard(gt, pred) == pytest.approx(j, abs=1e-6)
    assert f_measure(gt, pred) == pytest.approx(f, abs=1e-6)
    assert f_measure_dilation(gt, pred) == pytest.approx(f, abs=1e-6)


@pytest.mark.parametrize("pred, j, f", [((45,), 0.810835, 1.0), ((42,), 0.704270, 0.796697), ((40,), 0.640535, 0.0),
                                        ((62, 50), 0.806352, 0.668454)])
def test_concentric_disks_and_ellipse(pred, j, f):
    gt = disk_mask(50)
    p = disk_mask(*pred)
    assert tolerance(gt.shape) == 8
    assert jaccard(gt, p) == pytest.approx(j, abs=1e-6)
    assert f_measure(gt, p) == pytest.approx(f, abs=1e-6)
    assert f_measure_dilation(gt, p) == pytest.approx(f, abs=1e-6)


def test_empty_masks():
    gt = disk_mask(50)
    empty = np.zeros_like(gt)
    assert jaccard(gt, empty) == 0 and f_measure(gt, empty) == 0
    assert jaccard(empty, empty) == 1 and f_measure(empty, empty) == 1
    assert f_measure(empty, gt) == 0  # prediction with no GT boundary: P = 0, R = 1 → F 0 (P+R>0, PR = 0)


def test_db_statistics():
    m, r, d = db_statistics([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert (m, r, d) == pytest.approx((0.55, 0.5, 0.7), abs=1e-12)


def test_tolerances_at_davis_sizes():
    assert [tolerance((480, w)) for w in (854, 910, 1152)] == [8, 9, 10]


def test_boundary_map_edges():
    seg = np.ones((4, 5), bool)
    b = boundary_map(seg)
    assert not b.any()  # a full frame has no boundary: the image border is not one
    seg[1:3, 1:3] = False
    assert boundary_map(seg).sum() == 8  # differs from E, S or SE: the hole and its N/W/NW rims
    corner = np.zeros((4, 5), bool)
    corner[-1, -1] = True
    b = boundary_map(corner)
    assert not b[-1, -1] and b[-1, -2] and b[-2, -1] and b[-2, -2]


def random_labels(rng, shape, objects):
    """Blobby label maps with several objects, holes and touching borders."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.standard_normal((objects, *shape)), 6)
    labels = np.where(noise.max(0) > 0.02, noise.argmax(0) + 1, 0).astype(np.uint8)
    return labels


def test_fast_f_equals_dilation_and_label_measures_equal_per_mask():
    rng = np.random.default_rng(0)
    gt = np.stack([random_labels(rng, (120, 170), 3) for _ in range(3)])
    pred = np.stack([random_labels(rng, (120, 170), 3) for _ in range(2)] + [gt[2]])
    pred[0, :, :5] = 0  # an object touching nothing on the left
    j, f = label_measures(gt, pred, 3)
    for t in range(3):
        for o in range(1, 4):
            g, p = gt[t] == o, pred[t] == o
            assert j[o - 1, t] == pytest.approx(jaccard(g, p), abs=1e-12)
            assert f[o - 1, t] == pytest.approx(f_measure_dilation(g, p), abs=1e-12)
            assert f_measure(g, p) == pytest.approx(f_measure_dilation(g, p), abs=1e-12)
    assert np.all(j[:, 2] == 1) and np.all(f[:, 2] == 1)


# -- the official evaluator on real DAVIS-val masks (OSVOS results as pseudo ground truth) ---------------

OFFICIAL = {  # prediction: J&F, J-Mean, F-Mean, J-Recall, J-Decay, F-Recall, F-Decay
    "identical": (1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0),
    "shift 8": (0.831902, 0.664988, 0.998815, 0.806353, 0.064857, 1.000000, 0.000045),
    "shift 16": (0.500837, 0.504532, 0.497141, 0.559424, 0.059722, 0.488204, -0.021568),
    "first": (0.216170, 0.216028, 0.216311, 0.159442, 0.250430, 0.101147, 0.286622),
}
PER_OBJECT = {
    "shift 16": {"blackswan_1": (0.723282, 0.518013), "lab-coat_3": (0.250555, 0.407476), "shooting_1": (0.409836, 0.645782)},
    "first": {"blackswan_1": (0.553783, 0.329351), "gold-fish_5": (0.311782, 0.181164), "lab-coat_1": (0.688889, 0.688889)},
}
def dummy_jpeg() -> bytes:
    """A 1×1 JPEG: the pseudo-GT tree's frames are never decoded by the scorer."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "JPEG")
    return buffer.getvalue()


def pseudo_davis(tmp: Path) -> Path:
    """The spec's pseudo-GT tree: OSVOS PNGs as Annotations/480p (linked), dummy JPEGs, val.txt = the 30 names."""
    davis = tmp / "DAVIS"
    names = sorted(p.name for p in OSVOS.iterdir() if p.is_dir())
    jpeg = dummy_jpeg()
    (davis / "Annotations" / "480p").mkdir(parents=True)
    for name in names:
        target = davis / "Annotations" / "480p" / name
        try:
            os.symlink(OSVOS / name, target, target_is_directory=True)
        except OSError:  # no symlinks here: copy (into tmp only, never into git)
            import shutil

            shutil.copytree(OSVOS / name, target)
        frames = davis / "JPEGImages" / "480p" / name
        frames.mkdir(parents=True)
        for png in (OSVOS / name).glob("*.png"):
            (frames / f"{png.stem}.jpg").write_bytes(jpeg)
    (davis / "ImageSets" / "2017").mkdir(parents=True)
    (davis / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{n}\n" for n in names))
    return davis


def shifted(labels: np.ndarray, s: int) -> np.ndarray:
    out = np.zeros_like(labels)
    out[..., s:] = labels[..., :-s]  # columns 0..s−1 become background
    return out


PREDICTIONS = {"identical": lambda a: a, "shift 8": lambda a: shifted(a, 8), "shift 16": lambda a: shifted(a, 16),
               "first": lambda a: np.repeat(a[:1], len(a), 0)}


@pytest.mark.skipif(not OSVOS.is_dir(), reason="../shared/data/davis-osvos is absent")
def test_osvos_regression_table(tmp_path):
    from lorevit.tasks.video.davis import Davis
    from lorevit.tasks.video.evaluate import score, sequence_measures, summarise

    davis_root = pseudo_davis(tmp_path)
    davis = Davis(davis_root, need_frames=True)
    sequences = davis.sequences("val")
    assert len(sequences) == 30 and sum(len(s) for s in sequences) == 1999
    truth = {}
    for sequence in sequences:
        raw = davis.ground_truth(sequence)
        gt = np.where(raw == 255, 0, raw).astype(np.uint8)  # void → 0, as ground_truth_labels does
        truth[sequence.name] = (raw, gt, int(gt[0].max()))
    assert sum(t[2] for t in truth.values()) == 61
    for name, make in PREDICTIONS.items():
        per_object = {}
        for seq, (raw, gt, n_objects) in truth.items():
            j, f = sequence_measures(gt, make(raw)[1:-1], n_objects)
            per_object.update({f"{seq}_{i + 1}": (j[i], f[i]) for i in range(n_objects)})
        scores = summarise(per_object)
        got = [scores[k] for k in ("J&F-Mean", "J-Mean", "F-Mean", "J-Recall", "J-Decay", "F-Recall", "F-Decay")]
        assert got == pytest.approx(OFFICIAL[name], abs=1e-6), name
        for obj, (j, f) in PER_OBJECT.get(name, {}).items():
            assert (scores["per_object"][obj]["J-Mean"], scores["per_object"][obj]["F-Mean"]) == pytest.approx((j, f), abs=1e-6)

    # the on-disk path (reader of results, CSVs, scores.json) on two sequences of the "first" prediction
    from lorevit.tasks.video.davis import write_mask

    results = tmp_path / "first"
    for seq in ("blackswan", "lab-coat"):
        raw = truth[seq][0]
        for frame in davis.sequence(seq).frame_ids:
            write_mask(results / seq / f"{frame}.png", raw[0])
    scores = score(davis_root, results, "val", ["blackswan", "lab-coat"])
    assert scores["per_object"]["blackswan_1"]["J-Mean"] == pytest.approx(0.553783, abs=1e-6)
    assert scores["per_object"]["blackswan_1"]["F-Mean"] == pytest.approx(0.329351, abs=1e-6)
    assert scores["per_object"]["lab-coat_1"]["J-Mean"] == pytest.approx(0.688889, abs=1e-6)
    assert (results / "global_results-val.csv").read_text().startswith("J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean")
    assert len((results / "per-sequence_results-val.csv").read_text().splitlines()) == 1 + 1 + 5
