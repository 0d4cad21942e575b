"""The method interface (issue 18 §3), proven from outside lorevit: three test-only methods, one per kind
(``tests/method_plugins.py``), each trained through the real CLI, saved and reloaded with identical logits;
and the registry's refusals."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors import safe_open

import lorevit
from lorevit.cli import main
from lorevit.methods import (METHODS, MethodRegistrationError, NoOptions, build_options, register_method,
                             unregister_method)
from lorevit.methods.linear import LinearProbe

from . import method_plugins
from .conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT, assert_gradients_reach_only_trainable

CLASSES = ["red square", "green square", "blue square"]


@pytest.fixture
def plugins():
    names = method_plugins.register()
    yield names
    method_plugins.unregister()
    assert not set(names) & set(METHODS)


def _model(method, **options):
    return lorevit.create_model(method, CLASSES, backbone=TINY_VIT, weights="random", img_size=TINY_SIZE,
                                backbone_kwargs=TINY_KWARGS, knowledge="st:minilm", method_options=options or None)


def _train_cli(tmp_path, color_folder, method, *extra):
    out = tmp_path / method
    argv = ["train", "--method", method, "--backbone", TINY_VIT, "--weights", "random",
            "--backbone-kwargs", json.dumps(TINY_KWARGS), "--img-size", str(TINY_SIZE), "--dataset", "imagefolder",
            "--data-root", str(color_folder), "--shots", "4", "--epochs", "1", "--batch-size", "4",
            "--knowledge", "st:minilm", "--accelerator", "cpu", "--progress", "false", "--output", str(out), *extra]
    assert main(argv) == 0
    return out


@pytest.mark.parametrize("method", method_plugins.NAMES)
def test_each_kind_trains_through_the_cli_and_reloads_with_identical_logits(plugins, method, tmp_path, color_folder):
    out = _train_cli(tmp_path, color_folder, method)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == method and 0 <= metrics["test_top1"] <= 100
    model, cfg = lorevit.load_adapter(out)
    again, _ = lorevit.load_adapter(out)
    images = torch.randn(2, 3, TINY_SIZE, TINY_SIZE)
    with torch.no_grad():
        assert torch.equal(model(images).logits, again(images).logits)
    # the adapter holds exactly the trainable tensors and the method's options, never the frozen ViT
    with safe_open(str(out / "adapter.safetensors"), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert keys == trainable
    assert json.loads(meta["method_options"]) == dataclasses.asdict(model.method.options)
    assert not any(k.startswith("backbone.") and not p.requires_grad for k, p in model.named_parameters() if k in keys)
    # the trained values came back: a fresh model of the same options differs, the loaded one does not
    fresh = _model(method)
    state = model.trained_state_dict()
    assert any(not torch.equal(state[k], fresh.trained_state_dict()[k]) for k in state)


def test_kind_1_one_token_prompts_block_0(plugins):
    model = _model("test-one-token")
    e0 = model.backbone.embed_patches(torch.randn(2, 3, TINY_SIZE, TINY_SIZE))
    assert model.method(e0).prompts.shape == (2, 1, 1, model.backbone.dim)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["method.token", "head.weight", "head.bias"]
    torch.nn.init.normal_(model.head.weight)
    model.train()
    model.loss(model(torch.randn(4, 3, TINY_SIZE, TINY_SIZE)), torch.tensor([0, 1, 2, 0]))["loss"].backward()
    assert_gradients_reach_only_trainable(model)


def test_kind_2_rank_one_delta_starts_as_the_frozen_model_and_merges(plugins):
    images = torch.randn(3, 3, TINY_SIZE, TINY_SIZE)
    model = _model("test-rank-one")
    plain = lorevit.create_model("linear", CLASSES, backbone=TINY_VIT, weights="random", img_size=TINY_SIZE,
                                 backbone_kwargs=TINY_KWARGS)
    assert all(type(b.attn.qkv).__name__ == "RankOneDelta" for b in model.backbone.vit.blocks)
    with torch.no_grad():  # b = 0: exactly the frozen ViT
        assert torch.equal(model(images).features, plain(images).features)
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    depth = len(model.backbone.vit.blocks)
    assert trainable == sorted([f"backbone.vit.blocks.{i}.attn.qkv.{w}" for i in range(depth) for w in "ab"]
                               + ["head.bias", "head.weight"])
    torch.nn.init.normal_(model.head.weight)
    model.train()
    model.loss(model(images), torch.tensor([0, 1, 2]))["loss"].backward()
    for block in model.backbone.vit.blocks:  # at b = 0 only b gets a gradient (d/da ∝ b), as LoRA's A at B = 0
        assert block.attn.qkv.b.grad.abs().sum() > 0 and block.attn.qkv.base.weight.grad is None
    with torch.no_grad():
        for block in model.backbone.vit.blocks:
            block.attn.qkv.b.normal_()
        model.eval()
        unmerged = model(images).logits
        model.merge()
        assert all(type(b.attn.qkv) is torch.nn.Linear for b in model.backbone.vit.blocks)
        torch.testing.assert_close(model(images).logits, unmerged, atol=1e-5, rtol=1e-5)


def test_kind_3_text_context_runs_the_text_tower_inside_the_step(plugins):
    model = _model("test-text-context")
    head = model.head
    assert not any("tower" in k for k in model.trained_state_dict())  # the frozen tower is never saved
    assert sorted(n for n, p in model.named_parameters() if p.requires_grad) == \
        ["head.context", "head.project.bias", "head.project.weight"]
    model.train()
    images = torch.randn(3, 3, TINY_SIZE, TINY_SIZE)
    model.loss(model(images), torch.tensor([0, 1, 2]))["loss"].backward()
    assert head.context.grad is not None and head.context.grad.abs().sum() > 0  # through the text tower
    assert_gradients_reach_only_trainable(model)
    assert all(p.grad is None for p in head.tower.module.parameters())
    # with the context row set back to its token's own embedding, the tower gives the encoder's features
    from lorevit.knowledge import get_encoder

    with torch.no_grad():
        head.context.copy_(head.tower.module.token_embedding({"input_ids": head.tok_input_ids})[0, 1])
        expected = get_encoder("st:minilm").encode([f"x {c}." for c in CLASSES])
        torch.testing.assert_close(head.text_features(), expected, atol=1e-5, rtol=1e-4)


def test_a_bad_option_value_is_one_error_line_exit_2(plugins, tmp_path, color_folder, capsys):
    code = main(["train", "--method", "test-one-token", "--method-options", "{std: -1}", "--backbone", TINY_VIT,
                 "--weights", "random", "--dataset", "imagefolder", "--data-root", str(color_folder),
                 "--output", str(tmp_path / "run"), "--progress", "false"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "std must be positive" in err, err
    assert not (tmp_path / "run").exists()
    assert main(["train", "--method", "test-one-token", "--method-options", "{rank: 2}", "--print-config"]) == 2
    assert "not options of method 'test-one-token' (its options: std)" in capsys.readouterr().err
    assert main(["train", "--method", "test-one-token", "--print-config"]) == 0
    assert "#   std: 0.02" in capsys.readouterr().out


def test_register_method_refusals(plugins):
    @dataclasses.dataclass
    class Options:
        size: int = 1

    with pytest.raises(MethodRegistrationError, match="already registered"):
        register_method("test-one-token", LinearProbe, NoOptions)
    with pytest.raises(MethodRegistrationError, match="already registered"):
        register_method("lore", LinearProbe, NoOptions)
    with pytest.raises(MethodRegistrationError, match="must be a dataclass"):
        register_method("test-bad", LinearProbe, dict)
    with pytest.raises(MethodRegistrationError, match="no default"):
        register_method("test-bad", LinearProbe, dataclasses.make_dataclass("NoDefault", [("size", int)]))
    with pytest.raises(MethodRegistrationError, match="not a subclass"):
        register_method("test-bad", Options, Options)
    with pytest.raises(MethodRegistrationError, match="not a method name"):
        register_method("Bad Name", LinearProbe, Options)
    with pytest.raises(MethodRegistrationError, match="missing from lorevit.config.METHOD_NAMES"):
        register_method("test-bad", LinearProbe, Options, builtin=True)
    with pytest.raises(MethodRegistrationError, match="built-in"):
        unregister_method("lore")
    assert "test-bad" not in METHODS
    for err in (MethodRegistrationError("x"),):
        assert isinstance(err, lorevit.errors.UserError)  # one `lorevit: error:` line through the CLI


def test_options_are_typed_and_validated():
    assert build_options("lore", {"n_global": "4"}).n_global == 4  # YAML/CLI strings coerced to the field's type
    with pytest.raises(lorevit.errors.ConfigError, match="n_global: expected an integer"):
        build_options("lore", {"n_global": "four"})
    with pytest.raises(lorevit.errors.ConfigError, match="white_box"):
        build_options("lore", {"white_box": "nope"})
    cfg = lorevit.Config(method="lore", n_global=4, method_options={"top_n": 3})
    from lorevit.methods import options_from_config

    options = options_from_config(cfg)
    assert (options.n_global, options.top_n, options.n_local) == (4, 3, 2)


def test_builtin_option_defaults_equal_the_flat_config_defaults():
    """One value per option: the built-ins' option dataclasses and the flat config keys agree on defaults."""
    defaults = lorevit.Config().to_dict()
    for name, cls in METHODS.items():
        for f in dataclasses.fields(cls.options_cls):
            if f.name in defaults:
                assert f.default == defaults[f.name], (name, f.name)
