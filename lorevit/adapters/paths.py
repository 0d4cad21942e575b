"""Where an adapter is: file names, local folders and Hub repo ids — pathlib only, no torch, so that the command
line can refuse a missing adapter at once, before seconds of imports (:func:`check_adapter_reference`)."""
from __future__ import annotations

import re
from pathlib import Path

from lorevit.errors import UserError

FILENAME = "adapter.safetensors"
HUB_FILENAME = "model.safetensors"  # the same format inside a hub-style folder (lorevit.adapters.hub)
# A Hub repo id: "org/name" (letters, digits, -, _, .); never a path that exists here.
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class AdapterError(UserError, ValueError):
    """An adapter that cannot be found, read or put on the backbone given; the message says what to do."""


def adapter_file(path: str | Path) -> Path | None:
    """The adapter file of a local run directory, hub-style folder or ``.safetensors`` file; None if there is none."""
    path = Path(path)
    if path.is_dir():
        for name in (FILENAME, HUB_FILENAME):
            if (path / name).is_file():
                return path / name
        return None
    return path if path.is_file() else None


def looks_like_repo_id(text: str) -> bool:
    """``org/name`` that is not a local path (``runs/x`` where ``runs/`` exists here is a local path)."""
    return bool(REPO_ID.match(text)) and not Path(text.split("/")[0]).exists()


def missing_adapter(path: str | Path) -> AdapterError:
    return AdapterError(f"no adapter at {path}: pass a run's output directory (it holds {FILENAME}), a folder "
                        f"written by `lorevit hub save` ({HUB_FILENAME}), or a Hugging Face Hub repo id org/name")


def check_adapter_reference(path: str | Path) -> None:
    """Raise :func:`missing_adapter` unless ``path`` is a local adapter or could be a Hub repo id (tried later)."""
    if adapter_file(path) is None and (Path(path).exists() or not looks_like_repo_id(str(path))):
        raise missing_adapter(path)
