"""Where lorevit keeps what it downloads, converts and caches.

Everything lives under one data directory, ``$LOREVIT_HOME`` or ``~/.cache/lorevit``:

- ``weights/``   converted backbone weights (safetensors)
- ``text/``      cached knowledge (text) features, one file per encoder × class list
- ``downloads/`` wheels or archives fetched on the user's behalf
"""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    root = os.environ.get("LOREVIT_HOME") or Path.home() / ".cache" / "lorevit"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sub_dir(name: str) -> Path:
    path = data_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- names read from data files ------------------------------------------------------------------------
# A name a dataset's list or annotation file gives (a DAVIS sequence, a SPair category or image, a
# Revisited Oxford image id) becomes part of a path we read or write; ``../x`` or ``/x`` would leave
# the data or output folder. Both checks are pure string tests (no file system access).

def _unsafe_part(part: str) -> str | None:
    """Why ``part`` (one component, no separators) is not a plain name, or None when it is."""
    if part in (".", ".."):
        return f"it is {part!r}"
    if "\0" in part:
        return "it holds a NUL character"
    if len(part) >= 2 and part[1] == ":" and part[0].isascii() and part[0].isalpha():
        return "it starts with a drive letter"
    return None


def _unusable_text(value) -> str | None:
    """Why ``value`` cannot be a name at all (not a string, empty, padded with whitespace), or None."""
    if not isinstance(value, str):
        return f"not a string but {type(value).__name__}"
    if not value:
        return "it is empty"
    if value != value.strip():
        return "it starts or ends with whitespace"
    return None


def safe_component(name, what: str, source, error: type[Exception] = ValueError,
                   fix: str = "fix the file") -> str:
    """``name`` when it is one plain path component, else ``error(message)``.

    Refused: a non-string, empty, ``.``/``..``, a ``/`` or ``\\`` anywhere (so no absolute path),
    NUL, a drive letter (``C:``) and leading/trailing whitespace. ``source`` names where the name
    came from (e.g. ``"DAVIS/ImageSets/2017/val.txt line 3"``); the message is one line.
    """
    problem = _unusable_text(name)
    if problem is None:
        problem = "it holds a '/' or '\\'" if "/" in name or "\\" in name else _unsafe_part(name)
    if problem is None:
        return name
    raise error(f"{source}: {what} {name!r} is not a plain file or folder name ({problem}; "
                f"no '/', '\\', '..' or absolute paths); {fix}")


def safe_relative(path, what: str, source, error: type[Exception] = ValueError,
                  fix: str = "fix the file") -> str:
    """``path`` when it is a relative path that stays inside its root, else ``error(message)``.

    ``/`` and ``\\`` both separate components; refused: a non-string, empty, absolute (leading
    separator or drive letter), any ``..`` component, NUL, leading/trailing whitespace.
    """
    problem = _unusable_text(path) or ("it is absolute" if path[0] in "/\\" else None)
    if problem is None:
        parts = [p for p in path.replace("\\", "/").split("/") if p]
        problem = next(("it goes up with '..'" if p == ".." else f"its part {p!r}: {why}" for p in parts
                        if (why := _unsafe_part(p)) and p != "."), None)
        if problem is None and all(p == "." for p in parts):
            problem = "it names no file"
    if problem is None:
        return path
    raise error(f"{source}: {what} {path!r} is not a relative path inside the dataset folder ({problem}; "
                f"no leading '/', drive letter or '..'); {fix}")
