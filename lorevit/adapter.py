"""Adapters: the trained parameters of a run (White Box, prompts, head) plus what is needed to
put them back on their frozen backbone — never the backbone itself. One safetensors file.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .backbone import PromptedViT, create_backbone
from .config import Config
from .io import atomic_write
from .model import ARCH_KEYS, PromptedClassifier, create_model
from .errors import UserError

FORMAT = "lorevit.adapter/1"
FILENAME = "adapter.safetensors"


class AdapterError(UserError, ValueError):
    pass


def save_adapter(model: PromptedClassifier, cfg: Config, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / FILENAME
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
        "knowledge": cfg.knowledge,
        "knowledge_dim": str(kla.knowledge_dim) if kla is not None else "",
        "classnames": json.dumps(model.classnames),
        "config": cfg.to_yaml(),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise AdapterError(f"no adapter at {path}: pass a run's output directory (it holds {FILENAME})")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise AdapterError(f"{path} is not a readable safetensors adapter ({err})") from err
    if metadata.get("format") != FORMAT:
        raise AdapterError(f"{path} is not a lorevit adapter (format {metadata.get('format')!r}, expected {FORMAT})")
    return tensors, metadata


def load_adapter(path: str | Path, backbone: PromptedViT | None = None,
                 device: str | torch.device = "cpu") -> tuple[PromptedClassifier, Config]:
    """Rebuild the model of an adapter: its frozen backbone (or the one given) plus its trained state."""
    tensors, meta = read_adapter(path)
    cfg = Config.from_dict(yaml.safe_load(meta["config"]))
    if backbone is None:
        backbone = create_backbone(cfg.backbone, cfg.weights, cfg.img_size, **cfg.backbone_kwargs)
    expected = (meta["backbone"], int(meta["backbone_dim"]), int(meta["backbone_depth"]))
    if (backbone.name, backbone.dim, backbone.depth) != expected:
        raise AdapterError(
            f"adapter {path} was trained on {expected[0]} (width {expected[1]}, {expected[2]} blocks), "
            f"not on {backbone.name} (width {backbone.dim}, {backbone.depth} blocks); load it onto its own backbone"
        )
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
    return model.to(device).eval(), cfg
