"""Batch prediction with a trained adapter (issue 12 §4): images from files, folders and globs →
top-k classes with probabilities, printed or written to one CSV/JSON file.

    paths = collect_images(["photo.jpg", "album/", "shots/*.png"])
    model, cfg = load_adapter("runs/demo")
    rows = predict_images(model, cfg, paths, batch_size=32, device="cpu", top_k=5)
    write_predictions("preds.csv", rows, top_k=5)

A row is ``{"path", "top": [{"class", "prob"}, ...]}`` (best first), or ``{"path", "error"}`` for an
image that could not be read: it is skipped (``strict=False``) or stops everything (``strict=True``).
Nothing here imports torch at its top: the CLI builds its parser without it.
"""
from __future__ import annotations

import csv
import glob
import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from lorevit.errors import UserError
from lorevit.utils.io import write_text

if TYPE_CHECKING:
    import torch

    from lorevit.config import Config
    from lorevit.model import PromptedClassifier

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")  # = readers'
OUTPUT_FORMATS = (".csv", ".json")
GLOB_CHARS = ("*", "?", "[")


class UnreadableImageWarning(UserWarning):
    """An input image that could not be read was skipped (the CLI shows it as one ``lorevit: warning:`` line)."""


class PredictError(UserError, ValueError):
    """A prediction input or output the user named is wrong; the message names it and the fix."""


def output_format(path: str | Path) -> str:
    """``"csv"`` or ``"json"`` from the output file's suffix; anything else is a PredictError."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise PredictError(f"--output {path}: unknown format {suffix or '(no suffix)'!r}; "
                           f"name a .csv or a .json file (e.g. preds.csv)")
    return suffix[1:]


def _folder_images(folder: Path) -> list[Path]:
    """Every image below ``folder`` (recursively, image extensions only), in sorted order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def collect_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Image paths from files, folders (recursive) and globs (expanded here, so quoted globs work).

    An explicitly named file is kept whatever its suffix (a bad one is reported when read); folders and
    glob-matched folders contribute image files only. Order: as given, each folder/glob sorted; no duplicates.
    A missing path, a glob that matches nothing, or no images at all is a PredictError.
    """
    found: dict[Path, None] = {}
    for raw in inputs:
        text = str(raw)
        if Path(text).exists():
            matches = [Path(text)]
        elif any(c in text for c in GLOB_CHARS):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            if not matches:
                raise PredictError(f"{text}: the pattern matches no file or folder")
        else:
            raise PredictError(f"cannot read image {text}: no such file or folder")
        for match in matches:
            for path in (_folder_images(match) if match.is_dir() else [match]):
                found.setdefault(path, None)
    if not found:
        raise PredictError(f"no images found in {', '.join(map(str, inputs))} "
                           f"(image extensions: {' '.join(IMAGE_EXTENSIONS)})")
    return list(found)


def read_image(path: Path, transform: Callable) -> "torch.Tensor":
    """One image → a normalised (3, H, W) tensor; any decoding problem is a PredictError naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return transform(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:  # UnidentifiedImageError is an OSError
        raise PredictError(f"cannot read image {path}: {err}") from None


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def predict_images(model: "PromptedClassifier", cfg: "Config", paths: Sequence[str | Path], batch_size: int = 32,
                   device: "str | torch.device" = "cpu", top_k: int = 5, strict: bool = False,
                   progress: bool | None = None, warn: Callable[[str], None] | None = None) -> list[dict]:
    """Top-k classes of every image, in the order of ``paths``, with the eval transform of the adapter's run.

    ``progress``: a tqdm bar over the images (None: only when there is more than one batch and stderr is a
    terminal). An unreadable image gives ``{"path", "error"}`` and one ``warn(message)`` call (default: an
    :class:`UnreadableImageWarning`); with ``strict`` it raises PredictError instead. ``top_k`` is capped at the
    number of classes.
    """
    import torch
    from tqdm.auto import tqdm

    from lorevit.data.transforms import image_transforms

    if batch_size < 1 or top_k < 1:
        raise PredictError(f"--batch-size and --top-k must be at least 1 (got {batch_size} and {top_k})")
    warn = warn or (lambda message: warnings.warn(message, UnreadableImageWarning, stacklevel=3))
    transform = image_transforms(model.backbone.data_config, cfg.img_size, train=False, preset=cfg.transforms)
    model = model.to(device).eval()
    rows: list[dict] = []
    # tqdm's disable=None: shown only on a terminal
    disable = (not progress) if progress is not None else (None if len(paths) > batch_size else True)
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=disable)
    with bar, torch.inference_mode():
        for chunk in _batches(list(paths), batch_size):
            images, good = [], []
            for path in chunk:
                try:
                    images.append(read_image(Path(path), transform))
                    good.append(len(rows))
                    rows.append({"path": str(path)})
                except PredictError as err:
                    if strict:
                        raise PredictError(f"{err} (--strict: nothing written)") from None
                    warn(f"{err}; skipped")
                    rows.append({"path": str(path), "error": str(err)})
            if images:
                for i, top in zip(good, top_classes(model, torch.stack(images).to(device), top_k)):
                    rows[i]["top"] = top
            bar.update(len(chunk))
    return rows


def top_classes(model: "PromptedClassifier", images: "torch.Tensor", top_k: int) -> list[list[dict]]:
    """The ``top_k`` most probable classes (softmax of the logits) of each image of a normalised batch (B, 3, H, W):
    per image ``[{"class", "prob"}, ...]``, best first; ``top_k`` is capped at the number of classes."""
    import torch

    with torch.inference_mode():
        probs = model(images).logits.float().softmax(-1)  # B, classes
    values, classes = probs.topk(min(top_k, model.num_classes), dim=-1)  # B, k
    return [[{"class": model.classnames[c], "prob": v} for v, c in zip(vals, idxs)]
            for vals, idxs in zip(values.cpu().tolist(), classes.cpu().tolist())]


def predictions_csv(rows: Sequence[dict], top_k: int) -> str:
    """One line per predicted image: ``path, class_1, prob_1, ..., class_k, prob_k`` (skipped images left out)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path"] + [name for i in range(1, top_k + 1) for name in (f"class_{i}", f"prob_{i}")])
    for row in rows:
        if "top" in row:
            writer.writerow([row["path"]] + [x for t in row["top"] for x in (t["class"], f"{t['prob']:.6f}")])
    return buffer.getvalue()


def predictions_json(rows: Sequence[dict], top_k: int, adapter: str | None = None) -> dict:
    """``{"adapter", "top_k", "count", "skipped", "skipped_files": [{path, error}], "predictions": [{path, top}]}``."""
    predicted = [row for row in rows if "top" in row]
    skipped = [row for row in rows if "top" not in row]
    return {"adapter": adapter, "top_k": top_k, "count": len(predicted), "skipped": len(skipped),
            "skipped_files": skipped, "predictions": predicted}


def write_predictions(path: str | Path, rows: Sequence[dict], top_k: int, adapter: str | None = None) -> Path:
    """The whole file at once (atomic): CSV or JSON by ``path``'s suffix."""
    fmt = output_format(path)
    k = max((len(row["top"]) for row in rows if "top" in row), default=top_k)
    text = predictions_csv(rows, k) if fmt == "csv" else json.dumps(predictions_json(rows, k, adapter), indent=2) + "\n"
    return write_text(path, text)
