"""Issue 20: the CLIP baselines (CoOp, CoCoOp, ProGrad, CLIP-Adapter) — BASELINES_CLIP.md's invariants on a tiny
random CLIP (timm's CLIP image tower + the open_clip text tower of a model config), counts on ViT-B/16 shapes, and
runs through the CLI."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import lorevit
from lorevit.knowledge import class_features

from .conftest import TINY_CLIP_KWARGS, TINY_CLIP_VIT, TINY_SIZE, assert_gradients_reach_only_trainable

pytest.importorskip("open_clip")
CLASSES = ["red square", "green_circle", "blue triangle"]


def _model(method, knowledge, classes=CLASSES, **options):
    torch.manual_seed(0)
    return lorevit.create_model(method, classes, backbone=TINY_CLIP_VIT, weights="random", img_size=TINY_SIZE,
                                backbone_kwargs=TINY_CLIP_KWARGS, knowledge=knowledge, method_options=options or None)


def _images(n=4, seed=1):
    return torch.randn(n, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(seed))


def _logits(model, images=None):
    with torch.no_grad():
        return model.eval()(_images() if images is None else images).logits


def _zero_shot(model, knowledge, template="a photo of a {}.", images=None, classes=CLASSES):
    """The zero-shot logits by another path: open_clip's own encode_text on the template strings."""
    with torch.no_grad():
        features = model.backbone(_images() if images is None else images)
        image = F.normalize(model.backbone.vit.head(features), dim=-1)
        text = class_features(knowledge, [c.replace("_", " ") for c in classes], template)
        return model.method.logit_scale * image @ text.t()


# --- CoOp §2 ----------------------------------------------------------------------------------------------------------
def test_coop_from_a_photo_of_a_untrained_is_zero_shot_clip(tiny_clip):
    model = _model("coop", tiny_clip, n_ctx=4, ctx_init="a photo of a")
    torch.testing.assert_close(_logits(model), _zero_shot(model, tiny_clip), atol=1e-4, rtol=1e-4)
    assert model.method.prompts.assemble(model.method.ctx).shape == (3, 77, 32)  # (b) 77 tokens, EOT as tokenised


def test_coop_only_ctx_trains_and_gets_the_gradient(tiny_clip):
    model = _model("coop", tiny_clip).train()
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["method.ctx"]
    assert model.method.ctx.shape == (16, 32)
    F.cross_entropy(model(_images()).logits, torch.tensor([0, 1, 2, 0])).backward()
    assert_gradients_reach_only_trainable(model)
    assert all(p.grad is None for p in model.method.tower.module.parameters())


@pytest.mark.parametrize("position", ["middle", "front"])
def test_coop_class_positions_keep_77_tokens_and_differ_from_end(tiny_clip, position):
    end = _model("coop", tiny_clip, n_ctx=4)
    other = _model("coop", tiny_clip, n_ctx=4, class_token_position=position)
    seq = other.method.prompts.assemble(other.method.ctx)
    assert seq.shape == (3, 77, 32)
    torch.testing.assert_close(seq[:, -10:], end.method.prompts.assemble(end.method.ctx)[:, -10:])  # padding
    assert not torch.allclose(_logits(end), _logits(other))


def test_coop_csc_with_equal_rows_is_unified(tiny_clip):
    unified = _model("coop", tiny_clip, n_ctx=4)
    csc = _model("coop", tiny_clip, n_ctx=4, csc=True)
    assert csc.method.ctx.shape == (3, 4, 32)
    with torch.no_grad():
        csc.method.ctx.copy_(unified.method.ctx.expand(3, -1, -1))
    torch.testing.assert_close(_logits(csc), _logits(unified))


def test_coop_adapter_retargets_to_other_class_names(tiny_clip):
    model = _model("coop", tiny_clip, n_ctx=4, ctx_init="a photo of a")
    state = model.trained_state_dict()
    assert set(state) == {"method.ctx"}  # prompt buffers are rebuilt, never saved
    other = _model("coop", tiny_clip, classes=["cat", "dog"], n_ctx=4, ctx_init="a photo of a")
    other.load_trained_state_dict(state)
    torch.testing.assert_close(_logits(other), _zero_shot(other, tiny_clip, classes=["cat", "dog"]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("options,match", [({"ctx_init": "a photo of a", "n_ctx": 2}, "n_ctx=2"),
                                           ({"ctx_init": "a photo", "csc": True}, "csc"),
                                           ({"class_token_position": "left"}, "class_token_position")])
def test_coop_bad_options(tiny_clip, options, match):
    with pytest.raises((ValueError, lorevit.errors.UserError) if hasattr(lorevit, "errors") else ValueError, match=match):
        _model("coop", tiny_clip, **options)


# --- CoCoOp §3 --------------------------------------------------------------------------------------------------------
def test_cocoop_with_a_zero_last_meta_layer_is_coop_and_zero_shot(tiny_clip):
    cocoop = _model("cocoop", tiny_clip)
    with torch.no_grad():
        cocoop.method.meta_net[2].weight.zero_()
        cocoop.method.meta_net[2].bias.zero_()
    coop = _model("coop", tiny_clip, n_ctx=4, ctx_init="a photo of a")
    torch.testing.assert_close(_logits(cocoop), _logits(coop), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_logits(cocoop), _zero_shot(cocoop, tiny_clip), atol=1e-4, rtol=1e-4)


def test_cocoop_logits_of_an_image_do_not_depend_on_the_batch(tiny_clip):
    model = _model("cocoop", tiny_clip)
    images = _images(4)
    together = _logits(model, images)
    alone = torch.cat([_logits(model, images[i: i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    labels = torch.tensor([0, 1, 2, 1])  # (c) the batch loss is the mean of the batch-1 losses
    with torch.no_grad():
        losses = [F.cross_entropy(_logits(model, images[i: i + 1]), labels[i: i + 1]) for i in range(4)]
    torch.testing.assert_close(F.cross_entropy(together, labels), torch.stack(losses).mean())


def test_cocoop_gradients_reach_ctx_and_the_meta_net_only(tiny_clip):
    model = _model("cocoop", tiny_clip).train()
    assert {n for n, p in model.named_parameters() if p.requires_grad} == \
        {"method.ctx", *(f"method.meta_net.{i}.{w}" for i in (0, 2) for w in ("weight", "bias"))}
    F.cross_entropy(model(_images()).logits, torch.tensor([0, 1, 2, 0])).backward()
    assert_gradients_reach_only_trainable(model)


# --- ProGrad §4 -------------------------------------------------------------------------------------------------------
def test_prograd_gradient_rule_against_hand_numbers():
    from lorevit.methods.prograd import prograd_gradient

    g_ce, g_kl = torch.tensor([1.0, -2.0]), torch.tensor([0.0, 3.0])  # disagree: g_ce·ĝ = -2
    torch.testing.assert_close(prograd_gradient(g_ce, g_kl, 1.0), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(prograd_gradient(g_ce, g_kl, 0.5), torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(prograd_gradient(g_ce, g_kl, 0.0), g_ce)  # λ = 0: CoOp's
    torch.testing.assert_close(prograd_gradient(g_ce, -g_kl, 1.0), g_ce)  # they agree: CoOp's
    torch.testing.assert_close(prograd_gradient(g_ce, 7.0 * g_kl, 1.0), prograd_gradient(g_ce, g_kl, 1.0))  # scale-free
    g = prograd_gradient(torch.randn(16, 8), torch.randn(16, 8), 1.0)
    assert g.shape == (16, 8)


def test_prograd_step_projects_the_ce_gradient_and_is_orthogonal_to_g_kl(tiny_clip):
    from lorevit.methods.prograd import prograd_gradient, soft_target_loss

    model = _model("prograd", tiny_clip).train()
    method, labels, images = model.method, torch.tensor([0, 1, 2, 0]), _images()
    k = method.prompts.init_len
    assert k == 4 and method.ctx[: 16 - k].abs().sum() == 0  # ProGrad's init: zeros, then "a photo of a"
    with torch.no_grad():  # (a) the teacher is zero-shot CLIP with the template
        teacher = method.teacher_logits(method.image_features(model.backbone(images)))
    torch.testing.assert_close(teacher, _zero_shot(model, tiny_clip, images=images))
    with torch.no_grad():
        method.ctx.add_(0.3 * torch.randn_like(method.ctx))  # a student that disagrees with its teacher
    # by hand: the two gradients, with the hook off (eval mode skips it)
    model.eval()
    student = model(images).logits
    g_ce, = torch.autograd.grad(F.cross_entropy(student, labels), method.ctx, retain_graph=True)
    g_kl, = torch.autograd.grad(soft_target_loss(student, teacher, 1.0), method.ctx)
    model.train()
    F.cross_entropy(model(images).logits, labels).backward()
    torch.testing.assert_close(method.ctx.grad, prograd_gradient(g_ce, g_kl, 1.0), atol=1e-6, rtol=1e-4)
    if (g_ce * g_kl).sum() < 0:
        assert abs(float((method.ctx.grad * g_kl).sum())) < 1e-6 * float(g_ce.norm() * g_kl.norm())
    assert_gradients_reach_only_trainable(model)
    assert not method._pending  # the hook fired once and was removed


def test_prograd_lambda_is_the_option_lambda(tiny_clip):
    from lorevit.methods import build_options

    assert build_options("prograd", {"lambda": 0.8}).lambda_ == 0.8


# --- CLIP-Adapter §5 --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["visual", "text", "both"])
def test_clip_adapter_alpha_0_is_zero_shot(tiny_clip, side):
    model = _model("clip-adapter", tiny_clip, alpha=0.0, side=side, template="{} texture.")
    torch.testing.assert_close(_logits(model), _zero_shot(model, tiny_clip, "{} texture."), atol=1e-5, rtol=1e-5)


def test_clip_adapter_w2_zero_is_zero_shot_and_a_is_non_negative(tiny_clip):
    model = _model("clip-adapter", tiny_clip)
    f = torch.randn(5, 64)
    assert (model.method.visual(f) >= 0).all()
    with torch.no_grad():
        model.method.visual[2].weight.zero_()
    torch.testing.assert_close(_logits(model), _zero_shot(model, tiny_clip), atol=1e-5, rtol=1e-5)


def test_clip_adapter_trains_the_adapter_only(tiny_clip):
    model = _model("clip-adapter", tiny_clip).train()
    F.cross_entropy(model(_images()).logits, torch.tensor([0, 1, 2, 0])).backward()
    assert_gradients_reach_only_trainable(model)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"method.visual.0.weight", "method.visual.2.weight"}


# --- counts on the real ViT-B/16 + text tower shapes (random weights) --------------------------------------------------
@pytest.fixture(scope="module")
def vit_b16():
    from lorevit.backbone import create_backbone

    return create_backbone("vit_base_patch16_clip_quickgelu_224", "random", 224)


@pytest.mark.parametrize("method,count", [("coop", 8_192), ("cocoop", 35_360), ("prograd", 8_192),
                                          ("clip-adapter", 131_072), ("maple", 3_555_072)])
def test_trainable_counts_on_vit_b16_equal_the_spec(vit_b16, method, count):
    model = lorevit.create_model(method, ["cat", "dog"], backbone=vit_b16, knowledge="clip:auto")
    assert model.parameter_counts()[0] == count


# --- bad input and the CLI --------------------------------------------------------------------------------------------
def _argv(method, data, out, knowledge, *extra):
    return ["train", "--method", method, "--backbone", TINY_CLIP_VIT, "--weights", "random", "--backbone-kwargs",
            json.dumps(TINY_CLIP_KWARGS), "--img-size", str(TINY_SIZE), "--dataset", "imagefolder", "--data-root",
            str(data), "--shots", "4", "--epochs", "1", "--batch-size", "4", "--knowledge", knowledge,
            "--accelerator", "cpu", "--progress", "false", "--output", str(out), *extra]


@pytest.mark.parametrize("knowledge,extra,match", [
    ("st:minilm", [], "no CLIP text tower"),
    (None, ["--method-options", '{ctx_init: "a photo of a", n_ctx: 2}'], "n_ctx=2"),
    (None, ["--method-options", '{ctx_init: "a photo", csc: true}'], "csc"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(tiny_clip, color_folder, tmp_path, capsys, knowledge, extra,
                                                        match):
    from lorevit.cli import main

    code = main(_argv("coop", color_folder, tmp_path / "run", knowledge or tiny_clip, *extra))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("lorevit: error:") and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "run").exists()


CLI_RUNS = [("coop", {"n_ctx": 4}), ("cocoop", {}), ("prograd", {"n_ctx": 8}), ("clip-adapter", {"side": "both"})]


@pytest.mark.parametrize("method,options", CLI_RUNS, ids=[m for m, _ in CLI_RUNS])
def test_each_trains_through_the_cli_and_reloads_with_identical_logits(tiny_clip, color_folder, tmp_path, method,
                                                                       options):
    from lorevit.cli import main

    out = tmp_path / method
    assert main(_argv(method, color_folder, out, tiny_clip, "--method-options", json.dumps(options),
                      "--recipe", "lore")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == method and 0 <= metrics["test_top1"] <= 100
    model, _ = lorevit.load_adapter(out)
    again, _ = lorevit.load_adapter(out)
    assert torch.equal(_logits(model), _logits(again))
    fresh = _model(method, tiny_clip, classes=model.classnames, **options).trained_state_dict()
    assert set(fresh) == set(model.trained_state_dict())
    assert any(not torch.equal(t, fresh[k]) for k, t in model.trained_state_dict().items())  # trained values came back


def test_the_shared_text_tower_is_copied_only_when_a_cast_would_change_it(tiny_clip):
    from lorevit.knowledge import get_encoder

    model = _model("coop", tiny_clip, n_ctx=4)
    shared = get_encoder(tiny_clip)._model
    model.to("cpu", torch.float32)  # changes nothing: no copy
    assert model.method.tower.module.model is shared
    before = _logits(model)
    model.double()
    assert model.method.tower.module.model is not shared and next(shared.parameters()).dtype == torch.float32
    assert next(model.method.tower.module.parameters()).dtype == torch.float64
    torch.testing.assert_close(_logits(model, _images().double()).float(), before, atol=1e-4, rtol=1e-4)


def test_precision_16_true_is_coops_whole_model_fp16(tiny_clip, color_folder, tmp_path, monkeypatch):
    """``--precision 16-true`` is CoOp's ``PREC: fp16`` (§0): Lightning casts the whole model and the images to half
    and trains ctx in half without master weights — both towers run in fp16 and ctx is saved in fp16. The shared
    knowledge tower (zero-shot features, later models in the process) stays fp32: the method casts a private copy."""
    from lorevit.cli import main
    from lorevit.knowledge import ClipTextTower, get_encoder
    from lorevit.methods.clip_text import TextSideMethod

    seen = set()
    text_forward, image_features = ClipTextTower.forward, TextSideMethod.image_features

    def spy_text(self, embeddings, tokens, before_block=None):
        seen.add(("text", embeddings.dtype, self.model.transformer.get_cast_dtype()))
        return text_forward(self, embeddings, tokens, before_block)

    def spy_image(self, features):
        seen.add(("image", features.dtype, self.backbone.vit.head.weight.dtype))
        return image_features(self, features)

    monkeypatch.setattr(ClipTextTower, "forward", spy_text)
    monkeypatch.setattr(TextSideMethod, "image_features", spy_image)
    out = tmp_path / "fp16"
    assert main(_argv("coop", color_folder, out, tiny_clip, "--method-options", "{n_ctx: 4}", "--recipe", "lore",
                      "--precision", "16-true")) == 0
    half = torch.float16
    assert seen == {("text", half, half), ("image", half, half)}, seen
    from safetensors.torch import load_file

    assert load_file(str(out / "adapter.safetensors"))["method.ctx"].dtype == half
    assert all(p.dtype == torch.float32 for p in get_encoder(tiny_clip)._model.parameters())
    seen.clear()
    model, cfg = lorevit.load_adapter(out)  # reloaded in fp32 (the config's precision is the training's)
    assert cfg.precision == "16-true" and model.method.ctx.dtype == torch.float32
    assert torch.isfinite(_logits(model)).all() and seen == {("text", torch.float32, torch.float32),
                                                             ("image", torch.float32, torch.float32)}


def test_published_recipe_is_recorded(tiny_clip, color_folder, tmp_path):
    """CoCoOp's recipe (batch 1, SGD 0.002, constant warm-up 1e-5) fills the unset keys and is recorded."""
    from lorevit.cli import main

    out = tmp_path / "cocoop"
    argv = _argv("cocoop", color_folder, out, tiny_clip)
    i = argv.index("--batch-size")
    del argv[i: i + 2]  # the recipe's batch 1
    assert main(argv) == 0
    import yaml

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["recipe"] == "published" and cfg["batch_size"] == 1 and cfg["lr"] == 0.002
    assert cfg["warmup"] == "constant" and cfg["warmup_lr"] == 1e-5 and cfg["weight_decay"] == 5e-4


# --- bench ablation: the CLIP baselines side by side (issue 20 §3) -------------------------------------------------
CLIP_ROWS = ["zero-shot", "coop", "cocoop", "prograd", "clip-adapter", "maple", "clip-lora", "lore"]


def _ablation(tiny_clip, data, out, *extra):
    return ["bench", "ablation", "--backbone", TINY_CLIP_VIT, "--weights", "random", "--backbone-kwargs",
            json.dumps(TINY_CLIP_KWARGS), "--img-size", str(TINY_SIZE), "--knowledge", tiny_clip, "--dataset",
            "imagefolder", "--data-root", str(data), "--methods", ",".join(CLIP_ROWS), "--shots", "2", "--seeds", "0",
            "--epochs", "1", "--batch-size", "6", "--test-subset", "9", "--accelerator", "cpu", "--recipe", "lore",
            "--output", str(out), *extra]


def test_bench_ablation_runs_the_clip_baselines_side_by_side_on_the_same_images(tiny_clip, color_folder, tmp_path,
                                                                                capsys):
    from lorevit.cli import main

    out = tmp_path / "ablation"
    # the methods' options per method (MaPLe's depth 9 exceeds the tiny towers' 2 blocks): the others get defaults
    per_method = {"maple": {"depth": 2}, "coop": {"n_ctx": 4}}
    assert main(_ablation(tiny_clip, color_folder, out, "--method-options", json.dumps(per_method))) == 0
    report = json.loads((out / "ablation.json").read_text())
    assert list(report["results"]) == CLIP_ROWS and report["setup"]["recipe"] == "lore"
    for method in CLIP_ROWS:
        entry = report["results"][method]["2"]
        assert entry["mean"] is not None and entry["std"] == 0.0 and len(entry["runs"]) == 1, (method, entry)
    counts = {m: report["results"][m]["2"]["trainable_params"] for m in CLIP_ROWS}
    # tiny CLIP: width 32, joint dim 64, 2 blocks; CoOp 4×32; CoCoOp 4×32 + Meta-Net 64→4→32; MaPLe J=2, n_ctx 2
    assert counts["zero-shot"] == 0 and counts["coop"] == 4 * 32 and counts["cocoop"] == 4 * 32 + (64 * 4 + 4) + (4 * 32 + 32)
    assert counts["maple"] == 2 * 32 + 1 * 2 * 32 + 2 * (32 * 32 + 32)
    assert counts["clip-lora"] == 2 * 2 * 3 * 2 * (2 * 32) and counts["prograd"] == 16 * 32
    runs = out / "runs"
    indices = {m: json.loads((runs / m / "2shot" / "seed0" / "indices.json").read_text())["train"] for m in CLIP_ROWS}
    assert len({tuple(v) for v in indices.values()}) == 1 and len(indices["coop"]) == 6  # one draw for all methods
    import yaml

    options = {m: yaml.safe_load((runs / m / "2shot" / "seed0" / "config.yaml").read_text())["method_options"]
               for m in ("maple", "coop", "cocoop")}
    assert options == {"maple": {"depth": 2}, "coop": {"n_ctx": 4}, "cocoop": {}}
    table = (out / "ablation.md").read_text()
    assert all(f"| {label} |" in table for label in ("CoOp", "CoCoOp", "ProGrad", "CLIP-Adapter", "MaPLe", "CLIP-LoRA"))


@pytest.mark.parametrize("options,match", [(None, "depth 9 exceeds"), ({"maple": {"depth": 2}, "n_ctx": 4}, "mixes")])
def test_bench_ablation_bad_method_options_fail_before_any_run(tiny_clip, color_folder, tmp_path, capsys, options,
                                                               match):
    from lorevit.cli import main

    out = tmp_path / "ablation"
    extra = ["--method-options", json.dumps(options)] if options else []
    assert main(_ablation(tiny_clip, color_folder, out, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("lorevit: error:") and err.count("\n") == 1 and match in err, err
    assert not out.exists()


# --- bench complexity: a row per CLIP baseline, CoCoOp at 10 / 100 / 1,000 classes (issue 20 §3) --------------------
def test_bench_complexity_has_a_row_per_clip_baseline_and_cocoops_cost_grows_with_the_classes(tiny_clip, tmp_path):
    from lorevit.cli import main

    out = tmp_path / "cost"
    rows = "linear,coop,cocoop,cocoop@100,cocoop@1000,prograd,clip-adapter,maple,clip-lora,clip-lora+merged"
    assert main(["bench", "complexity", "--backbone", TINY_CLIP_VIT, "--weights", "random", "--backbone-kwargs",
                 json.dumps(TINY_CLIP_KWARGS), "--img-size", str(TINY_SIZE), "--knowledge", tiny_clip, "--methods", rows,
                 "--method-options", "{maple: {depth: 2}}", "--batch-size", "2", "--warmup", "0", "--infer-repeats",
                 "1", "--train-repeats", "1", "--flops-sizes", "", "--no-memory", "--output", str(out)]) == 0
    r = json.loads((out / "complexity.json").read_text())["methods"]
    assert list(r) == rows.split(",")
    # tiny CLIP (width 32, joint dim 64, 2 blocks): CoOp M16; CoCoOp M4 + Meta-Net 64→4→32; MaPLe J2; LoRA 2·2·3 pairs
    counts = {"coop": 16 * 32, "cocoop": 4 * 32 + 64 * 4 + 4 + 4 * 32 + 32, "prograd": 16 * 32,
              "clip-adapter": 2 * 64 * 16, "maple": 2 * 32 + 2 * 32 + 2 * (32 * 32 + 32), "clip-lora": 2 * 2 * 3 * 2 * 64,
              "clip-lora+merged": 0}
    assert {m: r[m]["trainable_params"] for m in counts} == counts
    assert r["cocoop@100"]["trainable_params"] == r["cocoop@1000"]["trainable_params"] == counts["cocoop"]
    assert [r[m]["num_classes"] for m in ("cocoop", "cocoop@100", "cocoop@1000")] == [10, 100, 1000]
    g = {m: r[m]["gflops"] for m in r}
    # CoCoOp's per-image cost is affine in C (the text tower over C sequences): equal slopes 10→100 and 100→1000
    slope, later = (g["cocoop@100"] - g["cocoop"]) / 90, (g["cocoop@1000"] - g["cocoop@100"]) / 900
    assert slope > 0 and later == pytest.approx(slope, rel=1e-3)
    assert g["cocoop@1000"] > 50 * g["linear"]
    # in a batch of 2: CoOp's prompts are encoded once per batch, CoCoOp's once per image (B·C sequences)
    assert r["cocoop"]["gflops_in_batch"] == pytest.approx(g["cocoop"], rel=1e-3)
    assert r["coop"]["gflops_in_batch"] == pytest.approx(g["linear"] + (g["coop"] - g["linear"]) / 2, rel=1e-2)
    assert "gflops_in_batch" not in r["clip-adapter"] and "gflops_in_batch" not in r["clip-lora+merged"]
    assert g["clip-adapter"] < 1.1 * g["linear"] and g["clip-lora+merged"] < g["clip-lora"]
    assert all(r[m]["train_step_s"] > 0 for m in counts if m != "clip-lora+merged")
    md = (out / "complexity.md").read_text()
    assert "| CoCoOp, 1,000 classes (`cocoop@1000`) |" in md and "| MaPLe (`maple`) |" in md


def test_bench_complexity_bad_class_count_or_options_is_one_error_line(tiny_clip, tmp_path, capsys):
    from lorevit.cli import main

    base = ["bench", "complexity", "--backbone", TINY_CLIP_VIT, "--weights", "random", "--knowledge", tiny_clip,
            "--output", str(tmp_path / "cost")]
    for extra, match in ((["--methods", "linear,cocoop@0"], "positive integer"),
                         (["--methods", "linear,coop", "--method-options", "{maple: {depth: 2}}"], "per measured")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("lorevit: error:") and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "cost").exists()
