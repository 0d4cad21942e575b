"""``--crop-queries`` and ``--multiscale`` can fail (issue 25 §5): the query features follow the box and equal
those of the cropped image, end to end through the CLI; ``--multiscale`` is DINO's ``multi_scale`` (the mean of
the CLS at scales 1, 1/√2, 1/2, bilinear), checked against a transcription of it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lorevit.cli import main
from lorevit.tasks import load_extractor
from lorevit.tasks.features import to_tensor
from lorevit.tasks.retrieval import read_dataset
from lorevit.tasks.retrieval.dataset import load_image
from lorevit.tasks.retrieval.evaluate import evaluate, rank
from lorevit.tasks.retrieval.run import embed

from .conftest import TINY_KWARGS, TINY_VIT
from .retrieval_fixtures import write_gnd, write_retrieval_set

TINY_SOURCE = ["--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs", json.dumps(TINY_KWARGS),
               "--base-size", "32", "--device", "cpu"]
BOXES = ([2.0, 3.0, 30.0, 25.0], [6.0, 1.0, 34.0, 20.0])


@pytest.fixture
def blackbox():
    return load_extractor(None, TINY_VIT, "random", TINY_KWARGS, base_size=32)


def _precropped_copy(root, data, name="cropped"):
    """The same set with every query image replaced by its bbx crop (PNG bytes under the .jpg name: lossless)."""
    src, dst = root / "toyset", root / name
    shutil.copytree(src / "jpg", dst / "jpg")
    for q, g in zip(data["qimlist"], data["gnd"]):
        with Image.open(src / "jpg" / f"{q}.jpg") as im:
            im.convert("RGB").crop(tuple(int(round(v)) for v in g["bbx"])).save(dst / "jpg" / f"{q}.jpg", format="PNG")
    write_gnd(dst, name, data)


def test_query_features_follow_the_box_and_equal_the_cropped_images(tmp_path, blackbox):
    data = write_retrieval_set(tmp_path / "data")
    dataset = read_dataset(tmp_path / "data", "toyset")
    paths = dataset.query_paths()
    full = embed(blackbox, paths, 224).features
    by_box = {b: embed(blackbox, paths, 224, [list(b)] * len(paths)).features for b in map(tuple, BOXES)}
    for box, feats in by_box.items():
        crops = []
        for i, path in enumerate(paths):
            with Image.open(path) as im:
                crops.append(tmp_path / f"crop{i}.png")
                im.convert("RGB").crop(tuple(int(v) for v in box)).save(crops[-1])
        np.testing.assert_allclose(feats, embed(blackbox, crops, 224).features, rtol=1e-5, atol=1e-5)
        assert np.abs(feats - full).max() > 1e-3  # the box changes the features
    a, b = by_box.values()
    assert np.abs(a - b).max() > 1e-3  # and another box changes them again


def test_crop_queries_end_to_end_equals_a_set_of_cropped_queries(tmp_path, blackbox):
    data = write_retrieval_set(tmp_path / "data")
    for g, box in zip(data["gnd"], [BOXES[0], BOXES[1], BOXES[1], BOXES[0]]):
        g["bbx"] = list(box)  # different boxes per query
    write_gnd(tmp_path / "data" / "toyset", "toyset", data)
    _precropped_copy(tmp_path / "data", data)
    run = lambda name, out, *extra: main(["retrieval", "--dataset", name, "--data-root", str(tmp_path / "data"),  # noqa: E731
                                          "--output", str(tmp_path / out), *TINY_SOURCE, *extra])
    assert run("toyset", "crop", "--crop-queries") == 0
    assert run("cropped", "precropped") == 0
    assert run("toyset", "full") == 0
    crop, pre, full = (json.loads((tmp_path / o / "retrieval.json").read_text()) for o in ("crop", "precropped", "full"))
    assert crop["top10"] == pre["top10"] and crop["per_query_ap"] == pre["per_query_ap"]
    assert crop["setup"]["protocol"]["crop_queries"] and not pre["setup"]["protocol"]["crop_queries"]
    # the features the CLI ranked with are the cropped ones: its ranking is the one of hand-cropped features
    dataset = read_dataset(tmp_path / "data", "cropped")
    q = embed(blackbox, dataset.query_paths(), 224).features
    db = embed(blackbox, dataset.db_paths(), 224).features
    assert rank(db, q)[:10].T.tolist() == crop["top10"]
    uncropped = embed(blackbox, read_dataset(tmp_path / "data", "toyset").query_paths(), 224).features
    assert np.abs(uncropped - q).max() > 1e-3 and full["setup"]["protocol"]["crop_queries"] is False


def dino_multi_scale(samples, model):
    """DINO's eval_image_retrieval.multi_scale (before its final v /= v.norm(), which ranking does)."""
    v = None
    for s in [1, 1 / 2 ** (1 / 2), 1 / 2]:  # we use 3 different scales
        if s == 1:
            inp = samples.clone()
        else:
            inp = torch.nn.functional.interpolate(samples, scale_factor=s, mode="bilinear", align_corners=False)
        feats = model(inp).clone()
        if v is None:
            v = feats
        else:
            v += feats
    v /= 3
    return v


def test_multiscale_is_dinos_mean_over_three_scales_end_to_end(tmp_path, blackbox):
    data = write_retrieval_set(tmp_path / "data")
    assert main(["retrieval", "--dataset", "toyset", "--data-root", str(tmp_path / "data"), "--output",
                 str(tmp_path / "ms"), *TINY_SOURCE, "--multiscale"]) == 0
    result = json.loads((tmp_path / "ms" / "retrieval.json").read_text())
    dataset = read_dataset(tmp_path / "data", "toyset")
    model = lambda x: blackbox(x).cls  # noqa: E731

    def hand(paths):  # one image at a time, as DINO
        return np.stack([dino_multi_scale(to_tensor(load_image(p, 224), blackbox.mean, blackbox.std)[None], model)[0]
                         .numpy() for p in paths])

    db_hand, q_hand = hand(dataset.db_paths()), hand(dataset.query_paths())
    from lorevit.tasks.retrieval.run import MULTISCALE

    np.testing.assert_allclose(embed(blackbox, dataset.query_paths(), 224, scales=MULTISCALE).features, q_hand,
                               rtol=1e-5, atol=1e-5)
    single = embed(blackbox, dataset.query_paths(), 224).features
    assert np.abs(single - q_hand).max() > 1e-3  # one scale would not pass
    ranks = rank(db_hand, q_hand)
    assert ranks[:10].T.tolist() == result["top10"]
    expected = evaluate(ranks, data["gnd"], (1, 5, 10))
    for protocol in ("easy", "medium", "hard"):
        assert result["mAP"][protocol] == pytest.approx(expected[protocol]["mAP"], abs=1e-9)
