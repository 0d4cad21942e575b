"""What a shared adapter says about itself: ``config.json`` (:func:`hub_config`) and the model card's text
(:func:`model_card_text`, with the ``lorevit train`` command that rebuilds its config, :func:`train_command`).
Reads an adapter's string metadata only: no torch, no model."""
from __future__ import annotations

import json
import re

import yaml

from lorevit.config import ARCH_KEYS, RUN_ONLY_KEYS, Config, yaml_text

PAPER_URL = "https://doi.org/10.1145/3664647.3680983"  # LORE_SPEC.md


def hub_config(metadata: dict[str, str]) -> dict:
    """``config.json``: everything about the adapter, from its (portable) metadata."""
    cfg = Config.from_dict(yaml.safe_load(metadata["config"]))
    name, _, tag = cfg.backbone.partition(".")
    arch = {k: getattr(cfg, k) for k in ARCH_KEYS}
    return {
        "format": metadata["format"],
        "lorevit_version": metadata.get("lorevit_version", ""),
        "method": cfg.method,
        "architecture": arch,
        "method_options": json.loads(metadata["method_options"]) if metadata.get("method_options") else None,
        "backbone": {"timm_name": cfg.backbone, "architecture": name, "tag": tag or None,
                     "weights": json.loads(metadata.get("weights", "null")), "kwargs": cfg.backbone_kwargs,
                     "dim": int(metadata["backbone_dim"]), "depth": int(metadata["backbone_depth"]),
                     "sha256": metadata.get("backbone_sha256") or None},
        "knowledge": {"encoder": cfg.knowledge,
                      "dim": int(metadata["knowledge_dim"]) if metadata.get("knowledge_dim") else None},
        "classnames": json.loads(metadata["classnames"]),
        "num_classes": len(json.loads(metadata["classnames"])),
        "preprocessing": json.loads(metadata["preprocessing"]) if metadata.get("preprocessing") else None,
        "training": {k: getattr(cfg, k) for k in ("dataset", "protocol", "shots", "stage_shots", "epochs",
                                                   "img_size", "seed")},
        "train_config": cfg.to_dict(),
        "metrics": json.loads(metadata["metrics"]) if metadata.get("metrics") else None,
    }


def train_command(cfg: "Config") -> str:
    """The ``lorevit train`` command of a config: its key options (method, backbone, data, shots, size, epochs,
    seed), then every other key that is not at its default (where and how the run ran left out)."""
    default = Config()
    shots = {"few-shot": ["shots"], "easy-to-hard": ["stage_shots"]}.get(cfg.protocol, [])
    keys = ["method", "backbone", "weights", "knowledge", "dataset", "protocol", *shots, "img_size", "epochs", "seed"]
    keys += [k for k in Config.keys()
             if k not in keys and k not in RUN_ONLY_KEYS and getattr(cfg, k) != getattr(default, k)]
    parts = ["lorevit train"]
    for key in keys:
        value = getattr(cfg, key)
        text = yaml_text(value)
        if not re.fullmatch(r"[\w.:/@+-]+", text):
            text = "'" + text.replace("'", "'\\''") + "'"
        parts.append(f"--{key.replace('_', '-')} {text}")
    return " ".join(parts)


def _percent(value) -> str:
    return f"{value:.2f} %" if isinstance(value, (int, float)) else "not measured"


def model_card_text(metadata: dict[str, str], repo_id: str | None = None) -> str:
    """The body of ``README.md`` (Markdown, below the YAML card data) from an adapter's portable metadata."""
    info = hub_config(metadata)
    cfg = Config.from_dict(info["train_config"])
    metrics = info["metrics"] or {}
    backbone = info["backbone"]
    classes = info["classnames"]
    shots = {"few-shot": f"{cfg.shots} shots per class", "full": "the full training split",
             "easy-to-hard": f"easy-to-hard, {cfg.stage_shots} images per class per stage"}[cfg.protocol]
    name = repo_id or "ORG/NAME"
    if metrics.get("test_top1") is not None:
        accuracy = (f"top-1 **{_percent(metrics['test_top1'])}**, top-5 {_percent(metrics.get('test_top5'))}"
                    + (f" on {metrics['num_test']:,} test images" if metrics.get("num_test") else ""))
    else:
        accuracy = "not measured (no metrics.json beside the adapter it was made from)"
    weights = backbone["weights"] or "hub (the timm tag's pretrained weights)"
    rows = [
        ("method", f"`{info['method']}`" + (f" ({', '.join(f'{k} {v}' for k, v in info['architecture'].items())})")),
        ("backbone", f"`{backbone['timm_name']}`, weights `{weights}` (frozen, not in this repository)"),
        ("backbone sha256", f"`{backbone['sha256']}`" if backbone["sha256"] else "not recorded"),
        ("knowledge encoder", f"`{info['knowledge']['encoder']}` (training only)"),
        ("dataset", f"{cfg.dataset}, {shots}, seed {cfg.seed}"),
        ("image size", f"{cfg.img_size} px"),
        ("classes", f"{len(classes)}: " + ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")),
        ("trained parameters", f"{metrics['trainable_params']:,}" if metrics.get("trainable_params") else "-"),
        ("test accuracy", accuracy),
        ("lorevit", info["lorevit_version"] or "-"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    config_yaml = yaml.safe_dump(info["train_config"], sort_keys=False)
    title = info["method"].upper() if info["method"].startswith("lore") else info["method"]
    return f"""# {title} adapter: {backbone['timm_name']} on {cfg.dataset}

A lorevit adapter: the trained parameters of `{info['method']}` (LORE, locality-aware prompt
learning for frozen ViTs, ACM MM 2024; [paper]({PAPER_URL})) for the frozen ViT `{backbone['timm_name']}`.
The ViT's own weights are not here: lorevit builds it with timm and checks its weights against the
sha256 fingerprint below.

| | |
|---|---|
{table}

## Use

```python
import lorevit

model = lorevit.from_pretrained("{name}")            # weights=FILE: a local copy of the backbone
```

```bash
lorevit predict --adapter {name} photo.jpg album/ --top-k 3
lorevit predict --adapter {name} --weights my-copy.safetensors --strict photo.jpg
```

Loading onto backbone weights whose fingerprint differs warns; `--strict` makes it an error.

## How it was trained

```bash
{train_command(cfg)}
```

The whole configuration (save it as `config.yaml`, then `lorevit train --config config.yaml`):

```yaml
{config_yaml}```
"""
