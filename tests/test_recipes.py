"""The public per-dataset recipes (issue 11 §4): one table in lorevit/recipes.py → configs/paper/**.yaml → docs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lorevit.config import Config
from lorevit.recipes import FEW_SHOT_B16, easy_to_hard_recipe, few_shot_recipe, markdown_easy_table, markdown_table

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "paper"


def load_generator():
    spec = importlib.util.spec_from_file_location("paper_generate", PAPER / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_configs_are_what_generate_writes(tmp_path):
    load_generator().main(tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.yaml")}
    committed = {p.relative_to(PAPER).as_posix(): p.read_text() for p in PAPER.rglob("*.yaml")}
    assert fresh.keys() == committed.keys()
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"run python configs/paper/generate.py: {stale[:5]} differ"


def read(rel: str) -> Config:
    return Config.from_yaml(PAPER / rel)


def test_issue_table_values_reach_the_yaml():
    eurosat = read("few-shot/eurosat-16shot-clip-b16.yaml")
    assert (eurosat.lr, eurosat.batch_size, eurosat.weight_decay, eurosat.epochs) == (0.0015, 32, 1.0, 50)
    cifar100 = read("few-shot/cifar100-16shot-clip-b16.yaml")
    assert (cifar100.epochs, cifar100.weight_decay, cifar100.batch_size) == (10, 0.001, 32)
    imagenet8 = read("few-shot/imagenet-8shot-clip-b16.yaml")
    assert (imagenet8.epochs, imagenet8.weight_decay, imagenet8.batch_size, imagenet8.lr) == (50, 0.2, 64, 0.003)
    assert read("few-shot/stanford-cars-8shot-clip-b16.yaml").weight_decay == 1.0
    assert read("few-shot/cifar10-8shot-clip-b16.yaml").epochs == 20
    for rel in ("few-shot/dtd-16shot-clip-b16.yaml", "ablation/dtd-16shot-in21k-b16-lore.yaml"):
        assert read(rel).weight_decay == 0.5


def test_b32_exceptions():
    imagenet = read("few-shot/imagenet-16shot-clip-b32.yaml")
    assert (imagenet.lr, imagenet.batch_size) == (0.008, 128)
    assert read("few-shot/imagenet-8shot-clip-b32.yaml").lr == 0.003  # the exception is 16-shot only
    assert read("few-shot/cifar100-8shot-clip-b32.yaml").weight_decay == 0.0001
    assert read("few-shot/cifar100-8shot-clip-b16.yaml").weight_decay == 0.001
    assert read("few-shot/eurosat-8shot-clip-b32.yaml").lr == 0.002
    assert read("few-shot/eurosat-16shot-clip-b32.yaml").lr == 0.0015


def test_easy_to_hard_stages():
    imagenet = read("easy-to-hard/imagenet-16per-stage-clip-b16.yaml")
    assert (imagenet.epochs, imagenet.weight_decay, imagenet.hard_lr, imagenet.hard_epochs) == (20, 0.05, 0.0001, 5)
    dtd8 = read("easy-to-hard/dtd-8per-stage-clip-b16.yaml")
    assert (dtd8.epochs, dtd8.weight_decay, dtd8.hard_lr, dtd8.lr_min) == (30, 0.5, 0.0005, 0.0001)
    assert read("easy-to-hard/dtd-16per-stage-clip-b16.yaml").weight_decay == 0.2
    eurosat = read("easy-to-hard/eurosat-8per-stage-clip-b16.yaml")
    assert (eurosat.lr, eurosat.batch_size, eurosat.hard_lr) == (0.002, 16, 0.0001)
    assert easy_to_hard_recipe("ucf101", 8)["epochs"] == 20


def test_every_config_uses_openai_clip_with_quickgelu_and_keeps_its_paper_number():

    for path in PAPER.rglob("*.yaml"):
        text = path.read_text()
        assert "# paper: " in text
        cfg = Config.from_yaml(path)
        if "clip" in cfg.backbone:
            assert "_clip_quickgelu_" in cfg.backbone and cfg.backbone.endswith(".openai")
        assert cfg.knowledge.endswith("-quickgelu@openai")


def test_unknown_dataset_has_no_recipe():
    with pytest.raises(KeyError, match="no public recipe"):
        few_shot_recipe("fashion-mnist", 16)


def test_docs_show_the_table():
    docs = (ROOT / "docs" / "recipes.md").read_text()
    assert markdown_table() in docs and markdown_easy_table() in docs
    assert len(FEW_SHOT_B16) == 12
