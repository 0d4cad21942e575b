"""V1, "moving cut-outs": a DAVIS-2017-layout video set built from real images (TASKS_SPEC §4).

Real textures cut by exact masks move over real backgrounds at 854×480 along known paths
(linear plus sinusoid, scale 0.8–1.2, rotation ±15°), with z-order occlusion and one object that
leaves the frame and comes back; the camera pans slowly over the background. The masks are exact
by construction (the same warped binary alpha composites the object and writes its id).

    <root>/DAVIS/JPEGImages/480p/<seq>/00000.jpg ...   (JPEG quality 90)
    <root>/DAVIS/Annotations/480p/<seq>/00000.png ...  (VOC palette, ids 1..N in z-order)
    <root>/DAVIS/ImageSets/2017/val.txt

Sprites: the scikit-image ``horse`` silhouette filled with ``chelsea``'s fur, an elliptical cut of
``astronaut``'s face, a polygon cut of ``rocket``'s body. Backgrounds (:data:`BACKGROUNDS`): ``china``
(scikit-learn), ``building.jpg`` (Debian opencv-doc; without it: ``coffee``), ``coffee``, ``astronaut``.
The photos are read through :mod:`.photos` (the horse silhouette, a mask, is ``skimage.data.horse()``).

Proves: the whole propagation (one-hot, queue, neighbourhood, top-k, upsampling, resize back, ids)
and the evaluator on real textures. Does not prove: robustness to deformation, appearance change or
real occlusion; the numbers are not comparable to DAVIS. Deterministic and idempotent.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from lorevit.tasks.standins import photos
from lorevit.tasks.video.davis import write_mask

VERSION = 1
WIDTH, HEIGHT = 854, 480
QUALITY = 90
# a background's name (written to standins.json) → its photos in :mod:`.photos`, the first installed one
# is used: without opencv-doc, "building" is coffee (still a real photo)
BACKGROUNDS = {"china": ("sl:china.jpg",), "building": ("cv:building.jpg", "sk:coffee.png"),
               "coffee": ("sk:coffee.png",), "astronaut": ("sk:astronaut.png",)}


# -- sprites (RGBA with a binary alpha) ---------------------------------------------------------------

def _horse() -> np.ndarray:
    from skimage import data

    silhouette = ~data.horse()  # True on the horse
    h, w = silhouette.shape
    fur = np.asarray(Image.fromarray(photos.array("sk:chelsea.png")).resize((w, h), Image.BICUBIC))
    return np.dstack([fur, silhouette.astype(np.uint8) * 255])


def _face() -> np.ndarray:
    image = photos.array("sk:astronaut.png")[20:200, 160:290]  # hair and face
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    ellipse = ((xx - w / 2 + 0.5) / (w / 2)) ** 2 + ((yy - h / 2 + 0.5) / (h / 2)) ** 2 <= 1
    return np.dstack([image, ellipse.astype(np.uint8) * 255])


def _rocket() -> np.ndarray:
    image = photos.array("sk:rocket.jpg")[120:420, 290:355]
    polygon = [(32, 6), (18, 40), (14, 120), (10, 290), (56, 290), (50, 120), (47, 40)]
    alpha = Image.new("L", (image.shape[1], image.shape[0]), 0)
    ImageDraw.Draw(alpha).polygon(polygon, fill=255)
    return np.dstack([image, np.asarray(alpha)])


def _background(name: str, pan: int) -> np.ndarray:
    """The real photo of :data:`BACKGROUNDS` (or its fallback) resized to cover (854 + pan) × 480."""
    candidates = BACKGROUNDS[name]
    image = photos.array(next(iter(photos.available(candidates)), candidates[0]))  # none: the first one's error
    h, w = image.shape[:2]
    scale = max((WIDTH + pan) / w, HEIGHT / h)
    size = (math.ceil(w * scale), math.ceil(h * scale))
    image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
    top = (image.shape[0] - HEIGHT) // 2
    return image[top: top + HEIGHT, : WIDTH + pan]


# -- motion ------------------------------------------------------------------------------------------

@dataclass
class Path2D:
    """Centre (x, y) = start + t·velocity + amplitude·sin(2π t / period); scale and angle linear + sinusoid."""
    start: tuple[float, float]
    velocity: tuple[float, float]
    amplitude: tuple[float, float] = (0.0, 20.0)
    period: float = 30.0
    scale: tuple[float, float] = (1.0, 1.0)  # first → last frame, within 0.8–1.2
    angle: float = 10.0  # degrees, ± this amplitude
    base: float = 1.0  # sprite size factor

    def at(self, t: int, n: int) -> tuple[float, float, float, float]:
        phase = math.sin(2 * math.pi * t / self.period)
        x = self.start[0] + t * self.velocity[0] + self.amplitude[0] * phase
        y = self.start[1] + t * self.velocity[1] + self.amplitude[1] * phase
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * t / max(n - 1, 1)
        return x, y, self.base * s, self.angle * math.sin(2 * math.pi * t / (1.7 * self.period))


def _place(sprite: np.ndarray, x: float, y: float, scale: float, angle: float):
    """The sprite scaled and rotated: (rgb, alpha bool, top-left) for compositing at centre (x, y)."""
    h, w = sprite.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    rgb = Image.fromarray(np.ascontiguousarray(sprite[..., :3])).resize(size, Image.BILINEAR)
    alpha = Image.fromarray(np.ascontiguousarray(sprite[..., 3])).resize(size, Image.NEAREST)
    rgb = rgb.rotate(angle, Image.BILINEAR, expand=True)
    alpha = alpha.rotate(angle, Image.NEAREST, expand=True)
    rgb, alpha = np.asarray(rgb), np.asarray(alpha) > 127
    return rgb, alpha, (round(y - alpha.shape[0] / 2), round(x - alpha.shape[1] / 2))


def _composite(frame: np.ndarray, labels: np.ndarray, rgb, alpha, top_left, obj_id: int) -> None:
    """Paste in place where alpha is set, clipped to the frame; the id goes to ``labels``."""
    y0, x0 = top_left
    h, w = alpha.shape
    fy0, fx0 = max(y0, 0), max(x0, 0)
    fy1, fx1 = min(y0 + h, HEIGHT), min(x0 + w, WIDTH)
    if fy0 >= fy1 or fx0 >= fx1:
        return
    sub = alpha[fy0 - y0: fy1 - y0, fx0 - x0: fx1 - x0]
    frame[fy0:fy1, fx0:fx1][sub] = rgb[fy0 - y0: fy1 - y0, fx0 - x0: fx1 - x0][sub]
    labels[fy0:fy1, fx0:fx1][sub] = obj_id


@dataclass
class Spec:
    name: str
    background: str
    frames: int
    pan: int  # camera pan in px over the sequence
    objects: list[tuple[Callable[[], np.ndarray], Path2D]]  # in z-order, id = position + 1 (later = in front)


SEQUENCES = [
    Spec("cutout-cat-horse", "china", 50, 60,
         [(_horse, Path2D((200, 260), (8.0, 0.0), (0, 25), 25, (0.8, 1.1), 12, 0.8))]),
    Spec("cutout-crossing", "building", 48, 40,
         [(_face, Path2D((640, 250), (-7.0, 0.0), (0, 30), 24, (1.2, 0.9), 15, 1.1)),
          (_rocket, Path2D((200, 250), (8.0, -0.5), (0, 15), 30, (0.9, 1.1), 8, 1.0))]),
    Spec("cutout-leave-return", "coffee", 60, 0,
         [(_horse, Path2D((180, 300), (2.0, 0.0), (20, 15), 40, (0.8, 0.9), 8, 0.7)),
          (_face, Path2D((560, 200), (0.0, 0.0), (420, 10), 64, (1.0, 1.0), 10, 0.9)),  # leaves right, returns
          (_rocket, Path2D((420, 260), (-2.0, 0.0), (40, 20), 30, (1.0, 1.2), 15, 0.8))]),
    Spec("cutout-zoom", "astronaut", 40, 30,
         [(_rocket, Path2D((300, 240), (4.0, 0.0), (10, 20), 20, (0.8, 1.2), 15, 1.0)),
          (_horse, Path2D((620, 300), (-5.0, 0.0), (0, 20), 20, (1.0, 0.8), 10, 0.6))]),
]


def render(spec: Spec, t: int, sprites: dict, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame t of a sequence: (H, W, 3 uint8 image, H, W uint8 ids)."""
    shift = round(spec.pan * t / max(spec.frames - 1, 1))
    frame = background[:, shift: shift + WIDTH].copy()
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    for obj_id, (make, path) in enumerate(spec.objects, start=1):
        x, y, scale, angle = path.at(t, spec.frames)
        _composite(frame, labels, *_place(sprites[make.__name__], x, y, scale, angle), obj_id)
    return frame, labels


def _write_sequence(spec: Spec, davis: Path, sprites: dict) -> dict:
    background = _background(spec.background, spec.pan)
    frames_dir = davis / "JPEGImages" / "480p" / spec.name
    masks_dir = davis / "Annotations" / "480p" / spec.name
    frames_dir.mkdir(parents=True, exist_ok=True)
    visible = []
    for t in range(spec.frames):
        frame, labels = render(spec, t, sprites, background)
        Image.fromarray(frame).save(frames_dir / f"{t:05d}.jpg", quality=QUALITY)
        write_mask(masks_dir / f"{t:05d}.png", labels)
        visible.append(sorted(int(i) for i in np.unique(labels) if i))
    first = visible[0]
    if first != list(range(1, len(spec.objects) + 1)):
        raise RuntimeError(f"stand-in {spec.name}: frame 0 shows objects {first}, not all {len(spec.objects)}")
    return {"frames": spec.frames, "objects": len(spec.objects), "background": spec.background,
            "frames_without": {str(i): [t for t, v in enumerate(visible) if i not in v]
                               for i in range(1, len(spec.objects) + 1)}}


def build(root: str | Path, say: Callable[[str], None] = print) -> list[str]:
    """Build ``root/DAVIS`` (V1) if it is missing or stale; returns ``["DAVIS"]``."""
    root = Path(root)
    davis = root / "DAVIS"
    manifest = davis / "standins.json"
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text()).get("version") == VERSION:
                return ["DAVIS"]
        except json.JSONDecodeError:
            pass
    say(f"[video] building the moving cut-outs stand-in under {davis}")
    tmp = root / ".DAVIS.building"
    shutil.rmtree(tmp, ignore_errors=True)
    sprites = {f.__name__: f() for f in (_horse, _face, _rocket)}
    info = {spec.name: _write_sequence(spec, tmp, sprites) for spec in SEQUENCES}
    (tmp / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (tmp / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{s.name}\n" for s in SEQUENCES))
    (tmp / "standins.json").write_text(json.dumps({"version": VERSION, "kind": "V1 moving cut-outs",
                                                   "size": [WIDTH, HEIGHT], "jpeg_quality": QUALITY,
                                                   "sequences": info}, indent=2) + "\n")
    shutil.rmtree(davis, ignore_errors=True)
    tmp.rename(davis)
    return ["DAVIS"]
