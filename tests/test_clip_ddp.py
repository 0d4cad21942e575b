"""Issue 20: the CLIP baselines under DDP (2 gloo processes on the CPU) — one method of each shape equals one process.

The pattern of ``tests/test_vision_baselines.py::test_lora_under_ddp_with_two_gloo_processes_equals_one_process``:
two full-batch steps, one process with batch 12 (4 shots × 3 classes) or two ranks with 6 each (DDP averages the
gradients), SGD (``--recipe lore``: the published recipes would set CoCoOp's batch 1, CLIP-LoRA's AdamW), dropout 0;
the trained tensors of the two adapters agree to the last bits of the all-reduce. Shapes: a text-side context
(``coop``), the image-conditioned one (``cocoop``: B·C text sequences per step), the two-tower ones (``maple``:
coupled prompts in both towers; ``clip-lora``: LoRA in both). ProGrad projects each rank's gradient before the
all-reduce (BASELINES_CLIP §4 rule on a local gradient), so it cannot equal one process in general: it is only
checked to run. DDP is launched as ``python -m lorevit`` (its launcher re-runs the command line for rank 1).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from .conftest import TINY_CLIP_KWARGS, TINY_CLIP_VIT, TINY_SIZE

pytest.importorskip("open_clip")

# two epochs of one full-batch step each; SGD at a large lr so that the second step moves what the first one did
COMMON = ["--shots", "4", "--epochs", "2", "--recipe", "lore", "--lr", "0.5", "--weight-decay", "0",
          "--test-subset", "6"]


def _argv(method, data, out, knowledge, *extra):
    return ["train", "--method", method, "--backbone", TINY_CLIP_VIT, "--weights", "random", "--backbone-kwargs",
            json.dumps(TINY_CLIP_KWARGS), "--img-size", str(TINY_SIZE), "--dataset", "imagefolder", "--data-root",
            str(data), "--knowledge", knowledge, "--accelerator", "cpu", "--progress", "false", "--output", str(out),
            *COMMON, *extra]


def _one_process(method, data, out, knowledge, *extra):
    from lorevit.cli import main

    assert main(_argv(method, data, out, knowledge, *extra, "--batch-size", "12")) == 0
    return out


def _two_processes(method, data, out, knowledge, *extra):
    # DDP's launcher starts rank 1 by re-running this process's command line: `python -m lorevit`, not pytest
    argv = [sys.executable, "-m", "lorevit", *_argv(method, data, out, knowledge, *extra), "--batch-size", "6",
            "--devices", "2", "--strategy", "ddp"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    import yaml

    cfg = yaml.safe_load((out / "config.yaml").read_text())  # CoCoOp's published batch 1 not applied
    assert (cfg["recipe"], cfg["batch_size"], cfg["devices"]) == ("lore", 6, 2)
    return out


def _trained(run):
    from safetensors.torch import load_file

    return load_file(str(run / "adapter.safetensors"))


def _initial(method, data, out, knowledge, *extra):
    """The tensors as built, before any step (``--epochs 0``: the same seed, data and options as the runs)."""
    from lorevit.cli import main

    argv = _argv(method, data, out, knowledge, *extra, "--batch-size", "12")
    argv[argv.index("--epochs") + 1] = "0"
    assert main(argv) == 0
    return _trained(out)


SHAPES = [("coop", {"n_ctx": 4}), ("cocoop", {}), ("maple", {"depth": 2}), ("clip-lora", {"dropout": 0.0})]


@pytest.mark.parametrize("method,options", SHAPES, ids=[m for m, _ in SHAPES])
def test_under_ddp_with_two_gloo_processes_equals_one_process(tiny_clip, color_folder, tmp_path, method, options):
    extra = ["--method-options", json.dumps(options)]
    one = _trained(_one_process(method, color_folder, tmp_path / "one", tiny_clip, *extra))
    two = _trained(_two_processes(method, color_folder, tmp_path / "two", tiny_clip, *extra))
    initial = _initial(method, color_folder, tmp_path / "initial", tiny_clip, *extra)
    assert set(one) == set(two) == set(initial) and one
    for key in one:
        # the tensors to the last bits of the all-reduce; each one's update (some are ~1e-5: MaPLe's coupling
        # weights) to 1% of its own size or a few ulps of the tensor: a wrong gradient average (a sum, one rank's
        # share) is off by 50–100%
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=1e-4, msg=lambda m, k=key: f"{k}: {m}")
        update, other = one[key] - initial[key], two[key] - initial[key]
        size = update.abs().max().item()
        ulps = 4 * torch.finfo(one[key].dtype).eps * one[key].abs().max().item()
        torch.testing.assert_close(other, update, atol=max(1e-2 * size, ulps), rtol=0,
                                   msg=lambda m, k=key: f"{k} update: {m}")
        # every tensor moved — but CLIP-LoRA's A: B = 0 at the first step, so A's first gradient (at the second,
        # ∝ B ≈ 1e-6 on the tiny image tower) may be below A's float resolution
        assert size > 0 or (method == "clip-lora" and "lora_A" in key), f"{key}: not moved by the two steps"
    if method == "clip-lora":
        assert all(one[k].abs().max() > 0 for k in one if "lora_B" in k)
        assert any(not torch.equal(one[k], initial[k]) for k in one if "lora_A" in k and k.startswith("backbone."))
        assert any(not torch.equal(one[k], initial[k]) for k in one if "lora_A" in k and k.startswith("method."))


def test_prograd_runs_under_ddp_projecting_each_ranks_gradient(tiny_clip, color_folder, tmp_path):
    """ProGrad's rule acts on each rank's own gradient (a hook on ctx, before DDP's all-reduce; prograd.py): the
    average of projected gradients is not the projection of the average, so no equality with one process — the
    run completes on 2 ranks, records them, and moves ctx to finite values."""
    extra = ["--method-options", json.dumps({"n_ctx": 4})]
    two = _two_processes("prograd", color_folder, tmp_path / "two", tiny_clip, *extra)
    assert json.loads((two / "metrics.json").read_text())["world_size"] == 2
    trained, initial = _trained(two), _initial("prograd", color_folder, tmp_path / "initial", tiny_clip, *extra)
    assert set(trained) == {"method.ctx"} and torch.isfinite(trained["method.ctx"]).all()
    assert not torch.equal(trained["method.ctx"], initial["method.ctx"])


def test_the_prompt_buffers_are_left_out_of_ddps_per_step_broadcast(tiny_clip):
    """DDP broadcasts every buffer from rank 0 at each step; the text-side methods' buffers (prompt embeddings,
    class tokens, teacher features, the logit scale) are rebuilt identically on every rank: left out."""
    import lorevit
    from lorevit.config import Config
    from lorevit.training.module import LitClassifier

    for method in ("coop", "cocoop", "prograd", "clip-adapter", "maple", "clip-lora"):
        model = lorevit.create_model(method, ["red", "green", "blue"], backbone=TINY_CLIP_VIT, weights="random",
                                     img_size=TINY_SIZE, backbone_kwargs=TINY_CLIP_KWARGS, knowledge=tiny_clip,
                                     method_options={"depth": 2} if method == "maple" else None)
        lit = LitClassifier(model, Config())
        ignored = set(lit._ddp_params_and_buffers_to_ignore)
        buffers = dict(lit.named_buffers())
        assert "model.method.logit_scale" in ignored and buffers and set(buffers) <= ignored, (method, set(buffers) - ignored)
        assert not ignored & {name for name, _ in lit.named_parameters()}
        if method in ("coop", "cocoop"):
            assert {"model.method.prompts.prefix", "model.method.prompts.suffix"} <= ignored
