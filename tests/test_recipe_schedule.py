"""The shared recipe machinery: ``recipe: auto | published | lore``, explicit keys winning over a published recipe,
the optimiser choice, the one warm-up + cosine schedule (Dassl's constant warm-up, timm's linear one) against hand
numbers, and ``max_steps``."""
from __future__ import annotations

import math
import types

import pytest
import torch
import yaml

import lorevit
from lorevit.config import Config, ConfigError
from lorevit.methods import Method, register_method, unregister_method
from lorevit.training.module import LitClassifier, lr_factor

from tests.conftest import CLASSES, tiny_config


class WithRecipe(Method):
    """A linear probe that carries a published recipe whose epochs depend on the shot count."""

    recipe = {"optimizer": "adamw", "lr": 0.25, "weight_decay": 0.01, "warmup_epochs": 1.0, "warmup": "constant",
              "warmup_lr": 1e-5, "lr_min": 0.0}

    @classmethod
    def published_recipe(cls, cfg):
        return {**cls.recipe, "epochs": 3 if cfg.shots <= 2 else 5}


@pytest.fixture
def with_recipe():
    register_method("test-with-recipe", WithRecipe)
    yield "test-with-recipe"
    unregister_method("test-with-recipe")


def test_dassl_constant_warmup_against_hand_numbers():
    # BASELINES_CLIP §0: epoch 0 at 1e-5, epoch e >= 1 at lr (1 + cos(pi (e - 1) / T)) / 2, T = MAX_EPOCH (10)
    lr, T = 0.002, 10
    got = [lr * lr_factor(e, T, lr, 0.0, warmup=1, warmup_lr=1e-5, shape="constant") for e in range(T)]
    want = [1e-5] + [lr * (1 + math.cos(math.pi * (e - 1) / T)) / 2 for e in range(1, T)]
    assert got == pytest.approx(want, rel=1e-12)
    assert got[-1] > 0  # Dassl's last epoch never reaches lr_min


def test_timm_linear_warmup_against_hand_numbers():
    # NOAH's VTAB recipe: 10 warm-up epochs from 1e-6 to 1e-3, then timm's cosine over all 100 epochs to 1e-5
    lr, lr_min = 1e-3, 1e-5
    f = lambda t: lr * lr_factor(t, 100, lr, lr_min, warmup=10, warmup_lr=1e-6, shape="linear")  # noqa: E731
    assert f(0) == pytest.approx(1e-6)
    assert f(5) == pytest.approx(1e-6 + (lr - 1e-6) * 5 / 10)
    assert f(10) == pytest.approx(lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * 10 / 100)))
    assert f(50) == pytest.approx(lr_min + (lr - lr_min) * 0.5)
    assert f(100) == pytest.approx(lr_min)


def test_no_warmup_is_the_plain_cosine():
    from lorevit.training.module import cosine_factor

    assert [lr_factor(t, 7, 0.1, 0.001) for t in range(8)] == [cosine_factor(t, 7, 0.1, 0.001) for t in range(8)]


def test_published_recipe_fills_only_unset_keys(with_recipe):
    from lorevit.factory import resolve_config

    cfg = resolve_config(Config.from_dict({"method": with_recipe, "shots": 2, "lr": 0.5}))
    assert cfg.recipe == "published"
    assert cfg.lr == 0.5  # explicit: kept
    assert (cfg.optimizer, cfg.weight_decay, cfg.warmup, cfg.epochs) == ("adamw", 0.01, "constant", 3)
    assert resolve_config(cfg).to_dict() == cfg.to_dict()  # resolving twice changes nothing
    # an explicitly given value equal to the default is still the user's (not the recipe's)
    assert resolve_config(Config.from_dict({"method": with_recipe, "weight_decay": 0.5})).weight_decay == 0.5
    # the recipe's shot rule
    assert resolve_config(Config.from_dict({"method": with_recipe, "shots": 16})).epochs == 5


def test_recipe_lore_keeps_the_config_and_lore_has_no_published_recipe(with_recipe):
    from lorevit.factory import resolve_config

    cfg = resolve_config(Config.from_dict({"method": with_recipe, "recipe": "lore"}))
    assert (cfg.recipe, cfg.lr, cfg.optimizer, cfg.epochs) == ("lore", Config().lr, "sgd", Config().epochs)
    assert resolve_config(Config()).recipe == "lore"  # auto: LORE has no published recipe of its own
    with pytest.raises(ConfigError, match="no published recipe"):
        resolve_config(Config(recipe="published"))


def test_replace_and_cli_layers_keep_what_is_given(with_recipe):
    from lorevit.cli.options import config_from_args

    base = Config.from_dict({"epochs": 30})  # the default value, but given
    assert "epochs" in base.replace(method=with_recipe).given
    args = types.SimpleNamespace(method=with_recipe, lr="0.7")
    cfg = config_from_args(args, Config(batch_size=4))
    assert {"method", "lr", "batch_size"} <= cfg.given and "epochs" not in cfg.given


def test_unknown_recipe_or_schedule_values_are_config_errors():
    for bad in ({"recipe": "fancy"}, {"optimizer": "lion"}, {"warmup": "cubic"}, {"schedule_interval": "hour"},
                {"max_steps": 0}, {"warmup_epochs": -1}):
        with pytest.raises(ConfigError):
            Config.from_dict(bad)
    with pytest.raises(ConfigError, match="schedule_interval: step"):
        Config(max_steps=10, schedule_interval="epoch")
    with pytest.raises(ConfigError, match="warm-up"):
        Config(max_steps=10, warmup_epochs=1)


@pytest.mark.parametrize("interval,total,warmup", [("step", 40, 10), ("epoch", 4, 1)])
def test_configured_schedule_and_optimizer(interval, total, warmup, tiny_backbone):
    cfg = Config(optimizer="adamw", warmup_epochs=1, warmup="linear", warmup_lr=0.0, schedule_interval=interval,
                 weight_decay=0.01)
    lit = LitClassifier(lorevit.create_model("linear", CLASSES, backbone=tiny_backbone), cfg)
    lit._trainer = types.SimpleNamespace(max_epochs=4, estimated_stepping_batches=40)  # 4 epochs of 10 steps
    configured = lit.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["weight_decay"] == 0.01
    assert scheduler["interval"] == interval
    seen = [optimizer.param_groups[0]["lr"]]
    for _ in range(total):
        scheduler["scheduler"].step()
        seen.append(optimizer.param_groups[0]["lr"])
    want = [cfg.lr * lr_factor(t, total, cfg.lr, cfg.lr_min, warmup=warmup, warmup_lr=0.0) for t in range(total + 1)]
    assert seen == pytest.approx(want)
    assert seen[0] == 0.0 and seen[warmup] == pytest.approx(cfg.lr * lr_factor(warmup, total, cfg.lr, cfg.lr_min))


def test_max_steps_trains_that_many_steps_and_records_the_recipe(tmp_path, color_folder, with_recipe):
    from lorevit.training.run import train

    cfg = tiny_config(tmp_path / "run", color_folder, method=with_recipe, max_steps=3, shots=8, batch_size=8,
                      test_subset=6, warmup_epochs=0)
    metrics = train(cfg)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert metrics["recipe"] == saved["recipe"] == "published"
    assert saved["optimizer"] == "adamw" and saved["lr"] == 0.25 and saved["warmup_epochs"] == 0  # explicit 0 wins
    assert metrics["history"][-1]["step"] == 3
