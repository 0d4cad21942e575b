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


def test_baseline_rows_of_tables_1_to_3():
    """issue 20 §3: one config per baseline × dataset × shots of LORE's Tables 1-3, under the published recipe."""
    names = {p.relative_to(PAPER / "baselines").as_posix() for p in CONFIGS if p.is_relative_to(PAPER / "baselines")}
    methods = ("coop", "cocoop", "prograd", "clip-adapter", "maple")
    expected = {f"few-shot/{d}-{k}shot-clip-{b}-{m}.yaml" for d in FEW_SHOT_DATASETS for k in (8, 16)
                for b in ("b16", "b32") for m in methods}
    expected |= {f"few-shot/{d}-16shot-clip-b16-zero-shot.yaml" for d in FEW_SHOT_DATASETS}
    expected |= {f"easy-to-hard/{d}-{n}per-stage-clip-b16-{m}.yaml" for d in FEW_SHOT_DATASETS for n in (8, 16)
                 for m in methods}
    expected |= {f"few-shot/{d}-16shot-clip-b16-clip-lora.yaml" for d in
                 ("imagenet", "dtd", "ucf101", "fgvc-aircraft", "eurosat", "stanford-cars", "flowers102")}
    assert names == expected
    coop = Config.from_yaml(PAPER / "baselines/few-shot/dtd-16shot-clip-b16-coop.yaml")
    assert coop.recipe == "published" and "lr" not in coop.given and "epochs" not in coop.given
    text = (PAPER / "baselines/few-shot/dtd-16shot-clip-b16-coop.yaml").read_text()
    assert "# paper: 68.09 " in text  # Table 1, CoOp, DTD, 16 shots
    assert "# paper: 72.0 " in (PAPER / "baselines/few-shot/dtd-16shot-clip-b16-clip-lora.yaml").read_text()
    maple = (PAPER / "baselines/easy-to-hard/dtd-8per-stage-clip-b16-maple.yaml").read_text()
    assert "method: maple" in maple and "depth: 9" in maple and "n_ctx: 2" in maple and "72.37 -> 73.61" in maple
