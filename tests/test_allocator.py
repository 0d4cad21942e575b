"""lorevit.utils.allocator: freed tensor memory is reused instead of re-faulted (issue 24). Each case runs in a
fresh process: the allocator setting is process-wide and glibc's defaults adapt to what a process has freed."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

# Two 40 MB activations (a ViT-S/14 MLP's at batch 100) alive at once, written and freed together, again and again, as
# the blocks of a forward pass do; minor page faults counted after the first rounds. glibc's defaults serve requests
# above 32 MB (its largest dynamic mmap threshold) from fresh pages every time.
PROBE = """
import json, resource
from lorevit.utils.allocator import is_tuned, keep_freed_memory
tuned = keep_freed_memory()
import torch
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def rounds(n):
    for _ in range(n):
        live = [torch.ones(10_000_000) for _ in range(2)]
        del live
rounds(3)
start = faults()
rounds(20)
print(json.dumps({"tuned": tuned, "is_tuned": is_tuned(), "again": keep_freed_memory(), "faults": faults() - start}))
"""


def run_python(code: str, **env) -> object:
    """The JSON of the last line ``code`` prints, run in a fresh interpreter without any allocator choice of ours
    (``env`` adds one)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("LOREVIT_MALLOC", "GLIBC_TUNABLES", "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", code], env=environment | env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def probe(**env) -> dict:
    return run_python(PROBE, **env)


def test_freed_tensor_memory_is_reused_without_page_faults():
    default, tuned = probe(LOREVIT_MALLOC="default"), probe()
    assert tuned["tuned"] and tuned["is_tuned"] and tuned["again"]  # idempotent: the second call says the same
    # glibc's defaults: 9,766 faults per tensor (4 KB pages), 40 tensors
    assert default["faults"] > 200_000, default
    # tuned: the heap keeps them; what faults remain is the kernel reclaiming idle pages (DAMON on this machine)
    assert tuned["faults"] < default["faults"] / 3, (tuned, default)


def test_the_user_can_keep_the_defaults_or_their_own_allocator():
    for env in ({"LOREVIT_MALLOC": "default"}, {"LOREVIT_MALLOC": "DEFAULT"},
                {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"}):
        result = probe(**env)
        assert not result["tuned"] and not result["is_tuned"] and not result["again"], env


def test_the_command_line_sets_it(tmp_path):
    """``lorevit`` tunes before running the command (here one that fails on a missing folder: exit 2)."""
    code = ("import json\nfrom lorevit.cli.main import main\nfrom lorevit.utils.allocator import is_tuned\n"
            "before = is_tuned()\n"
            f"rc = main(['report', {str(tmp_path / 'missing')!r}])\n"
            "print(json.dumps([before, rc, is_tuned()]))")
    assert run_python(code) == [False, 2, True]
