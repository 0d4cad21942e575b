"""The DAVIS-2017 on-disk layout (TASKS_SPEC §3, "Layout") and indexed-PNG masks.

    DAVIS/JPEGImages/480p/<seq>/00000.jpg ...     frames (contiguous)
    DAVIS/Annotations/480p/<seq>/00000.png ...    mode-P PNGs: 0 = background, 1..N = objects, 255 = void
    DAVIS/ImageSets/2017/{train,val}.txt          one sequence name a line

Masks are written with the PASCAL-VOC colormap (the evaluator reads only the indices).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lorevit.tasks.errors import TaskError
from lorevit.utils.paths import safe_component

VOID = 255
RESOLUTION = "480p"


def voc_palette(n: int = 256) -> list[int]:
    """The PASCAL-VOC colormap as a flat [r, g, b, ...] list: (0,0,0), (128,0,0), (0,128,0), (128,128,0), ..."""
    palette = []
    for index in range(n):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


VOC_PALETTE = voc_palette()


def write_mask(path: str | Path, labels: np.ndarray) -> Path:
    """Write an H, W array of object ids as an indexed (mode P) PNG with the VOC palette."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError(f"a mask is an H, W array of ids in 0..255, got shape {labels.shape}")
    image = Image.fromarray(labels.astype(np.uint8), mode="L").convert("P")
    image.putpalette(VOC_PALETTE)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def read_mask(path: str | Path, what: str = "mask") -> np.ndarray:
    """An indexed PNG → H, W uint8 ids. Anything else (RGB, grey, 16-bit, unreadable) is a TaskError."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode != "P":
                raise TaskError(f"{what} {path} is a mode-{image.mode} image, not an indexed (palette, mode P) PNG: "
                                "write object ids 0..N as a palette PNG (e.g. PIL Image.convert('P') + putpalette)")
            return np.array(image, dtype=np.uint8)
    except TaskError:
        raise
    except FileNotFoundError as err:
        raise TaskError(f"{what} {path} is missing") from err
    except Exception as err:  # noqa: BLE001 - PIL meets a damaged PNG with OSError, SyntaxError, ValueError,
        # struct.error, zlib.error or DecompressionBombError: each is a file to replace, none a bug of ours
        raise TaskError(f"{what} {path} cannot be read as a PNG ({type(err).__name__}: {err}); "
                        "replace the file") from None


def read_masks(paths: list[Path], what: str = "mask") -> list[np.ndarray]:
    """:func:`read_mask` of many files, decoded on a few threads (PNG decoding releases the GIL)."""
    if len(paths) < 8:
        return [read_mask(p, what) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda p: read_mask(p, what), paths))


@dataclass
class Sequence:
    """One sequence: its frame ids (file stems), frame files and annotation files, in order."""
    name: str
    frame_ids: list[str]
    frames: list[Path]  # JPEGImages/480p/<seq>/<id>.jpg (may not exist when only scoring)
    annotations: list[Path]  # Annotations/480p/<seq>/<id>.png

    def __len__(self) -> int:
        return len(self.frame_ids)

    def truncated(self, max_frames: int | None) -> "Sequence":
        if not max_frames or max_frames >= len(self):
            return self
        k = max_frames
        return Sequence(self.name, self.frame_ids[:k], self.frames[:k], self.annotations[:k])


class Davis:
    """A DAVIS-2017 root: ``Davis(root).sequences("val", ["blackswan"])``.

    ``need_frames``: also require ``JPEGImages/480p/<seq>/`` (propagation does; scoring does not).
    """

    def __init__(self, root: str | Path, need_frames: bool = False):
        self.root = Path(root).expanduser()
        self.need_frames = need_frames
        if not self.root.is_dir():
            raise TaskError(f"--davis-root {self.root} does not exist or is not a folder; point it at the DAVIS "
                            "folder holding JPEGImages/, Annotations/ and ImageSets/")
        parts = [self.annotations_dir, self.root / "ImageSets" / "2017"]
        if need_frames:
            parts.insert(0, self.frames_dir)
        for part in parts:
            if not part.is_dir():
                raise TaskError(f"{part} is missing: {self.root} is not a DAVIS-2017 folder "
                                "(expected JPEGImages/480p/, Annotations/480p/, ImageSets/2017/)")

    @property
    def frames_dir(self) -> Path:
        return self.root / "JPEGImages" / RESOLUTION

    @property
    def annotations_dir(self) -> Path:
        return self.root / "Annotations" / RESOLUTION

    def names(self, split: str = "val") -> list[str]:
        """The sequence names of ``ImageSets/2017/<split>.txt``, in file order."""
        safe_component(split, "set", "--set", TaskError, "give a set name such as val")
        path = self.root / "ImageSets" / "2017" / f"{split}.txt"
        if not path.is_file():
            raise TaskError(f"{path} is missing: --set {split} needs ImageSets/2017/{split}.txt")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise TaskError(f"{path} is not a UTF-8 text file ({err}); restore it from DAVIS-2017") from None
        names = [safe_component(line.strip(), "sequence name", f"{path} line {n}", TaskError, "fix the list")
                 for n, line in enumerate(lines, 1) if line.strip()]
        if not names:
            raise TaskError(f"{path} lists no sequence")
        return names

    def sequences(self, split: str = "val", only: list[str] | None = None, max_frames: int | None = None) -> list[Sequence]:
        """The split's sequences (filtered to ``only``, in split order), each checked on disk."""
        names = self.names(split)
        if only:
            for name in only:
                safe_component(name, "sequence name", "--sequences", TaskError, "give names listed in the set")
            unknown = [n for n in only if n not in names]
            if unknown:
                raise TaskError(f"--sequences: {', '.join(unknown)} not in ImageSets/2017/{split}.txt "
                                f"(it lists {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
            names = [n for n in names if n in set(only)]
        return [self.sequence(n).truncated(max_frames) for n in names]

    def sequence(self, name: str) -> Sequence:
        folder = self.annotations_dir / name
        annotations = sorted(folder.glob("*.png"))
        if not annotations:
            raise TaskError(f"{folder} is missing or holds no PNG: sequence {name!r} has no annotations")
        ids = [p.stem for p in annotations]
        frames = [self.frames_dir / name / f"{i}.jpg" for i in ids]
        if self.need_frames:
            found = sorted((self.frames_dir / name).glob("*.jpg"))
            if not found:
                raise TaskError(f"{self.frames_dir / name} is missing or holds no JPEG: sequence {name!r} has no frames")
            ids = [p.stem for p in found]
            frames = found
            annotations = [folder / f"{i}.png" for i in ids]
            if not annotations[0].is_file():
                raise TaskError(f"{annotations[0]} is missing: the first frame's mask is the input of propagation")
        return Sequence(name, ids, frames, annotations)

    def ground_truth(self, sequence: Sequence) -> np.ndarray:
        """n, H, W uint8 ids of every annotated frame, void (255) kept; equal sizes checked."""
        masks = read_masks(sequence.annotations, "annotation")
        first = masks[0].shape
        for path, mask in zip(sequence.annotations, masks):
            if mask.shape != first:
                raise TaskError(f"annotation {path} is {mask.shape[1]}×{mask.shape[0]}, the sequence's first "
                                f"mask {first[1]}×{first[0]}: all masks of a sequence have one size")
        return np.stack(masks)
