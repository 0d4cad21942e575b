"""``env.json`` beside every run's ``metrics.json`` (issue 12 §3): what produced the numbers.

    {"versions": {"lorevit", "python", "torch", "timm", "lightning", "open_clip", "numpy"},
     "device":   {"accelerator" (asked), "used", "gpus", "gpu_count", "cpu_count", "threads",
                  "precision", "devices", "num_nodes", "world_size", "malloc_tuned"},
     "platform": "...",
     "git":      {"commit", "dirty"} | null      (null unless lorevit runs from a git checkout)
     "data":     {"dataset", "num_classes", "classes_sha256",
                  "train_indices_sha256" (str, or {"easy", "hard"} for easy-to-hard), "num_train",
                  "split_files": {path: sha256} (datasets read from split/list files: VTAB, FGVC, CoOp),
                  "fewshot_file": {"path", "sha256"} (CoOp's few-shot pickle, when the images came from one)}}

The hashes make two runs' data comparable without their files: ``list_sha256(values)`` is the
sha256 of the compact JSON text of the list (``json.dumps(values, separators=(",", ":"),
ensure_ascii=False)``, UTF-8), so ``list_sha256(json.load(open("indices.json"))["train"])`` equals
``data.train_indices_sha256`` of a few-shot or full run, and ``list_sha256(class_names)`` its
``data.classes_sha256``. Nothing here may fail a finished run: a missing package is ``null``.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

# Distribution names of the packages whose versions are recorded (key in env.json → PyPI name).
PACKAGES = {"lorevit": "lorevit", "torch": "torch", "timm": "timm", "lightning": "lightning",
            "open_clip": "open_clip_torch", "numpy": "numpy"}


def list_sha256(values) -> str:
    """sha256 of a list as compact JSON text (the indices and class-list fingerprints of env.json)."""
    text = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for key, dist in PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            module = sys.modules.get(key)
            versions[key] = getattr(module, "__version__", None)
    if versions["lorevit"] is None:
        from lorevit.version import __version__

        versions["lorevit"] = __version__
    return versions


def git_state(path: str | Path | None = None) -> dict | None:
    """``{"commit", "dirty"}`` of the git checkout holding ``path`` (default: lorevit's own code), else None.

    Never raises: no git, no checkout (an installed wheel), or git refusing the folder all give None. For
    lorevit's own code, this file must be tracked by the checkout found (a wheel installed into a virtual
    environment inside some other project's checkout is not that project's commit).
    """
    root = Path(path) if path is not None else Path(__file__).resolve().parent.parent
    if not any((folder / ".git").exists() for folder in (root, *root.parents)):
        return None

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", f"safe.directory={root}", "-C", str(root), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()

    try:
        if path is None:
            git("ls-files", "--error-unmatch", str(Path(__file__).resolve()))
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty} if commit else None


def device_info(cfg, world_size: int | None = None) -> dict:
    """The accelerator asked for and the one used (Lightning's ``auto`` order: CUDA, then MPS, then CPU)."""
    import torch

    from lorevit.utils.allocator import is_tuned

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    asked = cfg.accelerator
    if asked in ("gpu", "cuda") or (asked == "auto" and cuda):
        used = "cuda"
    elif asked == "mps" or (asked == "auto" and mps):
        used = "mps"
    else:
        used = "cpu" if asked == "auto" else asked
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {"accelerator": asked, "used": used, "gpus": gpus, "gpu_count": len(gpus), "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(), "precision": cfg.precision, "devices": cfg.devices,
            "num_nodes": cfg.num_nodes, "world_size": world_size,
            "malloc_tuned": is_tuned()}  # lorevit.utils.allocator: the CPU allocator keeps freed memory


def data_info(cfg, classnames, train_indices, metrics: dict) -> dict:
    """Fingerprints of the class list and of the sampled training images (per stage for easy-to-hard)."""
    stages = metrics.get("stages")
    if stages:
        indices = {name: list_sha256(stage["indices"]) for name, stage in stages.items() if "indices" in stage}
    else:
        indices = list_sha256(train_indices)
    return {"dataset": cfg.dataset, "num_classes": len(classnames), "classes_sha256": list_sha256(classnames),
            "train_indices_sha256": indices, "num_train": len(train_indices)}


def collect(cfg, classnames, train_indices, metrics: dict) -> dict:
    """Everything of env.json for a finished run (``metrics``: its metrics dict)."""
    return {"versions": package_versions(), "device": device_info(cfg, metrics.get("world_size")),
            "platform": platform.platform(), "git": git_state(),
            "data": data_info(cfg, classnames, train_indices, metrics)}


def write_env(out: str | Path, cfg, data, metrics: dict) -> Path:
    """``<out>/env.json`` (atomic) for the run of ``cfg`` on ``data`` (a ClassificationData)."""
    from lorevit.utils.io import write_json

    env = collect(cfg, data.classnames, data.train_indices, metrics)
    split_files = {**getattr(data.train_set, "split_files", {}), **getattr(data.test_set, "split_files", {})}
    if split_files:  # {path: sha256} of the split/list files read: equal hashes, the same images (issue 21 §1)
        env["data"]["split_files"] = split_files
    if getattr(data, "fewshot_file", None):  # CoOp's shot_K-seed_S.pkl the training images came from
        env["data"]["fewshot_file"] = data.fewshot_file
    return write_json(Path(out) / "env.json", env)
