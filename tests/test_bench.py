"""``lorevit bench ablation`` / ``bench complexity``: end to end on a tiny random ViT, schemas, helpers.

Training every method a few steps is tests/test_model.py's job; here the benchmarks run through
the CLI (``lorevit.cli.main``) in a smoke mode and their files are checked field by field.
"""
import json
import math

import pytest
import torch
from PIL import Image

from lorevit.cli import main

from .conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT

TINY = ["--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs", json.dumps(TINY_KWARGS),
        "--img-size", str(TINY_SIZE)]


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- complexity


def test_complexity_end_to_end(tmp_path, capsys):
    out = tmp_path / "cost"
    rc = main(["bench", "complexity", *TINY, "--batch-size", "4", "--warmup", "1", "--infer-repeats", "2",
               "--train-repeats", "2", "--flops-sizes", "48", "--output", str(out)])
    assert rc == 0
    report = json.loads((out / "complexity.json").read_text())
    setup = report["setup"]
    for key in ("backbone", "img_size", "batch_size", "threads", "device", "num_patches", "peak_mem", "flops"):
        assert key in setup
    assert setup["img_size"] == TINY_SIZE and setup["batch_size"] == 4 and setup["threads"] >= 1
    assert set(report["methods"]) == {"linear", "vpt-deep", "lore-no-kp", "lore"}
    for name, r in report["methods"].items():
        assert isinstance(r["trainable_params"], int) and r["trainable_params"] > 0
        for key in ("trainable_pct", "gflops", "infer_img_per_s", "train_step_s", "peak_mem_mb"):
            assert _number(r[key]) and r[key] >= 0 and math.isfinite(r[key]), (name, key, r[key])
        assert r["infer_img_per_s"] > 0 and r["train_step_s"] > 0 and r["gflops"] > 0
        assert len(r["infer_batch_s"]) == 2 and len(r["train_step_runs_s"]) == 2
    m = report["methods"]
    # prompts add tokens, LIN adds a little more; KLA is not run at inference
    assert m["linear"]["gflops"] < m["vpt-deep"]["gflops"] < m["lore-no-kp"]["gflops"] == m["lore"]["gflops"]
    assert m["linear"]["trainable_params"] < m["vpt-deep"]["trainable_params"] < m["lore-no-kp"]["trainable_params"] \
        < m["lore"]["trainable_params"]
    scaling = report["class_scaling"]
    assert _number(scaling["train_step_s_10"]) and _number(scaling["train_step_s_1000"])
    assert {"infer_throughput_lore_vs_vpt", "gflops_lore_vs_blackbox", "train_step_lore_vs_vpt",
            "train_step_1000_vs_10_classes"} == set(report["targets"])
    for t in report["targets"].values():
        assert _number(t["ratio"]) and isinstance(t["pass"], bool)
    other = report["gflops_at_other_sizes"]["48"]
    assert other["num_patches"] == 36 and other["gflops"]["lore"] > m["lore"]["gflops"]
    md = (out / "complexity.md").read_text()
    assert "| LORE (`lore`) |" in md and "train_step_1000_vs_10_classes" in md
    if not all(t["pass"] for t in report["targets"].values()):
        assert (out / "complexity_profile.txt").is_file()


def test_gflops_count_attention_on_cpu(tiny_backbone):
    """FlopCounterMode has no formula for CPU's fused attention; ours adds it (2·2·N²·d per block)."""
    import lorevit
    from lorevit.bench.complexity import count_gflops

    model = lorevit.create_model("linear", ["a", "b"], backbone=tiny_backbone)
    x = torch.randn(1, 3, TINY_SIZE, TINY_SIZE)
    N, d, depth = tiny_backbone.num_patches + 1, tiny_backbone.dim, tiny_backbone.depth
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as plain:
        model(x)
    extra = count_gflops(model, x) * 1e9 - plain.get_total_flops()
    assert extra == pytest.approx(depth * 2 * (2 * N * N * d), rel=1e-6)


def test_lore_inference_flops_by_hand(tiny_backbone):
    """LORE over the Black Box, counted: prompts cost only keys/values and the attention to them;
    LIN runs its folded W_mix·W1 and W2 after pooling; PG's two bottlenecks. Also right after a
    training step (weights changed), the one-off re-fold is not counted per image."""
    import lorevit
    from lorevit.bench.complexity import count_gflops

    x = torch.randn(1, 3, TINY_SIZE, TINY_SIZE)
    plain = count_gflops(lorevit.create_model("linear", ["a", "b"], backbone=tiny_backbone), x)
    lore = lorevit.create_model("lore-no-kp", ["a", "b"], backbone=tiny_backbone)
    L, d, M = tiny_backbone.depth, tiny_backbone.dim, tiny_backbone.num_patches
    N, n, r, n_loc = M + 1, 10, 32, 2
    prompts = L * (2 * d * d * n + 2 * N * n * d)  # per block: K, V of n prompts; N queries × n more keys
    lin = M * M * d + M * 2 * d * d + d * d  # kNN similarity; folded [e, e'] → hidden; W2 on the mean
    pg = (d * r + r * d) + (d * r + r * L * n_loc * d)  # Ψ1, Ψ2
    expected = 2 * (prompts + lin + pg) / 1e9  # 2 FLOPs per multiply-add
    assert count_gflops(lore, x) - plain == pytest.approx(expected, rel=1e-6)
    lore.train()(x).logits.sum().backward()
    with torch.no_grad():
        lore.method.lin.w1.weight.add_(0.1)
    assert count_gflops(lore, x) - plain == pytest.approx(expected, rel=1e-6)


def test_complexity_rejects_unknown_method(tmp_path, capsys):
    rc = main(["bench", "complexity", *TINY, "--methods", "linear,bogus", "--output", str(tmp_path)])
    assert rc == 2 and "bogus" in capsys.readouterr().err


# ----------------------------------------------------------------------------- ablation


def test_ablation_end_to_end_and_resume(tmp_path, color_folder, capsys):
    out = tmp_path / "ablation"
    args = ["bench", "ablation", *TINY, "--dataset", "imagefolder", "--data-root", str(color_folder),
            "--methods", "linear,lore,zero-shot", "--shots", "2", "--seeds", "0", "--epochs", "1",
            "--batch-size", "8", "--test-subset", "9", "--accelerator", "cpu", "--output", str(out)]
    assert main(args) == 0
    report = json.loads((out / "ablation.json").read_text())
    setup = report["setup"]
    for key in ("backbone", "weights", "knowledge", "dataset", "img_size", "epochs", "shots", "seeds", "methods",
                "test", "test_subset", "budget_note"):
        assert key in setup, key
    assert setup["shots"] == [2] and setup["seeds"] == [0] and setup["test_subset"] == 9
    results = report["results"]
    assert set(results) == {"linear", "lore", "zero-shot"}
    for method in ("linear", "lore"):
        entry = results[method]["2"]
        assert set(entry) >= {"mean", "std", "runs", "trainable_params"}
        assert _number(entry["mean"]) and 0 <= entry["mean"] <= 100 and entry["std"] == 0.0
        assert len(entry["runs"]) == 1 and entry["runs"][0] == entry["mean"]
        assert isinstance(entry["trainable_params"], int) and entry["trainable_params"] > 0
        metrics = json.loads((out / "runs" / method / "2shot" / "seed0" / "metrics.json").read_text())
        assert metrics["num_test"] == 9 and metrics["num_train"] == 6 and metrics["test_top1"] == entry["runs"][0]
    # same few-shot images for every method within a seed
    indices = [json.loads((out / "runs" / m / "2shot" / "seed0" / "indices.json").read_text())["train"]
               for m in ("linear", "lore")]
    assert indices[0] == indices[1]
    assert results["zero-shot"]["2"]["mean"] is None and results["zero-shot"]["2"]["note"].startswith("n/a")
    md = (out / "ablation.md").read_text()
    assert "| LORE |" in md and "n/a" in md
    with Image.open(out / "ablation.png") as png:
        assert png.size[0] > 300 and png.size[1] > 200
    capsys.readouterr()

    # resumable: nothing is retrained, the numbers are read back
    assert main(args) == 0
    assert "done before" in capsys.readouterr().out
    assert json.loads((out / "ablation.json").read_text())["results"] == results

    # a run a signal stopped (what SIGTERM leaves: metrics.json "preempted", the last checkpoint, no adapter) is
    # continued from its checkpoint, not counted as done (it has no test_top1) and not started over
    run = out / "runs" / "linear" / "2shot" / "seed0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    (run / "metrics.json").write_text(json.dumps({"method": "linear", "status": "preempted", "signal": "SIGTERM",
                                                  "epoch": 1, "checkpoint": "checkpoints/last.ckpt"}))
    (run / "adapter.safetensors").unlink()
    assert main(args) == 0
    assert "linear 2-shot seed 0: stopped before its end, resuming" in capsys.readouterr().out
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["status"] == "finished" and (run / "adapter.safetensors").is_file()
    assert json.loads((out / "ablation.json").read_text())["results"] == results  # the same checkpoint, the same test

    # a finished run with other settings is not silently mixed in
    changed = [a if a != "1" else "2" for a in args]  # --epochs 2
    assert main(changed) == 2
    assert "different settings" in capsys.readouterr().err


def test_ablation_rejects_bad_input(tmp_path, capsys):
    assert main(["bench", "ablation", "--methods", "linear,nope", "--output", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["bench", "ablation", "--shots", "4,x", "--output", str(tmp_path)]) == 2


def _synthetic(methods_means, shots=("4", "16")):
    results = {m: {k: {"mean": v + i, "std": 1.0, "runs": [v + i - 1, v + i + 1], "trainable_params": 10}
                   for i, k in enumerate(shots)} for m, v in methods_means.items()}
    return {"setup": {"shots": [int(k) for k in shots], "seeds": [0, 1], "backbone": "b", "weights": "w",
                      "img_size": 56, "knowledge": "st:minilm", "dataset": "d", "epochs": 1, "batch_size": 8,
                      "lr": 0.003, "test": "t"}, "results": results}


def test_claim_check_and_table(tmp_path):
    from lorevit.bench.ablation import ablation_markdown, check_claim, plot_ablation

    report = _synthetic({"linear": 60, "vpt-deep": 70, "lore-no-kp": 72, "lore": 75})
    claim = check_claim(report["results"])
    assert claim["4"]["holds"] and claim["4"]["ranking"] == ["lore", "lore-no-kp", "vpt-deep", "linear"]
    report["claim"] = claim
    md = ablation_markdown(report)
    assert "75.00 ± 1.00" in md and "holds" in md
    bad = _synthetic({"linear": 80, "vpt-deep": 70, "lore-no-kp": 72, "lore": 75})["results"]
    assert not check_claim(bad)["16"]["holds"]
    path = plot_ablation(report, tmp_path / "a.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[1] > 100



def test_data_bench_loader_vs_step(tmp_path, color_folder, capsys):
    """`lorevit bench data` on a generated ImageFolder: loader and step rates and their ratio in data.json."""
    import json

    out = tmp_path / "data"
    args = ["bench", "data", "--data-root", str(color_folder), "--workers", "0,1", "--batches", "2",
            "--batch-size", "4", "--img-size", "32", "--classes", "3", "--step-repeats", "1",
            "--backbone", "vit_tiny_patch16_224", "--weights", "random", "--device", "cpu",
            "--backbone-kwargs", "{patch_size: 8, depth: 2, embed_dim: 32, num_heads: 2}", "--output", str(out)]
    assert main(args) == 0
    report = json.loads((out / "data.json").read_text())
    assert set(report["loader_images_per_s"]) == {"0 workers", "1 workers"}
    assert report["step_images_per_s"] > 0
    for label, rate in report["loader_images_per_s"].items():
        assert rate > 0 and report["ratio_loader_over_step"][label] == pytest.approx(
            rate / report["step_images_per_s"], rel=1e-2)
    assert "loader / step" in (out / "data.md").read_text()
    assert main(["bench", "data", "--workers", "x", "--output", str(out)]) == 2


def test_loader_workers_default_follows_the_machine():
    from lorevit.config import Config
    from lorevit.training.loaders import loader_workers

    assert loader_workers(Config(num_workers=3, accelerator="cpu")) == (3, False)
    assert loader_workers(Config(accelerator="cpu")) == (0, False)  # CPU: workers would steal the compute's cores
    workers, pin = loader_workers(Config(accelerator="gpu"))
    assert 1 <= workers <= 8 and pin
