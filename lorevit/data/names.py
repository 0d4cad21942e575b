"""Readable class names for the text prompt "This is a photo of a {class}."."""
from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Sequence

log = logging.getLogger("lorevit.data")

_WNID_PREFIX = re.compile(r"^n\d{8}[-_]")  # "n02085620-Chihuahua" (Stanford Dogs folders)


def clean_classname(raw: str) -> str:
    """The one place raw class names become prompt text.

    Drops a leading WordNet id (``n02085620-Chihuahua`` → ``Chihuahua``), turns underscores
    into spaces, collapses runs of whitespace and strips. Case is kept (``Ankle boot``).
    """
    name = _WNID_PREFIX.sub("", str(raw).strip())
    name = name.replace("_", " ")
    return re.sub(r"\s+", " ", name).strip()


def read_name_map(path: Path) -> dict[str, str]:
    """A ``classnames.txt`` mapping: ``<folder or id><TAB or space><readable name>`` per line."""
    from lorevit.data.dataset import DatasetError

    mapping: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path} is not a UTF-8 text file ({err}); write it as UTF-8: "
                           "<folder or id> <readable name> per line") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t", 1) if "\t" in line else line.split(None, 1)
        if len(parts) == 2:
            mapping[parts[0].strip()] = parts[1].strip()
    return mapping


def names_from_map(keys: Sequence[str], mapping: dict[str, str]) -> list[str]:
    return [clean_classname(mapping.get(k, k)) for k in keys]


def imagenet_classnames(wnids: Sequence[str], extra_maps: Sequence[Path] = ()) -> list[str]:
    """Readable names for ImageNet WordNet ids.

    Order of preference, per wnid: a ``classnames.txt`` in ``extra_maps`` (CoOp ships one:
    ``n01440764 tench``), open_clip's CLIP-style ``IMAGENET_CLASSNAMES`` (sorted-wnid order),
    timm's WordNet lemma (first comma-separated name), the wnid itself (with a warning).
    """
    mapping = dict(_imagenet_name_table())
    for path in extra_maps:  # later files win
        if Path(path).is_file():
            mapping.update(read_name_map(Path(path)))
    missing = [w for w in wnids if w not in mapping]
    if missing:
        log.warning(
            "no readable name for %d ImageNet class(es) (e.g. %s); using the wnid. Install timm/"
            "open_clip or put a classnames.txt (`<wnid> <name>` per line) in the dataset root.",
            len(missing), missing[:3],
        )
    return names_from_map(wnids, mapping)


@functools.lru_cache(maxsize=1)
def _imagenet_name_table() -> tuple[tuple[str, str], ...]:
    """(wnid, name) for the 1000 ImageNet-1k classes: open_clip's CLIP names, else timm's lemma."""
    mapping: dict[str, str] = {}
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo("imagenet-1k")
        synsets = list(info.label_names())
        lemmas = [d.split(",")[0] for d in info.label_descriptions()]
        mapping.update(zip(synsets, lemmas))
        try:
            from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

            if len(IMAGENET_CLASSNAMES) == len(synsets):
                mapping.update(zip(synsets, IMAGENET_CLASSNAMES))
        except ImportError:
            pass
    except ImportError:
        pass
    return tuple(mapping.items())


def wordnet_words(words_file: Path, wnids: Sequence[str]) -> list[str]:
    """Tiny-ImageNet ``words.txt`` (``wnid<TAB>name, other name, …``): the first name per wnid."""
    wanted = set(wnids)
    mapping: dict[str, str] = {}
    for line in Path(words_file).read_text(encoding="utf-8").splitlines():
        if "\t" not in line:
            continue
        wnid, words = line.split("\t", 1)
        if wnid in wanted:
            mapping[wnid] = words.split(",")[0]
    return names_from_map(wnids, mapping)
