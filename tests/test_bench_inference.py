"""``lorevit bench inference`` through the real CLI on a tiny random ViT (a smoke test of the command, not a timing
test: the numbers are checked for consistency, never for speed), and the GPU Table 7 script's CPU smoke version."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorevit.cli import main

TINY = ["--backbone", "vit_tiny_patch16_224", "--weights", "random", "--img-size", "32",
        "--backbone-kwargs", "{patch_size: 8, depth: 2, embed_dim: 32, num_heads: 2}"]
ROOT = Path(__file__).resolve().parent.parent


def test_bench_inference_writes_side_by_side_ratios(tmp_path):
    out = tmp_path / "inference"
    rows = ["linear", "vpt-deep", "lore", "lore-unshared", "lora+merged"]
    assert main(["bench", "inference", *TINY, "--methods", ",".join(rows), "--batch-sizes", "1,3",
                 "--threads", "1", "--runtime", "eager,onnx", "--repeats", "2", "--min-time", "0",
                 "--output", str(out)]) == 0
    report = json.loads((out / "inference.json").read_text())
    assert report["setup"]["methods"] == rows and report["setup"]["batch_sizes"] == [1, 3]
    assert "load_average_before" in report["setup"]
    seen = {(e["runtime"], e["batch_size"]) for e in report["results"]}
    assert seen == {("eager", 1), ("eager", 3), ("onnx", 1), ("onnx", 3)}
    for entry in report["results"]:
        assert entry["threads"] == 1 and entry["dtype"] == "fp32" and set(entry["methods"]) == set(rows)
        plain = entry["methods"]["linear"]
        assert plain["vs_plain_vit"] == 1.0 and plain["vs_plain_vit_paired"] == 1.0
        for row, r in entry["methods"].items():
            assert len(r["batch_s"]) == 2 and r["img_per_s"] > 0
            assert r["vs_plain_vit"] == pytest.approx(r["img_per_s"] / plain["img_per_s"], rel=1e-3)
            if entry["runtime"] == "onnx":  # the exported graph computes the eager logits
                assert r["onnx_max_abs_diff_logits"] < 1e-4
    markdown = (out / "inference.md").read_text()
    assert "## eager, fp32, torch.compile off, 1 threads" in markdown and "## onnx, fp32" in markdown
    assert all(f"| `{row}` |" in markdown for row in rows)


@pytest.mark.parametrize("flags, fragment", [
    (["--runtime", "tensorrt"], "--runtime tensorrt: choose from eager, onnx"),
    (["--dtype", "fp8"], "--dtype fp8: choose from fp32, bf16"),
    (["--methods", "nope"], "'nope' is not a method"),
    (["--methods", "vpt-deep+merged"], "cannot be merged"),
    (["--batch-sizes", "0"], "--batch-sizes takes positive integers"),
    (["--batch-sizes", "a"], "--batch-sizes takes comma-separated integers"),
])
def test_bad_flags_are_one_error_line(tmp_path, capsys, flags, fragment):
    out = tmp_path / "never"
    assert main(["bench", "inference", *TINY, *flags, "--output", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lorevit: error:")]
    assert len(errors) == 1 and fragment in errors[0]
    assert not out.exists()


def test_gpu_table7_script_smoke_runs_on_cpu(tmp_path):
    """benchmarks/gpu/table7.sh's SMOKE=1 version: the same command and flags (fp32 and bf16) at tiny sizes."""
    env = {**os.environ, "SMOKE": "1", "PY": sys.executable, "OUT": str(tmp_path / "gpu")}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "table7.sh")], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu" / "inference.json").read_text())
    assert {e["dtype"] for e in report["results"]} == {"fp32", "bf16"}
    assert set(report["results"][0]["methods"]) == {"linear", "vpt-deep", "lore", "lore-unshared"}


def test_rows_are_interleaved_with_the_order_rotated_each_repeat():
    """No row always runs first (the first place was measured faster): each repeat starts one row later."""
    import torch

    from lorevit.bench.inference import time_rows

    calls: list[str] = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "ABC"}
    times, counts = time_rows(steps, repeats=4, warmup=1, min_time=0.0, device=torch.device("cpu"))
    timed = calls[len(steps) + 1:]  # after the warm-up round and the one call that sizes a measurement
    assert timed == list("ABC" "BCA" "CAB" "ABC")
    assert {name: len(t) for name, t in times.items()} == {"A": 4, "B": 4, "C": 4} and set(counts.values()) == {1}


def load_before_after():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_before_after",
                                                  ROOT / "benchmarks" / "inference" / "demo_before_after.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_before_after_benchmark_gives_the_older_program_a_config_it_reads(tmp_path):
    """benchmarks/inference/demo_before_after.py: the older program's copy of the adapter keeps only the config
    keys it knows (a nested value goes with its key) and its own eval batch; the tensors are the same bytes."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    bench = load_before_after()
    config = "method: lore\n# a comment\nmethod_options:\n  n_global: 8\neval_batch_size: auto\non_nonfinite: stop\n" \
             "newer_nested:\n  a: 1\nlr: 0.003\n"
    assert bench.older_config(config, {"method", "method_options", "eval_batch_size", "lr"}, 128) == \
        "method: lore\n# a comment\nmethod_options:\n  n_global: 8\neval_batch_size: 128\nlr: 0.003\n"

    run = tmp_path / "run"
    run.mkdir()
    tensors = {"w": torch.arange(6.0).reshape(2, 3)}
    save_file(tensors, str(run / "adapter.safetensors"), metadata={"config": config, "method": "lore"})
    (run / "config.yaml").write_text(config)
    (run / "indices.json").write_text("{}")
    copy = bench.adapter_for_before(run, tmp_path / "copy", {"method", "eval_batch_size"}, 64)
    expected = "method: lore\n# a comment\neval_batch_size: 64\n"
    assert (copy / "config.yaml").read_text() == expected and (copy / "indices.json").read_text() == "{}"
    with safe_open(str(copy / "adapter.safetensors"), framework="pt") as f:
        assert f.metadata() == {"config": expected, "method": "lore"}
        assert torch.equal(f.get_tensor("w"), tensors["w"])
    assert (run / "config.yaml").read_text() == config  # the run itself is untouched
