"""The one dataset class every reader fills: lazily decoded images plus integer labels."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate
from lorevit.errors import UserError

log = logging.getLogger("lorevit.data")

BAD_IMAGE_MODES = ("fail", "skip")


class DatasetError(UserError):
    """A dataset is missing, laid out wrongly or holds an unreadable file.

    The message names the problem, the expected on-disk layout and where to get the data.
    It takes a single message argument so that DataLoader workers can re-raise it intact.
    """


class BadImageWarning(UserWarning):
    """An unreadable image was skipped (``bad_images="skip"``)."""


class LabeledDataset(Dataset):
    """Images with integer labels and readable class names.

    ``items`` is either a list of image paths (decoded lazily, one per ``__getitem__``) or a
    uint8 array ``[N, H, W]`` / ``[N, H, W, 3]`` held in memory (idx, CIFAR).
    ``targets`` is available without decoding anything.

    With ``bad_images="fail"`` an unreadable image raises :class:`DatasetError` naming the file;
    with ``"skip"`` ``__getitem__`` returns ``None`` (drop it with :func:`collate_skip_bad`), warns
    with the path and records it in ``skipped`` (per process: DataLoader workers keep their own
    copies, so in the main process the list only covers images read there).
    """

    def __init__(
        self,
        name: str,
        split: str,
        items: Sequence[str] | np.ndarray,
        targets: Sequence[int],
        classnames: Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
        bad_images: str = "fail",
        root: str | Path | None = None,
    ) -> None:
        if bad_images not in BAD_IMAGE_MODES:
            raise DatasetError(
                f"bad_images must be one of {BAD_IMAGE_MODES}, got {bad_images!r}"
            )
        if len(items) != len(targets):
            raise DatasetError(
                f"{name}/{split}: {len(items)} images but {len(targets)} labels"
            )
        self.name = name
        self.split = split
        self.items = items
        self.targets: list[int] = [int(t) for t in targets]
        self.classnames: list[str] = list(classnames)
        self.transform = transform
        self.bad_images = bad_images
        self.root = str(root) if root is not None else None
        self.skipped: list[str] = []
        self.origins: dict[str, str] = {}  # {path: "list.csv line N"} (CSV datasets), named in errors
        bad = [t for t in set(self.targets) if not 0 <= t < len(self.classnames)]
        if bad:
            raise DatasetError(
                f"{name}/{split}: labels {sorted(bad)[:5]} outside 0..{len(self.classnames) - 1}"
            )

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.targets)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.items, np.ndarray)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def describe(self, i: int) -> str:
        """Where image ``i`` comes from: its path, or ``<name>/<split>[i]`` for in-memory data."""
        if self.in_memory:
            return f"{self.name}/{self.split}[{i}]"
        where = str(self.items[i])
        return f"{where} ({self.origins[where]})" if where in self.origins else where

    def __repr__(self) -> str:
        where = "in memory" if self.in_memory else f"root={self.root}"
        return (
            f"LabeledDataset({self.name!r}, split={self.split!r}, {len(self)} images, "
            f"{self.num_classes} classes, {where})"
        )

    def class_counts(self) -> list[int]:
        counts = np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=self.num_classes)
        return counts.tolist()

    def subset(self, indices: Sequence[int]) -> "LabeledDataset":
        """A new dataset holding only ``indices`` (same class list, transform and mode)."""
        idx = [int(i) for i in indices]
        items = self.items[np.asarray(idx, dtype=np.int64)] if self.in_memory else [self.items[i] for i in idx]
        part = LabeledDataset(
            self.name, self.split, items, [self.targets[i] for i in idx], self.classnames,
            self.transform, self.bad_images, self.root,
        )
        part.origins = self.origins
        return part

    # ----------------------------------------------------------------- loading
    def load_image(self, i: int) -> Image.Image:
        """Decode image ``i`` to an RGB PIL image (raises whatever PIL raises)."""
        if self.in_memory:
            return Image.fromarray(np.ascontiguousarray(self.items[i])).convert("RGB")
        with Image.open(self.items[i]) as img:
            return img.convert("RGB")  # convert() forces the full decode inside the `with`

    def __getitem__(self, i: int):
        try:
            img = self.load_image(i)
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad image
            where = self.describe(i)
            if self.bad_images == "fail":
                raise DatasetError(
                    f"cannot read image {where} of dataset {self.name!r} "
                    f"({type(exc).__name__}: {exc}). Replace or delete the file, or set "
                    f"bad_images='skip' (config key `bad_images: skip`) to skip unreadable images."
                ) from exc
            self.skipped.append(where)
            msg = f"skipping unreadable image {where} ({type(exc).__name__}: {exc})"
            log.warning(msg)
            warnings.warn(msg, BadImageWarning, stacklevel=2)
            return None
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[i]


def collate_skip_bad(batch: list):
    """``default_collate`` after dropping the ``None`` that skipped images return.

    Returns ``None`` when every sample of the batch was unreadable; training loops should
    skip such a batch.
    """
    kept = [b for b in batch if b is not None]
    if len(kept) < len(batch):
        log.info("dropped %d unreadable image(s) from a batch", len(batch) - len(kept))
    if not kept:
        return None
    return default_collate(kept)


def collate_train_batch(batch: list):
    """Training batches: ``(images, labels, index, skipped)``, never ``None``.

    ``skipped`` counts the batch's unreadable images (``bad_images="skip"``). A batch whose images are all
    unreadable still comes back, with empty tensors: every rank must run every step under DDP (a rank that
    skipped one would leave the others waiting in the gradient all-reduce), so the training step turns it
    into a zero-weight step instead.
    """
    kept = collate_skip_bad(batch)
    skipped = torch.tensor(len(batch) - (0 if kept is None else len(kept[0])))
    if kept is None:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), skipped
    return (*kept, skipped)
