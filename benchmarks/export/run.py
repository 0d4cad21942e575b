"""Benchmark (issue 12 §2): images/s of the exported ONNX model in onnxruntime vs PyTorch eager.

    .venv/bin/python benchmarks/export/run.py [--adapter runs/demo] [--batch-sizes 1,32] [--repeats 10]
                                              [--threads 1,2] [--images 256] [--output benchmarks/export]

Exports the adapter with ``lorevit.export.export_onnx`` (into a temporary folder), then on the same
real test images of the adapter's dataset (preprocessed once, as ``lorevit predict`` does) times
PyTorch eager (``torch.inference_mode``) and the onnxruntime CPU session side by side in one process,
with the same thread count (each of --threads), repeats interleaved (the order alternates each repeat) after warm-up.
Reports medians as images/s, the ratio onnxruntime / eager per batch size, the export's own
max |Δlogits| check, and the agreement of the two on all ``--images`` images (max |Δlogits| and
top-1 agreement). Writes ``export.json`` and ``export.md`` at the end (atomic).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from lorevit.adapter import load_adapter
from lorevit.data import build_dataset
from lorevit.export import export_onnx
from lorevit.io import write_json, write_text
from lorevit.training import image_transforms


def test_images(cfg, data_config: dict, count: int) -> torch.Tensor:
    """The first ``count`` test images of the adapter's dataset, preprocessed: N, 3, S, S."""
    dataset = build_dataset(cfg.dataset, "test", root=cfg.data_root,
                            transform=image_transforms(data_config, cfg.img_size, train=False))
    return torch.stack([dataset[i][0] for i in range(min(count, len(dataset)))])


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default="runs/demo")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                        help="comma-separated thread counts, each used by both runtimes")
    parser.add_argument("--images", type=int, default=256, help="real test images for the agreement check")
    parser.add_argument("--output", default="benchmarks/export")
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    thread_counts = sorted({int(t) for t in args.threads.split(",")})

    model, cfg = load_adapter(args.adapter)
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_onnx(args.adapter, Path(tmp) / "model.onnx")
        sessions = {}
        for threads in thread_counts:
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            sessions[threads] = ort.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
    session = sessions[thread_counts[-1]]
    print(f"exported in {exported.seconds:.1f} s ({exported.size_bytes / 1e6:.1f} MB); "
          f"check max |Δlogits| {exported.max_abs_diff:.2e}")

    images = test_images(cfg, model.backbone.data_config, max(args.images, max(batch_sizes)))  # N, 3, S, S

    def eager(batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(batch).logits.numpy()

    def onnx(batch: torch.Tensor) -> np.ndarray:
        return session.run(["logits"], {"images": batch.numpy()})[0]

    # Agreement on real images, in batches of the largest size.
    step = max(batch_sizes)
    got = np.concatenate([onnx(images[i:i + step]) for i in range(0, len(images), step)])
    ref = np.concatenate([eager(images[i:i + step]) for i in range(0, len(images), step)])
    agreement = {"images": len(images), "max_abs_diff_logits": float(np.abs(got - ref).max()),
                 "top1_agree": float((got.argmax(1) == ref.argmax(1)).mean())}
    print(f"agreement on {len(images)} test images: max |Δlogits| {agreement['max_abs_diff_logits']:.2e}, "
          f"top-1 agree {agreement['top1_agree'] * 100:.1f}%")

    rows = []
    for threads, size in [(t, b) for t in thread_counts for b in batch_sizes]:
        torch.set_num_threads(threads)
        session = sessions[threads]
        batch = images[:size].contiguous()
        for _ in range(args.warmup):
            eager(batch), onnx(batch)
        times = {"eager": [], "onnxruntime": []}
        for r in range(args.repeats):
            order = ("eager", "onnxruntime") if r % 2 == 0 else ("onnxruntime", "eager")
            for name in order:
                times[name].append(timed(lambda: (eager if name == "eager" else onnx)(batch)))
        speed = {name: size / statistics.median(t) for name, t in times.items()}
        paired = statistics.median(e / o for e, o in zip(times["eager"], times["onnxruntime"]))
        rows.append({"threads": threads, "batch_size": size, "eager_images_per_s": speed["eager"],
                     "onnxruntime_images_per_s": speed["onnxruntime"],
                     "ratio_onnxruntime_vs_eager": speed["onnxruntime"] / speed["eager"],
                     "same_repeat_ratio_median": paired, "seconds": times})
        print(f"{threads} thread(s), batch {size}: eager {speed['eager']:.1f} img/s, onnxruntime {speed['onnxruntime']:.1f} img/s, "
              f"ratio {speed['onnxruntime'] / speed['eager']:.3f} (same-repeat median {paired:.3f})")

    setup = {"adapter": args.adapter, "method": cfg.method, "backbone": cfg.backbone, "weights": cfg.weights,
             "img_size": cfg.img_size, "classes": model.num_classes, "threads": thread_counts,
             "repeats": args.repeats, "warmup": args.warmup, "device": f"cpu ({platform.machine()})",
             "torch": torch.__version__, "onnxruntime": ort.__version__, "python": platform.python_version(),
             "command": " ".join([".venv/bin/python", "benchmarks/export/run.py", *(argv or sys.argv[1:])])}
    export = {k: v for k, v in exported.to_dict().items() if k not in ("path", "report", "metadata")}
    result = {"setup": setup, "export": export, "agreement": agreement, "throughput": rows}
    out = Path(args.output)
    write_json(out / "export.json", result)
    write_text(out / "export.md", markdown(result))
    print(f"written to {out}/export.{{json,md}}")
    return 0


def markdown(result: dict) -> str:
    s, e, a = result["setup"], result["export"], result["agreement"]
    lines = [
        "# ONNX export: onnxruntime vs PyTorch eager",
        "",
        f"Adapter `{s['adapter']}` ({s['method']}, `{s['backbone']}` {s['weights']}, {s['img_size']} px, "
        f"{s['classes']} classes), {s['device']} shared with other jobs, the same thread count for both, torch {s['torch']}, "
        f"onnxruntime {s['onnxruntime']}. Medians of {s['repeats']} interleaved repeats after {s['warmup']} warm-up.",
        "",
        "| threads | batch | PyTorch eager img/s | onnxruntime img/s | ratio ort / eager | same-repeat ratio |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["throughput"]:
        lines.append(f"| {r['threads']} | {r['batch_size']} | {r['eager_images_per_s']:.1f} | {r['onnxruntime_images_per_s']:.1f} | "
                     f"{r['ratio_onnxruntime_vs_eager']:.3f} | {r['same_repeat_ratio_median']:.3f} |")
    lines += [
        "",
        f"Export: opset {e['opset']}, {e['size_bytes'] / 1e6:.1f} MB, {e['seconds']:.1f} s; its check (seeded random "
        f"batch, batch sizes {e['check_batch_sizes']}): max |Δlogits| {e['max_abs_diff']:.2e} (tolerance {e['tolerance']:g}).",
        f"On {a['images']} real test images: max |Δlogits| {a['max_abs_diff_logits']:.2e}, top-1 agreement "
        f"{a['top1_agree'] * 100:.1f} %.",
        "",
        f"Command: `{s['command']}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
