"""One run per output folder: a lock file holding the owner's pid, host and job (issue 25 §2).

A second run on the same ``--output`` is refused with the first's pid and host. A lock left by a process that is
gone — on this host (its pid no longer runs) or an earlier attempt of the same SLURM job (a requeue, maybe on
another node) — is taken over with a warning. Only the launching process takes the lock: the ranks a launcher starts
(LOCAL_RANK / RANK / SLURM_PROCID > 0) run inside rank 0's."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from lorevit.errors import RunError

LOCK_FILE = ".lorevit.lock"
log = logging.getLogger("lorevit")


def _is_launched_rank() -> bool:
    """A process started by a launcher for another rank (DDP's children, srun's other tasks, a torchrun worker)."""
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in ("LOCAL_RANK", "RANK", "SLURM_PROCID", "NODE_RANK"))


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "job": os.environ.get("SLURM_JOB_ID"),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def _stale(owner: dict) -> str | None:
    """Why the lock's owner is gone (so the lock may be taken over), or None when it may still run."""
    job = os.environ.get("SLURM_JOB_ID")
    if job and owner.get("job") == job:
        return f"an earlier attempt of this SLURM job {job}"
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int) and not _alive(owner["pid"]):
        return f"pid {owner['pid']} on this host no longer runs"
    return None


def _read(path: Path) -> dict | None:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(_owner(), f)
    return True


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lorevit.lock`` while the block runs; removed at its end (also on errors and preemption)."""
    if _is_launched_rank():
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    for _ in range(3):  # a lock removed or taken over between our tries: try again
        if _create(path):
            break
        owner = _read(path)
        if owner is None:  # being written this instant, or damaged: look again shortly
            time.sleep(0.2)
            owner = _read(path) or {}
        why = _stale(owner)
        if why is None:
            raise RunError(f"{out} is in use by another lorevit run (pid {owner.get('pid', '?')} on host "
                           f"{owner.get('host', '?')}, since {owner.get('since', '?')}); wait for it to finish or "
                           f"choose another --output (if that run is gone, delete {path})")
        log.warning("%s: taking over a stale lock (%s)", path, why)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        raise RunError(f"{out}: cannot take the lock {path}; another run keeps taking it — choose another --output")
    try:
        yield
    finally:
        if (_read(path) or {}).get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
