"""What ``lorevit app`` shows, without any UI: an adapter loaded once, and the three views of the page as data.

- :meth:`Explorer.classify`: top-k classes (:func:`lorevit.tools.predict.top_classes`, as ``lorevit predict``) and
  the panels of the paper's Fig. 3 (:func:`lorevit.tools.visualize.fig3_setup`, as ``lorevit visualize``): the image
  as the model sees it, the Black Box's CLS attention, the adapter's CLS attention and, for the LORE family, KLA's
  attention for the predicted and (when known) the true class;
- :meth:`Explorer.correspond`: a point on image A → the cosine of its upsampled patch token with every pixel of
  image B and the best match (:func:`lorevit.tasks.correspondence.matching.cosine_maps_trick`, as ``lorevit
  correspondence``), for the Black Box (B-B) and for the adapter's prompts (:func:`lorevit.tasks.features.load_extractor`);
- :meth:`Explorer.sample`: images of the adapter's own test split, to pick instead of uploading.

A merged export (``lorevit export --merge --format timm``: a plain timm ViT with the task head, the file or a folder
holding it) loads too (:meth:`Explorer.load`): top-k classes, the merged ViT's CLS attention and its correspondence
work as for an adapter; what needs the ViT before merging (the Black Box panel, B-B) or LORE's White Box (KLA) is not
in such a file, and each view says so in its ``note``.

Bad input (a file that is not an image, an image of more than :data:`MAX_PIXELS` pixels, a point outside the image)
is an :class:`AppError` whose message the page shows. Every panel is a uint8 (H, W, 3) array.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lorevit.app.errors import AppError
from lorevit.errors import UserError
from lorevit.tools.predict import top_classes
from lorevit.tools.export import TimmExport
from lorevit.tools.visualize import (display_images, fig3_setup, method_title, overlay_image, upsample_maps,
                                     Fig3Setup)
from lorevit.tools.locality import changes_the_vit

MERGED_CLASSIFY_NOTE = ("a merged export is a plain timm ViT: the Black Box panel needs the ViT before merging and the "
                        "KLA panels LORE's White Box, neither of which is in the file; pass the adapter itself (its run "
                        "folder, hub-style folder or Hub repo id) to --adapter to see them")
MERGED_MATCH_NOTE = ("B-B needs the ViT before merging, which a merged export does not hold; pass the adapter itself "
                     "to --adapter to compare with it")

MAX_PIXELS = 40_000_000  # an upload of more pixels is refused before it is decoded (PIL reads the size first)
PANEL_SIDE = 224  # Fig. 3 panels are shown at this size (the model sees cfg.img_size)
MATCH_SIDE = 448  # correspondence images are shown (and matched) with their long side at most this
MATCH_INPUT = 224  # the square input of the ViT for correspondence features (TASKS_SPEC §2's size)
SAMPLE_COUNT = 12  # test images offered to pick, spread over the classes


@dataclass
class Classification:
    top: list[dict]  # [{"class", "prob"}, ...], best first
    predicted: str
    true: str | None
    panels: list[tuple[np.ndarray, str]] = field(default_factory=list)  # (uint8 H, W, 3, caption), Fig. 3's order
    note: str | None = None  # what this view cannot show, and why (a merged export)


@dataclass
class Match:
    source: str  # "B-B" or the adapter's method
    best: tuple[int, int]  # [x, y] in image B's pixels
    cosine: float  # at the best match
    panel: np.ndarray  # image B with the similarity map and the best match drawn


@dataclass
class Correspondence:
    point: tuple[int, int]  # [x, y] in image A's pixels
    source_panel: np.ndarray  # image A with the point drawn
    matches: list[Match]
    note: str | None = None  # what this view cannot show, and why (a merged export)


def open_picture(path: str | Path, max_pixels: int = MAX_PIXELS) -> "Image.Image":
    """An uploaded file → an RGB PIL image; not an image, unreadable, or more than ``max_pixels`` → AppError."""
    from PIL import Image

    name = Path(path).name
    try:
        image = Image.open(path)
    except Image.DecompressionBombError:
        raise AppError(f"{name} is too large an image (more than {max_pixels / 1e6:.0f} megapixels); "
                       "resize it and upload it again") from None
    except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
        raise AppError(f"{name} is not an image that can be read ({type(err).__name__}); upload a JPEG, PNG, "
                       "WebP, BMP, TIFF or GIF file") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise AppError(f"{name} is {width}×{height} px, more than {max_pixels / 1e6:.0f} megapixels; "
                           "resize it and upload it again")
        try:
            return image.convert("RGB")  # the full decode: a truncated file fails here
        except (OSError, ValueError, SyntaxError) as err:
            raise AppError(f"{name} could not be decoded ({err}); upload another image") from None


def fit_picture(image: "Image.Image", side: int = MATCH_SIDE) -> "Image.Image":
    """``image`` scaled down (aspect kept, bicubic) so that its long side is at most ``side``; smaller ones as they are."""
    from PIL import Image

    scale = side / max(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)


def draw_point(pixels: np.ndarray, xy: tuple[int, int], colour=(255, 255, 255)) -> np.ndarray:
    """A ringed dot at ``xy`` [x, y] on a uint8 (H, W, 3) picture (a copy), sized to the picture."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    r = max(3, round(max(image.size) / 60))
    x, y = xy
    draw.ellipse((x - r - 2, y - r - 2, x + r + 2, y + r + 2), fill=(0, 0, 0))
    draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return np.asarray(image)


def _scaled(maps: torch.Tensor) -> np.ndarray:
    """A (H, W) map scaled to [0, 1] (constant maps → 0)."""
    values = maps.float().cpu().numpy()
    low, high = values.min(), values.max()
    return (values - low) / max(high - low, 1e-12)


class Explorer:
    """An adapter loaded once for the page. Calls are serialised (one lock): the page may call from many threads."""

    def __init__(self, setup: Fig3Setup, adapter: str | Path, weights: str | None = "unset", strict: bool = False,
                 top_k: int = 5, merged: "TimmExport | None" = None):
        if top_k < 1:
            raise AppError(f"--top-k must be at least 1 (got {top_k})")
        self.setup, self.adapter, self.weights, self.strict, self.top_k = setup, adapter, weights, strict, top_k
        self.merged = merged  # the merged export the model was rebuilt from, else None (an adapter)
        self._lock = threading.Lock()
        self._extractors = None
        self._samples = None

    @classmethod
    def load(cls, adapter: str | Path, weights: str | None = "unset", strict: bool = False, top_k: int = 5) -> "Explorer":
        """An adapter (run folder, hub-style folder, adapter file, Hub repo id), loaded as ``lorevit visualize`` does,
        or a merged timm export (the ``.safetensors`` file ``lorevit export --merge --format timm`` writes, or a folder
        holding it): then ``weights`` and ``strict`` do not apply (the ViT's weights are in the file)."""
        from lorevit.tools.export import timm_export_file

        if Path(adapter).suffix == ".onnx":
            raise AppError(f"{adapter} is an ONNX export (a graph, no attention maps or features to show): pass the "
                           "adapter it was exported from, or a merged timm export (lorevit export --merge --format timm)")
        file = timm_export_file(adapter)
        if file is None:
            return cls(fig3_setup(adapter, weights, strict), adapter, weights, strict, top_k)
        if weights != "unset" or strict:
            raise AppError(f"{adapter} is a merged export: its ViT's weights are in the file, so --weights and --strict "
                           "do not apply; drop them (or pass the adapter itself)")
        return cls.from_merged(file, top_k)

    @classmethod
    def from_merged(cls, file: str | Path, top_k: int = 5) -> "Explorer":
        """A merged timm export (:func:`lorevit.tools.export.read_timm_export`): its classifier, no Black Box, no KLA."""
        from lorevit.config import Config
        from lorevit.data.transforms import image_transforms
        from lorevit.tools.export import read_timm_export

        export = read_timm_export(file)
        model = export.classifier()
        cfg = Config(method=export.method, backbone=export.backbone, weights=str(export.path), img_size=export.img_size,
                     backbone_kwargs=export.backbone_kwargs, transforms=export.transforms)
        transform = image_transforms(model.backbone.data_config, export.img_size, train=False, preset=export.transforms)
        return cls(Fig3Setup(model, cfg, transform, None, None), export.path, top_k=top_k, merged=export)

    # ------------------------------------------------------------------ what the page says about the adapter
    @property
    def classnames(self) -> list[str]:
        return list(self.setup.model.classnames)

    @property
    def method(self) -> str:
        """How the adapter's method is named on the page ("LORE" for lore; "lora (merged)" for a merged export)."""
        title = method_title(self.setup.cfg.method)
        return f"{title} (merged)" if self.merged is not None else title

    def describe(self) -> str:
        cfg = self.setup.cfg
        if self.merged is not None:
            return (f"merged {method_title(cfg.method)} export {self.adapter} · a plain timm {cfg.backbone} at "
                    f"{cfg.img_size} px · {len(self.classnames)} classes (no Black Box, KLA or B-B views: they need "
                    "the adapter itself)")
        return (f"{self.method} adapter {self.adapter} · {cfg.backbone} at {cfg.img_size} px · "
                f"{len(self.classnames)} classes of {cfg.dataset}")

    # ------------------------------------------------------------------ classification and Fig. 3
    def _class_index(self, name: str | None) -> int | None:
        if name is None:
            return None
        if name not in self.classnames:
            raise AppError(f"{name!r} is not one of the adapter's classes")
        return self.classnames.index(name)

    def classify(self, picture: "Image.Image", true_class: str | None = None) -> Classification:
        """Top-k classes of ``picture`` and Fig. 3's panels (KLA also for ``true_class`` when given and LORE)."""
        setup = self.setup
        true_index = self._class_index(true_class)
        with self._lock:
            images = setup.transform(picture.convert("RGB"))[None]  # 1, 3, S, S
            top = top_classes(setup.model, images, self.top_k)[0]
            maps = setup.maps(images)  # KLA queried with the predicted class
            true_maps = setup.maps(images, torch.tensor([true_index])) if (
                true_index is not None and maps["kla"] is not None) else None
        shown = self._panel_picture(images)
        predicted = self.classnames[int(maps["predicted"][0])]

        def panel(grid: torch.Tensor) -> np.ndarray:
            return overlay_image(shown, upsample_maps(grid, shown.shape[:2])[0])

        if self.merged is not None:  # the model's ViT is the merged one: no Black Box to show beside it, no KLA
            return Classification(top, predicted, true_class,
                                  [(np.round(shown * 255).astype(np.uint8), "image (as the model sees it)"),
                                   (panel(maps["model"]), f"{self.method} CLS attention")], MERGED_CLASSIFY_NOTE)
        panels = [(np.round(shown * 255).astype(np.uint8), "image (as the model sees it)"),
                  (panel(maps["blackbox"]), "Black Box CLS attention"),
                  (panel(maps["model"]), f"{self.method} CLS attention")]
        if maps["kla"] is not None:
            panels.append((panel(maps["kla"]), f"KLA attention (predicted: {predicted})"))
        if true_maps is not None:
            panels.append((panel(true_maps["kla"]), f"KLA attention (true: {true_class})"))
        return Classification(top, predicted, true_class, panels)

    def _panel_picture(self, images: torch.Tensor) -> np.ndarray:
        """The model's view of the image (resized, centre-cropped), de-normalised and enlarged to PANEL_SIDE: (H, W, 3) in [0, 1]."""
        from PIL import Image

        pixels = np.round(display_images(images, self.setup.model.backbone.data_config)[0] * 255).astype(np.uint8)
        side = max(PANEL_SIDE, pixels.shape[0])
        return np.asarray(Image.fromarray(pixels).resize((side, side), Image.BICUBIC), dtype=np.float32) / 255

    # ------------------------------------------------------------------ images to pick
    def samples(self) -> dict[str, tuple[int, str]]:
        """{"test #i · class": (index, class)} for up to SAMPLE_COUNT test images of the adapter's own dataset, spread
        over the classes; empty when that dataset is not on this machine (an adapter from the Hub, say) or not known
        (a merged export does not record it)."""
        if self._samples is None and self.merged is not None:
            self._data, self._samples = None, {}
        if self._samples is None:
            from lorevit.data import subset_indices
            from lorevit.tools.visualize import adapter_dataset

            try:
                data = adapter_dataset(self.setup.model, self.setup.cfg, None, None, "test", None)
            except (UserError, OSError):
                self._data, self._samples = None, {}
                return self._samples
            indices = subset_indices(len(data), SAMPLE_COUNT, 0, targets=data.targets)
            self._data = data
            self._samples = {f"test #{i} · {self.classnames[int(data.targets[i])]}":
                             (i, self.classnames[int(data.targets[i])]) for i in indices}
        return self._samples

    def sample(self, name: str) -> tuple["Image.Image", str]:
        """The picked test image and its true class."""
        if name not in self.samples():
            raise AppError(f"no test image named {name!r}")
        index, label = self._samples[name]
        try:
            return self._data.load_image(index), label
        except (OSError, ValueError, SyntaxError) as err:
            raise AppError(f"{self._data.describe(index)} could not be read ({err})") from None

    # ------------------------------------------------------------------ correspondence
    def extractors(self) -> list:
        """[B-B, the adapter] feature extractors at any input size, built on first use (the ViT loads once more, with
        ``dynamic_img_size``). B-B shares the adapter's ViT unless the method changes it from inside. A merged export:
        [the merged ViT] only."""
        with self._lock:
            if self._extractors is None and self.merged is not None:
                from lorevit.tasks.features import FeatureExtractor

                provenance = {"source": "merged export", "label": self.method, "method": self.merged.method,
                              "backbone": self.merged.backbone, "export": str(self.merged.path)}
                self._extractors = [FeatureExtractor(self.merged.vit(dynamic_img_size=True), None, provenance)]
            if self._extractors is None:
                from lorevit.factory import resolve_weights
                from lorevit.tasks.features import FeatureExtractor, load_extractor

                adapted = load_extractor(self.adapter, weights=self.weights, strict=self.strict)
                if adapted.method is None:  # nothing of the method enters the ViT's tokens (a head-only method)
                    self._extractors = [adapted]
                    return self._extractors
                if changes_the_vit(self.setup.model):
                    cfg = self.setup.cfg
                    plain = load_extractor(None, cfg.backbone, resolve_weights(cfg, self.weights, self.adapter),
                                           cfg.backbone_kwargs)
                else:
                    plain = FeatureExtractor(adapted.backbone, None)
                self._extractors = [plain, adapted]
            return self._extractors

    def correspond(self, image_a: "Image.Image", image_b: "Image.Image", point: tuple[int, int]) -> Correspondence:
        """The point ``[x, y]`` of ``image_a`` (its own pixels) matched into ``image_b`` by B-B and by the adapter: the
        cosine map over every pixel of B (shown scaled to its range), its maximum and the best match."""
        from lorevit.tasks.correspondence.matching import argmax_xy, cosine_maps_trick
        from lorevit.tasks.features import to_tensor
        from PIL import Image

        x, y = int(round(point[0])), int(round(point[1]))
        if not (0 <= x < image_a.width and 0 <= y < image_a.height):
            raise AppError(f"the point ({x}, {y}) is outside image A ({image_a.width}×{image_a.height} px)")
        size_a, size_b = (image_a.height, image_a.width), (image_b.height, image_b.width)  # H, W
        picture_b = np.asarray(image_b.convert("RGB"), dtype=np.float32) / 255
        matches = []
        for extractor in self.extractors():
            def tokens(image):
                square = image.convert("RGB").resize((MATCH_INPUT, MATCH_INPUT), Image.BICUBIC)
                return extractor(to_tensor(square, extractor.mean, extractor.std)[None]).patches[0]  # h, w, d

            with self._lock:
                cosine = cosine_maps_trick(tokens(image_a), size_a, np.array([[x, y]]), tokens(image_b), size_b)[0]
            best = tuple(int(v) for v in argmax_xy(cosine[None])[0])
            panel = draw_point(overlay_image(picture_b, _scaled(cosine)), best)
            matches.append(Match(extractor.label, best, float(cosine[best[1], best[0]]), panel))
        source = draw_point(np.asarray(image_a.convert("RGB")), (x, y))
        return Correspondence((x, y), source, matches, MERGED_MATCH_NOTE if self.merged is not None else None)
