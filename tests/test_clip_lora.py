"""Issue 20: ``clip-lora`` (BASELINES_CLIP.md §7) on a tiny random CLIP — B = 0 is frozen CLIP, merged = unmerged,
only the (A, B) pairs train and all of them get gradients, s = α/√r, the ViT-B/16 count, the recipe's schedule
against hand numbers, a CLI run that reloads with identical logits, and bad input."""
from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lorevit

from .conftest import assert_gradients_reach_only_trainable
from .test_clip_baselines import _argv, _images, _logits, _model, _zero_shot

pytest.importorskip("open_clip")
LABELS = torch.tensor([0, 1, 2, 0])


def _pairs(model):
    from lorevit.methods.lowrank import LowRankPair

    return [m for m in model.modules() if isinstance(m, LowRankPair)]


def _random_b(model, std=0.5):
    """Non-zero B in every pair (B = 0 at init makes every update, and A's gradient, zero)."""
    torch.manual_seed(3)
    with torch.no_grad():
        for pair in _pairs(model):
            pair.lora_B.normal_(0.0, std)


def test_b_zero_is_frozen_clip_zero_shot(tiny_clip):
    model = _model("clip-lora", tiny_clip)
    assert all(pair.lora_B.abs().sum() == 0 for pair in _pairs(model))  # §7 init: B = 0
    torch.testing.assert_close(_logits(model), _zero_shot(model, tiny_clip), atol=1e-5, rtol=1e-5)  # (a)


def test_merged_equals_unmerged_and_the_shared_tower_is_untouched(tiny_clip):
    from lorevit.knowledge import get_encoder
    from lorevit.methods.clip_lora import LowRankSelfAttention
    from lorevit.methods.lowrank import SlicedLowRankLinear

    shared = get_encoder(tiny_clip)._model.transformer.resblocks[0].attn
    before = shared.in_proj_weight.clone()
    model = _model("clip-lora", tiny_clip)
    _random_b(model)
    unmerged = _logits(model)
    assert not torch.allclose(unmerged, _zero_shot(model, tiny_clip), atol=1e-3)  # the updates change the logits
    model.merge()
    torch.testing.assert_close(_logits(model), unmerged, atol=1e-5, rtol=1e-5)  # (b)
    towers = [model.backbone, model.method.tower.module]
    assert not any(isinstance(m, (SlicedLowRankLinear, LowRankSelfAttention)) for t in towers for m in t.modules())
    assert all(type(block.attn.qkv) is nn.Linear for block in model.backbone.vit.blocks)
    assert all(type(b.attn) is nn.MultiheadAttention for b in model.method.tower.module.model.transformer.resblocks)
    # the knowledge encoder's tower (zero-shot features, other methods) is another copy, never changed
    assert type(shared) is nn.MultiheadAttention and torch.equal(shared.in_proj_weight, before)


def test_only_the_pairs_train_and_every_one_gets_a_gradient(tiny_clip):
    model = _model("clip-lora", tiny_clip)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".lora_A", ".lora_B")) for n in trainable)  # (c)
    blocks = len(model.backbone.vit.blocks)
    assert len(_pairs(model)) == 2 * blocks * 3 and len(trainable) == 2 * len(_pairs(model))  # 2 towers × blocks × q,k,v
    assert model.method.scale == 1.0 / math.sqrt(2)  # (d) s = α/√r exactly (r 2, α 1)
    assert all(pair.lora_A.shape[0] == pair.lora_B.shape[1] == 2 for pair in _pairs(model))  # rank 2
    _random_b(model)
    model.train()
    F.cross_entropy(model(_images()).logits, LABELS).backward()
    assert_gradients_reach_only_trainable(model)  # every A and B, no frozen ViT tensor
    for name, p in model.method.tower.module.named_parameters():  # the text tower, outside the model's parameters
        assert (p.grad is not None) == p.requires_grad, name


def test_sliced_pairs_draw_a_dropout_mask_each():
    from lorevit.methods.lowrank import SlicedLowRankLinear, qkv_slices

    base = nn.Linear(64, 3 * 64)
    for independent in (True, False):
        layer = SlicedLowRankLinear(base, qkv_slices(base, "qkv"), rank=64, scale=1.0, dropout=0.5,
                                    independent_dropout=independent).train()
        with torch.no_grad():
            for pair in layer.pairs:  # B·A = I: each slice of the update is its own dropout of x
                pair.lora_A.copy_(torch.eye(64))
                pair.lora_B.copy_(torch.eye(64))
        q, k, v = layer.delta(torch.ones(1, 64)).split(64, dim=-1)
        assert torch.equal(q, k) != independent and torch.equal(k, v) != independent


def test_trainable_count_on_vit_b16_equals_the_spec():
    from lorevit.backbone import create_backbone

    backbone = create_backbone("vit_base_patch16_clip_quickgelu_224", "random", 224)
    model = lorevit.create_model("clip-lora", ["cat", "dog"], backbone=backbone, knowledge="clip:auto")
    assert model.parameter_counts()[0] == 184_320  # §7
    assert sum(p.numel() for p in model.backbone.parameters() if p.requires_grad) == 110_592  # vision; text 73,728


def test_published_recipe_and_its_schedule_against_hand_numbers():
    from lorevit.config import Config
    from lorevit.factory import apply_recipe
    from lorevit.training.module import lr_factor

    cfg = apply_recipe(Config(method="clip-lora", shots=4))
    assert (cfg.recipe, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size) == ("published", "adamw", 2e-4, 0.01, 32)
    assert (cfg.max_steps, cfg.lr_min, cfg.warmup_epochs, cfg.interval) == (2000, 1e-6, 0.0, "step")  # 500·K
    assert apply_recipe(Config(method="clip-lora", shots=16)).max_steps == 8000
    assert apply_recipe(Config(method="clip-lora", protocol="easy-to-hard")).max_steps is None  # stages count epochs
    # CosineAnnealingLR(T_max=2000, eta_min=1e-6) per iteration: 2e-4 at 0, the mid value at 1000, 1e-6 at 2000
    lr = lambda t: cfg.lr * lr_factor(t, 2000, cfg.lr, cfg.lr_min)  # noqa: E731
    assert [lr(0), lr(1000), lr(2000)] == pytest.approx([2e-4, (2e-4 + 1e-6) / 2, 1e-6], rel=1e-12)
    assert lr(500) == pytest.approx(1e-6 + (2e-4 - 1e-6) * (1 + math.cos(math.pi / 4)) / 2, rel=1e-12)


def test_trains_through_the_cli_and_reloads_with_identical_logits(tiny_clip, color_folder, tmp_path):
    from lorevit.cli import main
    from lorevit.tools.export import merged_model

    out = tmp_path / "clip-lora"
    argv = _argv("clip-lora", color_folder, out, tiny_clip, "--max-steps", "3", "--lr", "0.05")
    i = argv.index("--epochs")
    del argv[i: i + 2]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "clip-lora" and metrics["recipe"] == "published" and metrics["history"][-1]["step"] == 3
    model, cfg = lorevit.load_adapter(out)
    assert (cfg.optimizer, cfg.weight_decay, cfg.lr_min, cfg.max_steps) == ("adamw", 0.01, 1e-6, 3)  # explicit wins
    again, _ = lorevit.load_adapter(out)
    assert torch.equal(_logits(model), _logits(again))
    state = model.trained_state_dict()
    assert state and all(k.endswith((".lora_A", ".lora_B")) for k in state)  # only the pairs are saved
    assert any(t.abs().sum() > 0 for k, t in state.items() if k.endswith(".lora_B"))  # trained values came back
    assert merged_model(again.eval(), 32) <= 1e-5  # what export --merge checks: merged vs unmerged logits
    # the merged graph: the plain image tower and constant class text features (ONNX); no plain timm form
    assert main(["export", "--adapter", str(out), "--merge", "--format", "timm", "--output", str(tmp_path / "m.st")]) == 2
    if importlib.util.find_spec("onnxruntime") is not None:
        assert main(["export", "--adapter", str(out), "--merge", "--output", str(tmp_path / "m.onnx")]) == 0
        report = json.loads((tmp_path / "m.onnx.json").read_text())
        assert report["max_abs_diff"] <= 1e-4, report


@pytest.mark.parametrize("options,match", [({"rank": 0}, "rank must be >= 1"), ({"dropout": 1.0}, "dropout"),
                                           ({"alpha": 0}, "alpha")])
def test_bad_options_are_one_error_line_and_write_nothing(tiny_clip, color_folder, tmp_path, capsys, options, match):
    from lorevit.cli import main

    code = main(_argv("clip-lora", color_folder, tmp_path / "run", tiny_clip, "--method-options", json.dumps(options)))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("lorevit: error:") and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "run").exists()


def test_bench_complexity_rows(tiny_clip, tmp_path, capsys):
    from lorevit.cli import main

    from .conftest import TINY_CLIP_KWARGS, TINY_CLIP_VIT, TINY_SIZE

    out = tmp_path / "cost"
    assert main(["bench", "complexity", "--backbone", TINY_CLIP_VIT, "--weights", "random", "--backbone-kwargs",
                 json.dumps(TINY_CLIP_KWARGS), "--img-size", str(TINY_SIZE), "--knowledge", tiny_clip, "--methods",
                 "linear,clip-lora,clip-lora+merged", "--batch-size", "2", "--warmup", "0", "--infer-repeats", "1",
                 "--train-repeats", "1", "--flops-sizes", "", "--no-memory", "--output", str(out)]) == 0
    rows = json.loads((out / "complexity.json").read_text())["methods"]
    lora, merged = rows["clip-lora"], rows["clip-lora+merged"]
    assert lora["trainable_params"] == 2 * 2 * 3 * 2 * (2 * 32)  # 2 towers × 2 blocks × q,k,v × (A, B) of 2×32
    assert merged["gflops"] < lora["gflops"]  # merged: no LoRA, and constant text features
    assert "CLIP-LoRA, merged" in (out / "complexity.md").read_text()
