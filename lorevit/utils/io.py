"""Atomic file writes: a crash or a bad input never leaves a half-written result behind."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from lorevit.errors import DiskFullError

# errno values of a full device, a quota and a file-size limit (RLIMIT_FSIZE); the Rust and C++ writers (safetensors,
# torch's zip writer) report them in their own words, so their texts are matched too
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
DISK_FULL_TEXTS = ("no space left", "file too large", "disk quota", "os error 28", "os error 27", "os error 122")


def is_disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
        return True
    return any(text in str(err).lower() for text in DISK_FULL_TEXTS)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    A full device (ENOSPC, a quota, a file-size limit) raises :class:`DiskFullError` naming ``path``: the previous
    file is unchanged and the partial one removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        if is_disk_full(err):
            raise DiskFullError(f"no space left to write {path} ({err}); free space or write elsewhere") from err
        raise
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are ordinary readable files
        os.replace(tmp, path)
    except Exception as err:
        if not is_disk_full(err) or isinstance(err, DiskFullError):
            raise
        kept = "the previous file is unchanged" if path.exists() else "nothing was written there"
        raise DiskFullError(f"no space left while writing {path} ({type(err).__name__}: {str(err)[:200]}); {kept} "
                            "and the partial file was removed; free space (or raise the quota) and run again, "
                            "or write elsewhere") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2) + "\n")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB chunks (adapter fingerprints in results and exports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
