"""The stand-ins' shared pieces: hand-checked homographies (:mod:`lorevit.tasks.standins.geometry`) and the
one photo source with its install hint (:mod:`lorevit.tasks.standins.photos`)."""
import numpy as np
import pytest
from PIL import Image

from lorevit.tasks.errors import TaskError
from lorevit.tasks.standins import photos
from lorevit.tasks.standins.geometry import (apply_homography, flip, homography_from_corners, read_opencv_matrix,
                                             rotation, warp)

CORNERS = np.array([[0, 0], [9, 0], [9, 5], [0, 5]], dtype=float)  # a 10 × 6 image, [x, y]


def test_translation_and_scaling_map_known_points_exactly():
    shift = np.array([[1.0, 0, 3], [0, 1, -2], [0, 0, 1]])  # x + 3, y − 2
    scale = np.array([[2.0, 0, 0], [0, 0.5, 0], [0, 0, 1]])  # 2x, y / 2
    points = np.array([[0, 0], [1, 2], [10, 5]], dtype=float)
    np.testing.assert_array_equal(apply_homography(shift, points), [[3, -2], [4, 0], [13, 3]])
    np.testing.assert_array_equal(apply_homography(scale, points), [[0, 0], [2, 1], [20, 2.5]])
    # the 4 corners and their images give the same maps back
    np.testing.assert_allclose(homography_from_corners(CORNERS, CORNERS + [3, -2]), shift, atol=1e-12)
    np.testing.assert_allclose(homography_from_corners(CORNERS, CORNERS * [2, 0.5]), scale, atol=1e-12)


def test_apply_then_inverse_is_the_identity():
    dst = np.array([[1, 2], [8, 0], [10, 7], [0, 6]], dtype=float)  # a true perspective map
    M = homography_from_corners(CORNERS, dst)
    np.testing.assert_allclose(apply_homography(M, CORNERS), dst, atol=1e-9)
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(6.0)), -1).reshape(-1, 2)
    np.testing.assert_allclose(apply_homography(np.linalg.inv(M), apply_homography(M, grid)), grid, atol=1e-9)


def test_rotation_flip_and_warp():
    M, shape = rotation(4, 2, 90)  # a 4 × 2 image turned counter-clockwise: 2 wide, 4 high
    assert shape == (4, 2)
    corners = np.array([[0, 0], [3, 0], [3, 1], [0, 1]], dtype=float)
    np.testing.assert_allclose(apply_homography(M, corners), [[0, 3], [0, 0], [1, 0], [1, 3]], atol=1e-12)
    M, shape = flip(4, 2)
    assert shape == (2, 4)
    np.testing.assert_array_equal(apply_homography(M, corners), [[3, 0], [0, 0], [0, 1], [3, 1]])
    image = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    moved = warp(image, np.array([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]]), (4, 5))  # one pixel to the right
    assert moved.dtype == np.uint8
    np.testing.assert_array_equal(moved[:, 1:], image[:, :-1])
    np.testing.assert_array_equal(moved[:, 0], 0)  # black outside
    assert warp(image / 255.0, np.eye(3), (4, 5)).dtype == np.float64  # floats stay floats


def test_opencv_matrix_without_the_node(tmp_path):
    xml = tmp_path / "H.xml"
    xml.write_text('<?xml version="1.0"?>\n<opencv_storage>\n<H12 type_id="opencv-matrix"><rows>1</rows>'
                   '<cols>2</cols><dt>d</dt><data>1. 2.</data></H12>\n</opencv_storage>\n')
    np.testing.assert_array_equal(read_opencv_matrix(xml), [[1, 2]])  # the first node by default
    with pytest.raises(TaskError, match="no matrix 'H13'"):
        read_opencv_matrix(xml, "H13")


def test_missing_opencv_doc_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "OPENCV_DATA", tmp_path)  # an empty folder: opencv-doc "not installed"
    with pytest.raises(TaskError, match=r"graf1\.png.*install Debian's opencv-doc \(`make setup` does\)"):
        photos.array("cv:graf1.png")
    assert photos.available(["cv:graf1.png", ("cv:aloeL.jpg", "cv:aloeR.jpg")]) == []
    from lorevit.tasks.standins import correspondence

    with pytest.raises(TaskError, match="install Debian's opencv-doc"):  # the builders read through photos
        correspondence.build(tmp_path / "out", say=lambda s: None)
    with pytest.raises(TaskError, match="cv:NAME, sk:NAME or sl:NAME"):
        photos.path("xx:graf1.png")


def test_photo_reading_and_conversions(tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "OPENCV_DATA", tmp_path)
    Image.fromarray(np.full((40, 80), 200, np.uint8)).save(tmp_path / "Gray.png")  # gray, 80 × 40
    assert photos.available(["cv:Gray.png", "cv:none.png"]) == ["cv:Gray.png"]
    assert photos.stem("cv:Gray.png") == "gray"
    pixels = photos.array("cv:Gray.png")
    assert pixels.shape == (40, 80, 3) and pixels.dtype == np.uint8 and (pixels == 200).all()
    assert photos.image("cv:Gray.png", max_side=20).size == (20, 10)
    np.testing.assert_array_equal(photos.to_uint8(np.array([[0.0, 0.5, 1.0]])), [[[0] * 3, [128] * 3, [255] * 3]])
    np.testing.assert_array_equal(photos.to_uint8(np.zeros((1, 1, 4), np.uint8) + [1, 2, 3, 4]), [[[1, 2, 3]]])
    assert photos.to_float(pixels).dtype == np.float32 and photos.to_float(pixels).max() == pytest.approx(200 / 255)
    assert np.asarray(photos.from_float(np.array([[[-0.1, 0.5, 1.2]]]))).tolist() == [[[0, 128, 255]]]
