"""The paper's experiment configs parse into Config and name registered datasets."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from lorevit.config import Config
from lorevit.data import FEW_SHOT_DATASETS, get_spec, list_datasets

PAPER = Path(__file__).resolve().parents[2] / "configs" / "paper"
CONFIGS = sorted(PAPER.rglob("*.yaml"))


def test_there_are_paper_configs():
    names = {p.relative_to(PAPER).as_posix() for p in CONFIGS}
    assert len([n for n in names if n.startswith("few-shot/")]) == 12 * 2 * 2
    assert {f"few-shot/{d}-16shot-clip-b16.yaml" for d in FEW_SHOT_DATASETS} <= names
    # the paper's ablation: 4 datasets x 2 backbones x (lore, lore-no-kp, vpt-deep); issue 19's vision baselines on
    # the in21k backbone beside them
    ablation = {n for n in names if n.startswith("ablation/")}
    vision = ("linear", "lora", "adaptformer", "adapter", "ssf", "bitfit", "full")
    expected = {f"ablation/{d}-16shot-{b}-b16-{m}.yaml" for d in ("cifar10", "cifar100", "dtd", "imagenet")
                for b in ("clip", "in21k") for m in ("lore", "lore-no-kp", "vpt-deep")}
    expected |= {f"ablation/{d}-16shot-in21k-b16-{m}.yaml" for d in ("cifar10", "cifar100", "dtd", "imagenet")
                 for m in vision}
    assert ablation == expected
    assert {f"full/{d}-clip-b16.yaml" for d in ("cifar100", "tiny-imagenet", "imagenet100", "imagenet")} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(PAPER).as_posix())
def test_config_parses_and_names_a_registered_dataset(path):
    cfg = Config.from_yaml(path)
    assert get_spec(cfg.dataset).name == cfg.dataset and cfg.dataset in list_datasets()
    assert cfg.protocol in ("few-shot", "full", "easy-to-hard")
    assert cfg.img_size == 224 and cfg.weights is None
    assert re.search(r"^# paper: \S", path.read_text(), re.M), "each config names the paper's number"
