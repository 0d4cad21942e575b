"""Issue 20: MaPLe (BASELINES_CLIP.md §6) — its invariants on tiny random CLIPs (timm's CLIP image tower + the open_clip
text tower of a model config), gradients, the recipe, bad input and a run through the CLI. The count on the real
ViT-B/16 shapes is in tests/test_clip_baselines.py (``test_trainable_counts_on_vit_b16_equal_the_spec``)."""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

import lorevit
from lorevit.errors import ConfigError
from lorevit.knowledge import class_features

from .conftest import TINY_CLIP_CONFIG, TINY_CLIP_KWARGS, TINY_CLIP_VIT, TINY_SIZE, assert_gradients_reach_only_trainable
from .test_clip_baselines import CLASSES, _argv, _images, _logits, _model, _zero_shot

pytest.importorskip("open_clip")


def _clip_config(tmp_path_factory, name: str, image_blocks: int, text_blocks: int) -> str:
    config = copy.deepcopy(TINY_CLIP_CONFIG)
    config["vision_cfg"]["layers"], config["text_cfg"]["layers"] = image_blocks, text_blocks
    path = tmp_path_factory.mktemp("clip") / f"{name}.json"
    path.write_text(json.dumps(config))
    return f"clip:{path}"


@pytest.fixture(scope="module")
def tiny_clip3(tmp_path_factory) -> str:
    """A tiny random CLIP with 3 blocks in each tower: J = 2 leaves one block that carries the prompts."""
    return _clip_config(tmp_path_factory, "lorevit-tiny-clip3", 3, 3)


def _model3(knowledge, classes=CLASSES, image_blocks=3, **options):
    torch.manual_seed(0)
    return lorevit.create_model("maple", classes, backbone=TINY_CLIP_VIT, weights="random", img_size=TINY_SIZE,
                                backbone_kwargs={**TINY_CLIP_KWARGS, "depth": image_blocks}, knowledge=knowledge,
                                method_options=options or None)


def _shaken(model):
    """Move every trained tensor away from its initial value (so a test cannot pass by an initialisation)."""
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model


# --- §6 (a), (b): no prompts is zero-shot; J = 1 without vision prompts has zero-shot text features ---------------------
def test_depth_0_is_zero_shot_and_trains_nothing(tiny_clip):
    model = _model("maple", tiny_clip, depth=0)
    torch.testing.assert_close(_logits(model), _zero_shot(model, tiny_clip), atol=1e-4, rtol=1e-4)
    assert model.parameter_counts()[0] == 0 and model.trained_state_dict() == {}


def test_depth_1_text_features_are_zero_shot_and_only_v0_enters_the_image(tiny_clip):
    model = _model("maple", tiny_clip, depth=1)
    method = model.method
    assert method.deep_text.shape == (0, 2, 32) and len(method.couplings) == 1
    with torch.no_grad():
        text = method.text_features()
        vision = method.vision_prompts()
    torch.testing.assert_close(text, class_features(tiny_clip, [c.replace("_", " ") for c in CLASSES], "a photo of a {}."),
                               atol=1e-5, rtol=1e-5)
    assert vision.shape == (1, 2, 32)  # V_0 = F_0(ctx): J sets of n_ctx tokens of the image width


# --- §6 (c): replacement before blocks 1…J−1, carried after J−1 --------------------------------------------------------
def _patched_logits(model, blocks, block: int, rows: slice):
    """Logits with block ``block``'s output changed at ``rows`` (a forward hook on the tower's own block)."""
    def hook(module, args, output):  # noise, not a constant: the next block's LayerNorm would remove a constant
        output = output.clone()
        output[:, rows] += 3.0 * torch.randn(output[:, rows].shape, generator=torch.Generator().manual_seed(block))
        return output

    handle = blocks[block].register_forward_hook(hook)
    try:
        return _logits(model)
    finally:
        handle.remove()


def test_patching_prompt_outputs_before_a_replacing_block_changes_nothing_after_depth_it_does(tiny_clip3):
    model = _shaken(_model3(tiny_clip3, depth=2))  # J = 2 of 3 blocks: block 1 replaces, block 2 carries
    n, plain = 2, _logits(model)
    vit_blocks, text_blocks = model.backbone.vit.blocks, model.method.tower.module.model.transformer.resblocks
    vision_prompts, text_prompts = slice(-n, None), slice(1, 1 + n)
    for blocks, rows in ((vit_blocks, vision_prompts), (text_blocks, text_prompts)):
        torch.testing.assert_close(_patched_logits(model, blocks, 0, rows), plain)  # i = 1: replaced
        assert not torch.allclose(_patched_logits(model, blocks, 1, rows), plain, atol=1e-4)  # after J−1: carried
    assert not torch.allclose(_patched_logits(model, vit_blocks, 0, slice(1, 3)), plain, atol=1e-4)  # hooks bite


# --- §6 (d): appended = inserted after CLS (no position embedding, no mask) ---------------------------------------------
def test_appended_prompts_give_the_cls_output_of_prompts_inserted_after_cls(tiny_clip3):
    model = _shaken(_model3(tiny_clip3, depth=2))
    backbone, vit = model.backbone, model.backbone.vit
    with torch.no_grad():
        V = model.method.vision_prompts()  # J, n, d
        e0 = backbone.embed_patches(_images())
        appended = backbone.forward_tokens(e0, appended=V).tokens
        B, n = e0.shape[0], V.shape[1]
        x = vit._pos_embed(e0)  # by hand: [CLS, V_0, patches] → ln_pre → blocks, V_1 in the slots before block 1
        x = vit.norm_pre(torch.cat([x[:, :1], V[0].expand(B, -1, -1), x[:, 1:]], dim=1))
        for i, block in enumerate(vit.blocks):
            if i == 1:
                x = torch.cat([x[:, :1], V[1].expand(B, -1, -1), x[:, 1 + n:]], dim=1)
            x = block(x)
        inserted = vit.norm(torch.cat([x[:, :1], x[:, 1 + n:]], dim=1))
    assert appended.shape == inserted.shape == (B, 1 + e0.shape[1], 32)  # the prompts' outputs are dropped
    torch.testing.assert_close(appended[:, 0], inserted[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(appended, inserted, atol=1e-5, rtol=1e-5)
    # J = 1 carried through every block is the VPT-shallow path (inserted after CLS once)
    with torch.no_grad():
        shallow = backbone.forward_tokens(e0, V[:1].unsqueeze(0).expand(B, -1, -1, -1)).tokens
        torch.testing.assert_close(backbone.forward_tokens(e0, appended=V[:1]).tokens[:, 0], shallow[:, 0],
                                   atol=1e-5, rtol=1e-5)


# --- what trains ------------------------------------------------------------------------------------------------------
def test_only_ctx_the_deep_prompts_and_the_couplings_get_gradients(tiny_clip3):
    model = _model3(tiny_clip3, depth=3).train()
    method = model.method
    assert {n for n, p in model.named_parameters() if p.requires_grad} == \
        {"method.ctx", "method.deep_text", *(f"method.couplings.{i}.{w}" for i in range(3) for w in ("weight", "bias"))}
    assert method.ctx.shape == (2, 32) and method.deep_text.shape == (2, 2, 32)
    assert [tuple(c.weight.shape) for c in method.couplings] == [(32, 32)] * 3  # F_i: text width → image width
    F.cross_entropy(model(_images()).logits, torch.tensor([0, 1, 2, 0])).backward()
    assert_gradients_reach_only_trainable(model)
    assert all(p.grad is None for p in method.tower.module.parameters())
    assert all(p.grad is None for p in model.backbone.parameters())


def test_ctx_starts_from_a_photo_and_of_a_stays_fixed_text(tiny_clip):
    method = _model("maple", tiny_clip, depth=2).method
    tower = method.tower.module
    words = tower.token_embedding(tower.tokenize(["a photo of a"]))[0]  # SOS a photo of a EOS
    torch.testing.assert_close(method.ctx, words[1:3])
    torch.testing.assert_close(method.prompts.suffix[:, :2], words[3:5].expand(3, -1, -1))  # "of a" before the class


def test_adapter_round_trip_gives_identical_logits(tiny_clip3):
    model = _shaken(_model3(tiny_clip3, depth=2))
    state = model.trained_state_dict()
    assert set(state) == {"method.ctx", "method.deep_text", *(f"method.couplings.{i}.{w}" for i in range(2)
                                                               for w in ("weight", "bias"))}
    other = _model3(tiny_clip3, depth=2)
    assert not torch.equal(_logits(other), _logits(model))
    other.load_trained_state_dict(state)
    assert torch.equal(_logits(other), _logits(model))


# --- recipe, bad input, the CLI ---------------------------------------------------------------------------------------
def test_the_published_recipes_are_maples():
    from lorevit.methods.maple import CROSS_DATASET_OPTIONS, CROSS_DATASET_RECIPE, MaPLe

    expected = {"optimizer": "sgd", "lr": 0.0035, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 4, "epochs": 5,
                "lr_min": 0.0, "warmup_epochs": 1, "warmup": "constant", "warmup_lr": 1e-5, "schedule_interval": "epoch"}
    assert MaPLe.published_recipe(None) == expected
    assert CROSS_DATASET_RECIPE == {**expected, "lr": 0.0026, "epochs": 2} and CROSS_DATASET_OPTIONS == {"depth": 3}
    options = lorevit.methods.build_options("maple")
    assert (options.depth, options.n_ctx, options.ctx_init) == (9, 2, "a photo of a")


def test_depth_beyond_the_text_tower_is_refused(tmp_path_factory):
    knowledge = _clip_config(tmp_path_factory, "lorevit-tiny-clip-3-2", 3, 2)  # 3 image blocks, 2 text blocks
    with pytest.raises(ConfigError, match="depth 3 exceeds the 2 blocks of the text tower"):
        _model3(knowledge, depth=3)
    assert _model3(knowledge, depth=2).method.options.depth == 2


@pytest.mark.parametrize("options,match", [({"depth": 3}, "depth 3 exceeds the 2 blocks of the image tower"),
                                           ({"depth": -1}, "depth must be >= 0")])
def test_bad_depth_is_one_error_line_and_writes_nothing(tiny_clip, color_folder, tmp_path, capsys, options, match):
    from lorevit.cli import main

    code = main(_argv("maple", color_folder, tmp_path / "run", tiny_clip, "--method-options", json.dumps(options)))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("lorevit: error:") and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "run").exists()


def test_trains_through_the_cli_with_its_recipe_and_reloads(tiny_clip, color_folder, tmp_path):
    from lorevit.cli import main

    out = tmp_path / "maple"
    argv = _argv("maple", color_folder, out, tiny_clip, "--method-options", json.dumps({"depth": 2}))
    i = argv.index("--batch-size")
    del argv[i: i + 2]  # the recipe's batch 4
    assert main(argv) == 0
    import yaml

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["recipe"] == "published" and cfg["batch_size"] == 4 and cfg["lr"] == 0.0035 and cfg["epochs"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "maple" and 0 <= metrics["test_top1"] <= 100
    model, _ = lorevit.load_adapter(out)
    assert torch.equal(_logits(model), _logits(lorevit.load_adapter(out)[0]))
    fresh = _model("maple", tiny_clip, classes=model.classnames, depth=2).trained_state_dict()
    assert set(fresh) == set(model.trained_state_dict())
    assert any(not torch.equal(t, fresh[k]) for k, t in model.trained_state_dict().items())  # trained values came back
