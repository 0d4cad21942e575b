"""Keep freed tensor memory in the process on glibc (Linux) CPUs (issue 24).

PyTorch's CPU allocator asks glibc's ``malloc`` for every tensor. glibc serves a large request (a ViT's MLP
activations: 12.8 MB at batch 32 for ViT-S/14 at 112 px) from fresh ``mmap`` pages and gives them back on ``free``,
or trims the heap once its free top passes a threshold; either way the next tensor touches new pages, and each
4 KB page costs a page fault and its zeroing in the op that first writes it. Measured on this project's 2-core
machine (ViT-S/14, 112 px, batch 32, 1 thread): 22,000 faults per forward for the plain ViT and 85,000 for
LORE and VPT-deep (their extra key/value buffers shift the heap past the trim point) — 5–10 % of LORE's time
and a large part of its gap to the plain ViT. With the thresholds below: no fault after the first batch; ≈ 20 %
faster at 1 thread, 7–9 % at 2 (docs/inference.md).

The tuning changes no result (only where memory comes from). It raises the process's resident memory by at
most :data:`TRIM_THRESHOLD` of freed memory kept for reuse. Set ``LOREVIT_MALLOC=default`` to leave glibc's
defaults (the same switch as ``GLIBC_TUNABLES`` or ``LD_PRELOAD`` of jemalloc/tcmalloc, which also avoid the
faults: with one of those set, lorevit leaves the allocator alone).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MMAP_THRESHOLD = 256 << 20  # requests below it come from the heap (glibc: 128 KB, rising with each free)
TRIM_THRESHOLD = 1 << 30  # the heap is trimmed only when this much at its top is free (glibc: 2 × the above)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>
_tuned: bool | None = None  # None: not asked yet in this process


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds so that freed tensor memory is reused, not re-faulted.

    Once per process; returns whether the tuning is in effect. ``False`` (nothing changed): not Linux/glibc,
    ``LOREVIT_MALLOC=default``, or the allocator already chosen by the user (``GLIBC_TUNABLES`` with a malloc
    setting, ``LD_PRELOAD`` of another allocator). Called by the ``lorevit`` command; from Python, call it once
    at the start of an inference or training process.
    """
    global _tuned
    if _tuned is None:
        _tuned = _tune()
    return _tuned


def is_tuned() -> bool:
    """Whether :func:`keep_freed_memory` is in effect in this process (recorded in env.json and benchmarks)."""
    return bool(_tuned)


def _tune() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("LOREVIT_MALLOC", "").lower() == "default":
        return False
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "") or any(
            name in os.environ.get("LD_PRELOAD", "") for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    # Trim first: setting the mmap threshold also stops glibc's dynamic adjustment of both.
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
