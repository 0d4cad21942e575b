"""Retrieval evaluator, protocols, reader, restricted unpickler and query cropping (TASKS_SPEC §1)."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from lorevit.tasks.errors import TaskError
from lorevit.tasks.retrieval import (compute_ap, compute_map, crop_box, evaluate, load_image, protocol_gnd, protocols,
                                     random_map, rank, read_dataset)

from .retrieval_fixtures import write_gnd, write_retrieval_set

RANKS6 = np.arange(6)[:, None]  # 6 database images ranked 0..5, one query


# ------------------------------------------------------------------------------------ evaluator
@pytest.mark.parametrize("ok, junk, ap, prs", [
    ([0, 3], [], 0.708333, [1, 0.5, 0.5]),
    ([0, 3], [1], 0.791667, [1, 0.666667, 0.666667]),
    ([2, 5], [0, 1], 0.708333, [1, 0.5, 0.5]),
    ([5], [], 0.083333, [0, 0, 0.166667]),
])
def test_official_vectors(ok, junk, ap, prs):
    m, aps, mpr, per_query = compute_map(RANKS6, [{"ok": ok, "junk": junk}], [1, 5, 10])
    assert m == pytest.approx(ap, abs=1e-6)
    assert aps[0] == pytest.approx(ap, abs=1e-6)
    np.testing.assert_allclose(mpr, prs, atol=1e-6)
    np.testing.assert_allclose(per_query[0], prs, atol=1e-6)


def test_empty_query_is_nan_and_excluded():
    ranks = np.tile(RANKS6, (1, 2))  # 6, 2
    m, aps, mpr, prs = compute_map(ranks, [{"ok": [0, 3], "junk": []}, {"ok": [], "junk": [1]}], [1, 5, 10])
    assert m == pytest.approx(0.708333, abs=1e-6)
    assert np.isnan(aps[1]) and np.isnan(prs[1]).all()
    np.testing.assert_allclose(mpr, [1, 0.5, 0.5])
    m, aps, mpr, _ = compute_map(RANKS6, [{"ok": [], "junk": []}], [1])
    assert np.isnan(m) and np.isnan(mpr).all()


def test_trapezoid_hand_computed_and_truncated():
    # positives at 1 and 2 of 3: (0/1 + 1/2)/2 + (1/2 + 2/3)/2, over nres = 3 (the third is not ranked)
    assert compute_ap(np.array([1, 2]), 3) == pytest.approx(((0 + 0.5) / 2 + (0.5 + 2 / 3) / 2) / 3)
    ranks = np.array([[4], [1], [0]])  # a truncated ranking of a 5-image database
    m, _, mpr, _ = compute_map(ranks, [{"ok": [0, 1, 3]}], [1, 5])
    assert m == pytest.approx(compute_ap(np.array([1, 2]), 3))
    np.testing.assert_allclose(mpr, [0, 2 / 3])  # kq = min(max pos = 3, 5) = 3


def test_columns_are_queries_and_mpk_quirk():
    ranks = np.array([[0, 2], [1, 0], [2, 1], [3, 3]])  # 4 db, 2 queries; column = one query
    m, aps, mpr, prs = compute_map(ranks, [{"ok": [0, 1]}, {"ok": [2]}], [1, 5])
    assert aps.tolist() == [1.0, 1.0] and m == 1.0
    np.testing.assert_allclose(prs, [[1, 1], [1, 1]])  # P@5 = 2/2, not 2/5: the denominator shrinks


def test_junk_shift_equals_deleting_junk():
    rng = np.random.default_rng(0)
    for _ in range(20):
        order = rng.permutation(30)
        ok, junk = list(rng.choice(30, 5, replace=False)[:3]), []
        junk = [i for i in rng.choice(30, 6, replace=False) if i not in ok]
        kept = np.array([i for i in order if i not in junk])
        remap = {old: new for new, old in enumerate(sorted(kept))}
        ref = compute_map(np.array([remap[i] for i in kept])[:, None], [{"ok": [remap[i] for i in ok]}], [1, 5, 10])
        got = compute_map(order[:, None], [{"ok": ok, "junk": junk}], [1, 5, 10])
        assert got[0] == pytest.approx(ref[0])
        np.testing.assert_allclose(got[2], ref[2])


def test_protocol_composition():
    gnd = [{"easy": [0, 4], "hard": [1], "junk": [2], "bbx": [0, 0, 1, 1]}]
    p = protocols(gnd)
    assert sorted(p["easy"][0]["ok"]) == [0, 4] and sorted(p["easy"][0]["junk"]) == [1, 2]
    assert sorted(p["medium"][0]["ok"]) == [0, 1, 4] and sorted(p["medium"][0]["junk"]) == [2]
    assert sorted(p["hard"][0]["ok"]) == [1] and sorted(p["hard"][0]["junk"]) == [0, 2, 4]
    with pytest.raises(ValueError):
        protocol_gnd(gnd, "extreme")
    ranks = np.array([[1], [2], [3], [0], [4]])  # hard first, then junk, a negative, the easy ones
    out = evaluate(ranks, gnd)
    assert out["hard"]["mAP"] == 1.0  # easy and junk are ignored
    assert out["easy"]["mAP"] == pytest.approx(compute_ap(np.array([1, 2]), 2))  # hard + junk deleted: 3, 0, 4
    assert out["medium"]["mAP"] == pytest.approx(compute_ap(np.array([0, 2, 3]), 3))  # junk deleted: 1, 3, 0, 4


def test_query_without_hard_is_left_out_of_hard_only():
    gnd = [{"easy": [0], "hard": [], "junk": []}, {"easy": [1], "hard": [2], "junk": []}]
    out = evaluate(np.array([[0, 2], [1, 1], [2, 0]]), gnd)
    assert out["hard"]["queries"] == 1 and out["medium"]["queries"] == 2


def test_rank_is_one_cosine_product_best_first():
    db = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 2.0], [1.0, 0.0]])
    q = np.array([[0.0, 1.0], [5.0, 0.1]])
    ranks = rank(db, q)
    assert ranks.shape == (4, 2)
    assert ranks[:, 0].tolist() == [1, 2, 0, 3]  # ties (0 and 3) keep database order
    assert ranks[:, 1].tolist()[:2] == [0, 3]


def test_random_baseline_expectation():
    gnd = [{"easy": [0], "hard": [], "junk": []}] * 400  # 2 images: AP 1 (first) or 0.25 (second)
    out = random_map(gnd, 2, seeds=(0, 1, 2))
    assert out["easy"]["mAP"] == pytest.approx(0.625, abs=0.03)
    assert np.isnan(out["hard"]["mAP"])


# ------------------------------------------------------------------------------------- reader
def test_reader_on_generated_tree(tmp_path):
    data = write_retrieval_set(tmp_path)
    ds = read_dataset(tmp_path, "toyset")
    assert ds.imlist == data["imlist"] and ds.qimlist == data["qimlist"]
    assert [g["easy"] for g in ds.gnd] == [g["easy"] for g in data["gnd"]]
    assert ds.gnd[0]["bbx"] == [2.0, 3.0, 30.0, 25.0]
    assert ds.image_path(ds.qimlist[0]) == tmp_path / "toyset" / "jpg" / "query_0.jpg"
    assert not set(ds.qimlist) & set(ds.imlist)


def test_reader_missing_files(tmp_path):
    with pytest.raises(TaskError, match="gnd_toyset.pkl"):
        read_dataset(tmp_path, "toyset")
    data = write_retrieval_set(tmp_path)
    (tmp_path / "toyset" / "jpg" / f"{data['imlist'][3]}.jpg").unlink()
    with pytest.raises(TaskError, match=f"1 image.*{data['imlist'][3]}.jpg"):
        read_dataset(tmp_path, "toyset")


def _valid():
    return {"imlist": ["a", "b", "c"], "qimlist": ["q"],
            "gnd": [{"bbx": [0, 0, 5, 5.5], "easy": [0], "hard": [1], "junk": [], "extra": "ignored"}]}


def _broken(change):
    data = _valid()
    change(data)
    return data


@pytest.mark.parametrize("data, message", [
    ([1, 2], "top level is a list"),
    (_broken(lambda d: d.pop("qimlist")), "missing key"),
    (_broken(lambda d: d["imlist"].append(3)), "'imlist' must be a list"),
    (_broken(lambda d: d["qimlist"].append("q2")), "len\\(gnd\\) = 1 differs"),
    (_broken(lambda d: d["gnd"][0].update(easy=[0.0])), "'easy'\\] must be a list of int"),
    (_broken(lambda d: d["gnd"][0].update(hard=[True])), "'hard'\\] must be a list of int"),
    (_broken(lambda d: d["gnd"][0].pop("junk")), "'junk'\\] must be a list"),
    (_broken(lambda d: d["gnd"][0].update(bbx=[0, 0, 5])), "4 finite numbers"),
    (_broken(lambda d: d["gnd"][0].update(bbx=[0, 0, float("nan"), 5])), "4 finite numbers"),
    (_broken(lambda d: d["gnd"][0].update(bbx=[5, 0, 1, 5])), "x1 < x2"),
    (_broken(lambda d: d["gnd"][0].update(junk=[3])), "index 3 out of range \\[0, 3\\)"),
    (_broken(lambda d: d["gnd"][0].update(easy=[-1])), "index -1 out of range"),
])
def test_reader_structure_errors(tmp_path, data, message):
    path = write_gnd(tmp_path / "bad", "bad", data)
    with pytest.raises(TaskError, match=message) as err:
        read_dataset(tmp_path, "bad", check_images=False)
    assert str(path) in str(err.value)


def test_reader_accepts_valid_structure_and_tuples_are_lists(tmp_path):
    data = _valid()
    data["gnd"][0]["bbx"] = (0, 0, 5, 5.5)  # tuples are built by opcodes too
    write_gnd(tmp_path / "ok", "ok", data)
    ds = read_dataset(tmp_path, "ok", check_images=False)
    assert ds.gnd[0] == {"bbx": [0.0, 0.0, 5.0, 5.5], "easy": [0], "hard": [1], "junk": []}


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    data = _valid()
    data["gnd"][0]["bbx"] = _Payload(marker)
    path = write_gnd(tmp_path / "evil", "evil", data)
    with pytest.raises(TaskError) as err:
        read_dataset(tmp_path, "evil", check_images=False)
    assert str(path) in str(err.value) and "system" in str(err.value)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # control: the crafted file really does run its payload when unpickled
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_gnd_files_with_numpy_arrays_are_read_by_default(tmp_path, protocol):
    """issue 25 §4: the real Revisited Oxford/Paris files hold numpy arrays: read them with the CIFAR reader's
    numpy reconstructors, by default (the old --allow-numpy-pickle is no longer needed)."""
    data = _valid()
    data["gnd"][0]["easy"] = np.array([0, 2])
    data["gnd"][0]["bbx"] = np.array([0.0, 0.0, 5.0, 5.5])
    data["gnd"][0]["junk"] = np.array([], dtype=np.int64)
    (tmp_path / "np").mkdir()
    (tmp_path / "np" / "gnd_np.pkl").write_bytes(pickle.dumps(data, protocol=protocol))
    ds = read_dataset(tmp_path, "np", check_images=False)
    assert ds.gnd[0]["easy"] == [0, 2] and type(ds.gnd[0]["easy"][0]) is int
    assert ds.gnd[0]["bbx"] == [0.0, 0.0, 5.0, 5.5] and ds.gnd[0]["junk"] == []
    with pytest.raises(TaskError, match="refused to load: the pickle asks for the global"):
        read_dataset(tmp_path, "np", allow_numpy=False, check_images=False)  # the library's strict mode


def test_a_refused_global_is_named_without_calling_the_file_corrupt(tmp_path):
    """Any global beyond numpy's reconstructors is still refused; the message names it and the allow-list, and does
    not call the (possibly genuine) file corrupt."""
    import collections

    data = _valid()
    data["gnd"][0]["extra"] = collections.OrderedDict(a=1)  # a harmless but non-allowed global
    path = write_gnd(tmp_path / "od", "od", data)
    with pytest.raises(TaskError) as err:
        read_dataset(tmp_path, "od", check_images=False)
    text = str(err.value)
    assert str(path) in text and "collections.OrderedDict" in text and "_reconstruct" in text
    assert "corrupt" not in text and "\n" not in text


def test_truncated_pickle(tmp_path):
    path = write_gnd(tmp_path / "cut", "cut", _valid())
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(TaskError, match="not a readable pickle"):
        read_dataset(tmp_path, "cut", check_images=False)


# ---------------------------------------------------------------------------------- queries
def test_query_crop_coordinates_follow_pil(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, size=(20, 30, 3)).astype(np.uint8)  # H=20, W=30
    path = tmp_path / "q.png"
    Image.fromarray(pixels).save(path)
    bbx = [1.4, 2.6, 10.5, 7.5]  # rounds to 1, 3, 10 (half to even), 8; x2, y2 excluded
    assert crop_box(bbx) == (1, 3, 10, 8)
    crop = np.asarray(load_image(path, None, bbx))
    np.testing.assert_array_equal(crop, pixels[3:8, 1:10])
    np.testing.assert_array_equal(crop, np.asarray(Image.open(path).convert("RGB").crop(tuple(bbx))))
    whole = np.asarray(load_image(path, None, [0, 0, 30, 20]))
    np.testing.assert_array_equal(whole, pixels)


def test_thumbnail_keeps_aspect_and_never_upsamples(tmp_path):
    Image.new("RGB", (600, 400), "red").save(tmp_path / "big.png")
    Image.new("L", (100, 50)).save(tmp_path / "small.png")
    assert load_image(tmp_path / "big.png", 224).size == (224, 149)  # 600×400 → longer side 224
    small = load_image(tmp_path / "small.png", 224)
    assert small.size == (100, 50) and small.mode == "RGB"
    assert load_image(tmp_path / "big.png", 224, [0, 0, 300, 400]).size == (168, 224)  # crop first, then resize
