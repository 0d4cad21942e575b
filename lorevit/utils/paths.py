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
