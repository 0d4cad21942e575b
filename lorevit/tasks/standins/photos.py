"""The one photo source of the stand-ins: real images installed with the machine, named by reference.

A reference is ``LIB:FILE``:

- ``cv:NAME`` — Debian's opencv-doc examples (:data:`OPENCV_DATA`; ``make setup`` installs it),
- ``sk:NAME`` — scikit-image's bundled data (``skimage/data``; ``sk:chelsea.png`` = ``skimage.data.chelsea()``),
- ``sl:NAME`` — scikit-learn's sample images (``sklearn/datasets/images``; ``sl:china.jpg`` =
  ``load_sample_image("china.jpg")``).

:func:`path` resolves a reference (a :class:`~lorevit.tasks.errors.TaskError` that names the fix when the
file is not there), :func:`image` / :func:`array` read it as RGB, :func:`available` keeps the references
that can be read, and :func:`to_uint8` / :func:`to_float` / :func:`from_float` convert pixels.
Used by :mod:`.retrieval`, :mod:`.correspondence` and :mod:`.video`; imports none of them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lorevit.tasks.errors import TaskError

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian's opencv-doc example images
LIBRARIES = {"cv": "opencv-doc", "sk": "scikit-image", "sl": "scikit-learn"}
FIXES = {"cv": "install Debian's opencv-doc (`make setup` does)",
         "sk": "install scikit-image (`make setup` does)", "sl": "install scikit-learn (`make setup` does)"}


def split(ref: str) -> tuple[str, str]:
    """``"cv:graf1.png"`` → ``("cv", "graf1.png")``; a TaskError for an unknown library."""
    lib, sep, name = ref.partition(":")
    if not sep or lib not in LIBRARIES:
        raise TaskError(f"stand-in photo {ref!r}: expected cv:NAME, sk:NAME or sl:NAME")
    return lib, name


def stem(ref: str) -> str:
    """The file name without its extension, lower case: ``"cv:Blender_Suzanne1.jpg"`` → ``"blender_suzanne1"``."""
    return Path(split(ref)[1]).stem.lower()


def folder(lib: str) -> Path:
    """The folder a library's references live in (importing scikit-image/scikit-learn to find theirs)."""
    if lib == "cv":
        return OPENCV_DATA
    try:
        if lib == "sk":
            import skimage

            return Path(skimage.__file__).parent / "data"
        import sklearn

        return Path(sklearn.__file__).parent / "datasets" / "images"
    except ImportError as err:
        raise TaskError(f"stand-in photos sk:/sl: need {LIBRARIES[lib]} ({err}): {FIXES[lib]}") from err


def path(ref: str) -> Path:
    """The file of a reference; a TaskError naming the fix when it is not installed."""
    lib, name = split(ref)
    file = folder(lib) / name
    if not file.is_file():
        raise TaskError(f"stand-in source {file} ({ref}) is missing: {FIXES[lib]}")
    return file


def image(ref: str, max_side: int | None = None) -> Image.Image:
    """The photo as an RGB PIL image; with ``max_side``, a larger one is downscaled (Lanczos) to that longer side."""
    with Image.open(path(ref)) as f:
        out = f.convert("RGB")
    if max_side is not None and max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.LANCZOS)
    return out


def array(ref: str) -> np.ndarray:
    """The photo as an (H, W, 3) uint8 array."""
    return np.asarray(image(ref))


def available(refs) -> list:
    """The references that can be read (a tuple counts by its first entry: ``(photo, second view)``)."""
    def present(ref: str) -> bool:
        try:
            image(ref)
            return True
        except (TaskError, OSError):
            return False

    return [r for r in refs if present(r if isinstance(r, str) else r[0])]


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Any image array as (H, W, 3) uint8: floats with max ≤ 1 are read as 0..1, others as 0..255 (rounded,
    clipped); gray is repeated to three channels; an alpha channel is dropped."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.rint(pixels * 255 if pixels.max() <= 1.0 else pixels), 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return pixels[..., :3]


def to_float(photo) -> np.ndarray:
    """A uint8 image (PIL or array) as float32 in 0..1."""
    return np.asarray(photo, dtype=np.float32) / 255


def from_float(pixels: np.ndarray) -> Image.Image:
    """Float pixels in 0..1 (clipped) as a uint8 PIL image (rounded)."""
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).round().astype(np.uint8))
