"""The vision PETL baselines of issue 19 (BASELINES_VISION.md §A): lora (PEFT and the q/v wrapper), adaptformer,
adapter (houlsby | pfeiffer), ssf, bitfit, full, and vpt-deep as published — every invariant of §A on tiny random
ViTs, and the trainable counts on the real ViT-B/16 shapes (random weights, no forward)."""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import pytest
import timm
import torch
from torch import nn

import lorevit
from lorevit.backbone import PromptedViT
from lorevit.methods import MergeError, build_options
from lorevit.methods.lowrank import SlicedLowRankLinear, lora_scale, qkv_slices

from .conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT, assert_gradients_reach_only_trainable

CLASSES = ["red square", "green square", "blue square"]


def _images(n=2):
    return torch.randn(n, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(1))


def _model(method, backbone=None, **options):
    if backbone is None:
        torch.manual_seed(0)
        return lorevit.create_model(method, CLASSES, backbone=TINY_VIT, weights="random", img_size=TINY_SIZE,
                                    backbone_kwargs=TINY_KWARGS, knowledge=None, method_options=options or None)
    return lorevit.create_model(method, CLASSES, backbone=backbone, knowledge=None, method_options=options or None)


def _pair(method, **options):
    """(the method's model, the linear probe on an identical copy of the same frozen ViT), same random head."""
    torch.manual_seed(0)
    from lorevit.backbone import create_backbone

    backbone = create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS)
    reference = _model("linear", copy.deepcopy(backbone))
    model = _model(method, backbone, **options)
    with torch.no_grad():
        model.head.weight.normal_()
        model.head.bias.normal_()
    reference.head.load_state_dict(model.head.state_dict())
    return model.eval(), reference.eval()


def _logits(model, images=None):
    with torch.no_grad():
        return model(_images() if images is None else images).logits


def _perturb(module: nn.Module, names=("lora_B", "up", "ssf_", "bias")) -> None:
    """Give the zero-initialised parts random values (so merged = unmerged is not trivially 0 = 0)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.requires_grad and any(n in name for n in names):
                p.add_(torch.randn_like(p) * 0.05)


# --- §A summary: trainable counts on the real ViT-B/16 shapes (head excluded) ---------------------------------
VIT_B = [("lora", {}, 294_912), ("lora", {"targets": "qv"}, 294_912), ("adaptformer", {"bottleneck_dim": 8}, 156_768),
         ("adaptformer", {}, 1_189_632), ("adapter", {}, 313_536), ("adapter", {"style": "pfeiffer"}, 156_768),
         ("ssf", {}, 205_824), ("bitfit", {}, 102_912), ("vpt-deep", {}, 92_160),
         ("vpt-deep", {"vpt_prompts": 100}, 921_600), ("full", {}, 85_798_656)]


@pytest.fixture(scope="module")
def vit_b():
    torch.manual_seed(0)
    return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)


@pytest.mark.parametrize("method,options,count", VIT_B, ids=[f"{m}-{o}" for m, o, _ in VIT_B])
def test_trainable_counts_on_vit_b16_equal_the_spec(vit_b, method, options, count):
    backbone = PromptedViT(copy.deepcopy(vit_b), "vit_base_patch16_224")
    model = _model(method, backbone, **options)
    head = sum(p.numel() for p in model.head.parameters())
    assert model.parameter_counts()[0] - head == count
    assert head == 768 * 3 + 3


def test_vpt_deep_init_bound_is_0_0625_on_vit_b16(vit_b):
    model = _model("vpt-deep", PromptedViT(copy.deepcopy(vit_b), "vit_base_patch16_224"))
    tokens = model.method.prompts.tokens
    assert tokens.shape == (12, 10, 768)
    assert tokens.abs().max() <= 0.0625 and tokens.abs().max() > 0.06  # U(±√(6/(3·16²+768))) fills its range


# --- identity at init: the method's model equals the frozen ViT + the same head, exactly ------------------------
@pytest.mark.parametrize("method,options", [("lora", {}), ("lora", {"targets": "qv"}), ("lora", {"targets": "all-linear"}),
                                            ("lora", {"targets": "qkv+proj", "rslora": True}),
                                            ("adaptformer", {}), ("adapter", {"init_std": 0.0}), ("bitfit", {}),
                                            ("full", {})])
def test_zero_initialised_change_equals_the_frozen_model(method, options):
    model, reference = _pair(method, **options)
    assert torch.equal(_logits(model), _logits(reference))


def test_ssf_with_unit_scale_and_zero_shift_equals_the_frozen_model():
    model, reference = _pair("ssf")
    assert not torch.allclose(_logits(model), _logits(reference))  # γ ~ N(1, .02): not the identity at init
    with torch.no_grad():
        for name, p in model.method.named_parameters():
            p.fill_(1.0 if "ssf_scale" in name else 0.0) if "ssf_" in name else None
    assert torch.equal(_logits(model), _logits(reference))


def test_houlsby_small_init_is_near_but_not_exactly_the_frozen_model():
    model, reference = _pair("adapter")
    difference = (_logits(model) - _logits(reference)).abs().max()
    assert 0 < difference < 0.05


# --- merged = unmerged, and the merged ViT is a plain timm ViT -------------------------------------------------
@pytest.mark.parametrize("method,options", [("lora", {}), ("lora", {"targets": "qv"}), ("lora", {"targets": "all-linear"}),
                                            ("ssf", {}), ("bitfit", {})])
def test_merged_equals_unmerged_and_has_timms_keys(method, options):
    model, _ = _pair(method, **options)
    _perturb(model)
    before = _logits(model)
    plain_keys = set(_model("linear").backbone.vit.state_dict())  # the plain timm ViT's keys
    model.merge()
    after = _logits(model)
    assert (before - after).abs().max() <= 1e-4
    assert set(model.backbone.vit.state_dict()) == plain_keys
    assert not any("lorevit" in type(m).__module__ or "peft" in type(m).__module__
                   for m in model.backbone.vit.modules())


@pytest.mark.parametrize("method", ["adaptformer", "adapter", "vpt-deep", "lore-no-kp"])
def test_methods_that_cannot_merge_say_so(method):
    model = _model(method)
    assert not model.method.mergeable
    with pytest.raises(MergeError, match="cannot be merged"):
        model.merge()


# --- §A1: the q/v wrapper ----------------------------------------------------------------------------------------
def test_qv_wrapper_leaves_the_k_slice_unchanged_and_merges_into_the_q_v_rows():
    torch.manual_seed(0)
    qkv = nn.Linear(16, 48)
    wrapper = SlicedLowRankLinear(copy.deepcopy(qkv), qkv_slices(qkv, "qv"), rank=2, scale=lora_scale(4, 2))
    assert wrapper.slices == [(0, 16), (32, 48)] and wrapper.scale == 2.0
    with torch.no_grad():
        for pair in wrapper.pairs:
            pair.lora_B.normal_()
    x = torch.randn(3, 5, 16)
    out, frozen = wrapper(x), qkv(x)
    assert torch.equal(out[..., 16:32], frozen[..., 16:32])  # k: bit for bit the frozen Linear
    assert not torch.allclose(out[..., :16], frozen[..., :16]) and not torch.allclose(out[..., 32:], frozen[..., 32:])
    # hand computation of the q slice: W_q x + b_q + s·B_q A_q x
    q = x @ qkv.weight[:16].t() + qkv.bias[:16] + 2.0 * (x @ wrapper.pairs[0].lora_A.t()) @ wrapper.pairs[0].lora_B.t()
    torch.testing.assert_close(out[..., :16], q)
    merged = wrapper.merged()
    assert type(merged) is nn.Linear
    torch.testing.assert_close(merged(x), out, atol=1e-5, rtol=1e-5)
    assert torch.equal(merged.weight[16:32], qkv.weight[16:32])


def test_lora_init_is_peft_s_on_both_forms():
    for targets in ("qkv", "qv"):
        model = _model("lora", targets=targets)
        a = [p for n, p in model.method.named_parameters() if "lora_A" in n]
        b = [p for n, p in model.method.named_parameters() if "lora_B" in n]
        assert a and b and all(torch.count_nonzero(p) == 0 for p in b)
        bound = 1 / TINY_KWARGS["embed_dim"] ** 0.5  # kaiming-uniform(a=√5): U(±1/√in)
        assert all(p.abs().max() <= bound and p.abs().max() > 0.5 * bound for p in a)


def test_lora_scale_and_rslora():
    assert lora_scale(8, 8) == 1.0 and lora_scale(16, 4, rslora=True) == 8.0
    model = _model("lora", rank=4, alpha=16, rslora=True)
    assert model.backbone.vit.blocks[0].attn.qkv.scaling["default"] == 8.0  # PEFT's own scale


# --- §A2: AdaptFormer ----------------------------------------------------------------------------------------------
def test_adaptformer_branch_is_linear_in_its_scale():
    model, reference = _pair("adaptformer", dropout=0.0)
    _perturb(model, ("up",))
    frozen = _logits(reference)
    block0 = model.backbone.vit.blocks[0].mlp
    x = torch.randn(2, 5, TINY_KWARGS["embed_dim"])
    outs = []
    for s in (0.0, 0.1, 0.2):
        block0.scale = s
        outs.append(block0(x))
    torch.testing.assert_close(outs[2] - outs[0], 2 * (outs[1] - outs[0]), atol=1e-6, rtol=1e-5)
    block0.scale = 0.0
    for block in model.backbone.vit.blocks:
        block.mlp.scale = 0.0
    assert torch.equal(_logits(model), frozen)


def test_adaptformer_reads_the_un_normalised_residual_stream():
    model, _ = _pair("adaptformer")
    block = model.backbone.vit.blocks[0]
    assert isinstance(block.norm2, nn.Identity) and isinstance(block.mlp.norm2, nn.LayerNorm)


# --- what trains, gradients, modes -------------------------------------------------------------------------------
TRAINED = {"lora": ("lora_A", "lora_B"), "adaptformer": ("adapter.",), "adapter": (".down.", ".up."),
           "ssf": ("ssf_scale", "ssf_shift"), "bitfit": ("bias",)}


@pytest.mark.parametrize("method,options", [("lora", {}), ("lora", {"targets": "qv"}), ("adaptformer", {}),
                                            ("adapter", {}), ("adapter", {"style": "pfeiffer"}), ("ssf", {}),
                                            ("bitfit", {}), ("full", {})])
def test_only_declared_tensors_train_and_gradients_reach_all_of_them(method, options):
    model, _ = _pair(method, **options)
    _perturb(model, ("lora_B", "up"))  # B = 0 / up = 0 would stop the gradient to A / down
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if method == "full":
        assert set(trainable) == {n for n, _ in model.named_parameters() if not n.startswith("backbone.vit.head.")}
    else:
        marks = TRAINED[method]
        assert all(n.startswith("head.") or any(m in n for m in marks) for n in trainable), trainable
        assert any(not n.startswith("head.") for n in trainable)
    model.train()
    model.zero_grad()
    out = model(_images(4))
    nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 0])).backward()
    assert_gradients_reach_only_trainable(model)
    # the frozen ViT stays in eval mode (no drop-path, no dropout) for every method but full
    frozen = [m for n, m in model.backbone.vit.named_modules() if not any(p.requires_grad for p in m.parameters())
              and list(m.parameters())]
    if method == "full":
        assert model.backbone.vit.training
    else:
        assert not model.backbone.vit.training and all(not m.training for m in frozen)


def test_bitfit_changes_only_biases_and_the_head(tmp_path, color_folder):
    from .test_method_interface import _train_cli

    out = _train_cli(tmp_path, color_folder, "bitfit", "--lr", "0.05")
    model, _ = lorevit.load_adapter(out)
    torch.manual_seed(0)
    fresh = lorevit.create_model("linear", CLASSES, backbone=TINY_VIT, weights="random", img_size=TINY_SIZE,
                                 backbone_kwargs=TINY_KWARGS, knowledge=None).backbone.vit.state_dict()
    trained = model.backbone.vit.state_dict()
    changed = {k for k in fresh if not torch.equal(fresh[k], trained[k])}
    assert changed and all(k.endswith("bias") for k in changed), changed
    assert set(fresh) == set(trained)


def test_vpt_prompt_dropout_only_in_training():
    model = _model("vpt-deep", vpt_dropout=0.5)
    e0 = torch.zeros(2, 16, TINY_KWARGS["embed_dim"])
    model.method.eval()
    assert torch.equal(model.method(e0).prompts[0], model.method.prompts.tokens)
    model.method.train()
    dropped = model.method(e0).prompts
    assert (dropped == 0).any() and not torch.equal(dropped[0], model.method.prompts.tokens)


def test_bad_options_are_value_errors():
    for method, options, text in [("lora", {"rank": 0}, "rank must be >= 1"),
                                  ("lora", {"targets": "q"}, "targets must be one of qkv, qv, qkv+proj, all-linear"),
                                  ("adaptformer", {"bottleneck_dim": 0}, "bottleneck_dim must be >= 1"),
                                  ("adapter", {"style": "x"}, "style must be one of houlsby, pfeiffer"),
                                  ("vpt-deep", {"vpt_dropout": 1.0}, "vpt_dropout must be in")]:
        with pytest.raises(ValueError, match=re.escape(text)):
            build_options(method, options)


def test_lora_on_a_vit_without_qkv_names_its_linear_layers():
    from lorevit.backbone import create_backbone
    from lorevit.methods.lora import LoraTargetError

    for targets in ("qkv", "qv"):
        backbone = create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS)
        for block in backbone.vit.blocks:  # a ViT whose attention calls its fused projection differently
            block.attn.in_proj = block.attn.qkv
            del block.attn.qkv
        with pytest.raises(LoraTargetError, match=r"blocks\.\*\.attn\.in_proj"):
            _model("lora", backbone, targets=targets)


# --- through the CLI: train, evaluate, save, reload with identical logits -----------------------------------------
CLI_RUNS = [("lora", {}), ("lora", {"targets": "qv", "rank": 2}), ("adaptformer", {"bottleneck_dim": 4}),
            ("adapter", {"style": "pfeiffer"}), ("ssf", {}), ("bitfit", {}), ("full", {}), ("vpt-deep", {"vpt_dropout": 0.1})]


@pytest.mark.parametrize("method,options", CLI_RUNS, ids=[f"{m}-{o}" for m, o in CLI_RUNS])
def test_each_baseline_trains_through_the_cli_and_reloads_with_identical_logits(method, options, tmp_path,
                                                                                color_folder):
    import dataclasses
    import json

    from safetensors import safe_open

    from .test_method_interface import _train_cli

    extra = ["--method-options", json.dumps(options)] if options else []
    out = _train_cli(tmp_path, color_folder, method, *extra)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == method and 0 <= metrics["test_top1"] <= 100
    model, _ = lorevit.load_adapter(out)
    again, _ = lorevit.load_adapter(out)
    assert torch.equal(_logits(model), _logits(again))
    with safe_open(str(out / "adapter.safetensors"), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert keys == {name for name, p in model.named_parameters() if p.requires_grad}  # exactly what trains
    assert json.loads(meta["method_options"]) == dataclasses.asdict(model.method.options)
    if method == "full":  # the whole ViT (but timm's unused head) + the task head
        assert {k for k in keys if k.startswith("backbone.vit.")} == \
            {f"backbone.vit.{k}" for k in model.backbone.vit.state_dict() if not k.startswith("head.")}
    else:
        assert len(keys) < 60 and not any(k.endswith("qkv.weight") or k.endswith("base_layer.weight") for k in keys)
    fresh = _model(method, **options).trained_state_dict()
    assert any(not torch.equal(t, fresh[k]) for k, t in model.trained_state_dict().items())  # trained values came back


def test_a_full_adapter_on_another_backbone_is_an_adapter_error(tmp_path, color_folder):
    from lorevit.adapters.format import AdapterError
    from lorevit.backbone import create_backbone
    from lorevit.errors import UserError

    from .test_method_interface import _train_cli

    out = _train_cli(tmp_path, color_folder, "full")
    wider = create_backbone(TINY_VIT, "random", TINY_SIZE, **dict(TINY_KWARGS, embed_dim=48, num_heads=3))
    with pytest.raises(AdapterError, match="load it onto its own backbone"):
        lorevit.load_adapter(out, backbone=wider)
    larger = create_backbone(TINY_VIT, "random", 2 * TINY_SIZE, **TINY_KWARGS)  # same width, 4× the patches
    with pytest.raises(UserError, match="does not fit its model"):
        lorevit.load_adapter(out, backbone=larger)


def test_rank_0_on_the_command_line_is_one_error_line_and_writes_nothing(tmp_path, color_folder, capsys):
    from lorevit.cli import main

    code = main(["train", "--method", "lora", "--method-options", "{rank: 0}", "--backbone", TINY_VIT,
                 "--weights", "random", "--dataset", "imagefolder", "--data-root", str(color_folder),
                 "--output", str(tmp_path / "run"), "--progress", "false"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "rank must be >= 1" in err, err
    assert not (tmp_path / "run").exists()


# --- bench complexity: the baselines side by side -------------------------------------------------------------------
def test_bench_complexity_rows_of_the_baselines(tmp_path):
    import json

    from lorevit.cli import main

    out = tmp_path / "cost"
    rows = "linear,lora,lora+merged,ssf,ssf+merged,adaptformer-k8,bitfit,full"
    assert main(["bench", "complexity", "--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs",
                 json.dumps(TINY_KWARGS), "--img-size", str(TINY_SIZE), "--batch-size", "2", "--infer-repeats", "1",
                 "--train-repeats", "1", "--warmup", "0", "--flops-sizes", "", "--no-memory", "--knowledge", "st:minilm",
                 "--methods", rows, "--output", str(out)]) == 0
    report = json.loads((out / "complexity.json").read_text())
    m = report["methods"]
    assert list(m) == rows.split(",")
    head = 32 * 10 + 10
    d, depth = TINY_KWARGS["embed_dim"], TINY_KWARGS["depth"]
    assert m["lora"]["trainable_params"] - head == depth * 8 * (d + 3 * d)  # r·(in + out) per qkv
    assert m["ssf"]["trainable_params"] - head == depth * 2 * 11 * d + 2 * 2 * d  # γ, β: 6 sites (11·d) per block + 2
    assert m["lora+merged"]["trainable_params"] == m["linear"]["trainable_params"] == head  # merged: a plain ViT
    assert m["lora+merged"]["gflops"] == m["linear"]["gflops"] == m["ssf+merged"]["gflops"] < m["lora"]["gflops"]
    assert m["linear"]["vs_plain_vit"]["gflops"] == 1.0 and m["full"]["vs_plain_vit"]["gflops"] == 1.0
    assert {"infer_throughput_lora_merged_vs_blackbox", "infer_throughput_ssf_merged_vs_blackbox"} <= set(report["targets"])
    assert "| SSF, merged (`ssf+merged`) |" in (out / "complexity.md").read_text()


def test_bench_complexity_refuses_merging_what_cannot_merge(tmp_path, capsys):
    from lorevit.cli import main

    assert main(["bench", "complexity", "--methods", "linear,adaptformer+merged", "--output", str(tmp_path)]) == 2
    assert "'adaptformer' cannot be merged" in capsys.readouterr().err


def test_bench_ablation_runs_the_baselines_on_the_same_images_and_seeds(tmp_path, color_folder):
    import json

    from lorevit.cli import main

    out = tmp_path / "ablation"
    assert main(["bench", "ablation", "--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs",
                 json.dumps(TINY_KWARGS), "--img-size", str(TINY_SIZE), "--knowledge", "st:minilm",
                 "--dataset", "imagefolder", "--data-root", str(color_folder), "--methods", "linear,lora,ssf,bitfit",
                 "--shots", "2", "--seeds", "0", "--epochs", "1", "--batch-size", "8", "--test-subset", "9",
                 "--accelerator", "cpu", "--output", str(out)]) == 0
    report = json.loads((out / "ablation.json").read_text())
    assert {"linear", "lora", "ssf", "bitfit"} <= set(report["results"])
    for method in ("lora", "ssf", "bitfit"):
        assert report["results"][method]["2"]["mean"] is not None


def test_lora_under_ddp_with_two_gloo_processes_equals_one_process(tmp_path, color_folder):
    """Two full-batch steps: one process with batch 12, or two gloo processes with 6 each (DDP averages the
    gradients): the trained LoRA tensors and head agree. Dropout 0 (its masks differ between processes)."""
    from safetensors.torch import load_file

    from .test_method_interface import _train_cli

    # SGD (recipe lore): AdamW's g/√v would magnify the processes' last-bit gradient differences near zero
    options = ["--method-options", "{dropout: 0.0}", "--lr", "0.5", "--epochs", "2", "--shots", "4", "--recipe", "lore"]
    one = _train_cli(tmp_path / "one", color_folder, "lora", *options, "--batch-size", "12")
    # DDP's launcher starts rank 1 by re-running this process's command line: that must be `python -m lorevit`,
    # not pytest (an in-process main() would have rank 1 run the test session again)
    two = tmp_path / "two" / "lora"
    argv = [sys.executable, "-m", "lorevit", "train", "--method", "lora", "--backbone", TINY_VIT, "--weights", "random",
            "--backbone-kwargs", json.dumps(TINY_KWARGS), "--img-size", str(TINY_SIZE), "--dataset", "imagefolder",
            "--data-root", str(color_folder), "--knowledge", "st:minilm", "--accelerator", "cpu", "--progress", "false",
            "--output", str(two), *options, "--batch-size", "6", "--devices", "2", "--strategy", "ddp"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = load_file(str(one / "adapter.safetensors")), load_file(str(two / "adapter.safetensors"))
    assert set(a) == set(b) and any("lora_B" in k for k in a)
    assert any(torch.count_nonzero(t) for k, t in a.items() if "lora_B" in k)  # the second step moved B
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
