"""Benchmark (issue 12 §2): images/s of the exported ONNX model in onnxruntime vs PyTorch eager.

    .venv/bin/python benchmarks/export/run.py [--adapter runs/demo] [--batch-sizes 1,32] [--repeats 10]
                                              [--threads 1,2] [--images 256] [--output benchmarks/export]

Exports the adapter with ``lorevit.tools.export.export_onnx`` (into a temporary folder), then on the same
real test images of the adapter's dataset (preprocessed once, as ``lorevit predict`` does) times
PyTorch eager (``torch.inference_mode``) and the onnxruntime CPU session side by side in one run:
each runtime in its own worker process (so neither's idle thread pool slows the other), the same
thread count for both (each of --threads), repeats interleaved (the order alternates each repeat)
after warm-up.
Reports medians as images/s, the ratio onnxruntime / eager per batch size, the export's own
max |Δlogits| check, and the agreement of the two on all ``--images`` images (max |Δlogits| and
top-1 agreement). Writes ``export.json`` and ``export.md`` at the end (atomic).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from lorevit.factory import load_adapter
from lorevit.data import build_dataset
from lorevit.tools.export import export_onnx
from lorevit.utils.io import write_json, write_text
from lorevit.data.transforms import image_transforms


def test_images(cfg, data_config: dict, count: int) -> torch.Tensor:
    """The first ``count`` test images of the adapter's dataset, preprocessed: N, 3, S, S."""
    dataset = build_dataset(cfg.dataset, "test", root=cfg.data_root,
                            transform=image_transforms(data_config, cfg.img_size, train=False))
    return torch.stack([dataset[i][0] for i in range(min(count, len(dataset)))])


def agree(model, onnx_path: Path, images: torch.Tensor, step: int) -> dict:
    """max |Δlogits| and top-1 agreement of onnxruntime and PyTorch on ``images``, in batches of ``step``."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = np.concatenate([model(images[i:i + step]).logits.numpy() for i in range(0, len(images), step)])
    got = np.concatenate([session.run(["logits"], {"images": images[i:i + step].numpy()})[0]
                          for i in range(0, len(images), step)])
    return {"images": len(images), "max_abs_diff_logits": float(np.abs(got - ref).max()),
            "top1_agree": float((got.argmax(1) == ref.argmax(1)).mean())}


def _serve(kind: str, source: str, threads: int, conn) -> None:
    """A worker process: one runtime with ``threads`` threads; times ``run`` requests on the batches it is sent."""
    torch.set_num_threads(threads)
    if kind == "eager":
        model, _ = load_adapter(source)

        def run(batch):
            with torch.inference_mode():
                model(torch.from_numpy(batch))
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle between requests
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

        def run(batch):
            session.run(["logits"], {"images": batch})
    conn.send("ready")
    batch = None
    while (message := conn.recv()) is not None:
        if isinstance(message, np.ndarray):
            batch = message
            conn.send("ok")
        else:
            start = time.perf_counter()
            run(batch)
            conn.send(time.perf_counter() - start)


class Worker:
    """Each runtime in its own process, so that neither's thread pool (torch's OpenMP, onnxruntime's)
    competes with the other's while idle, and each gets a fresh pool of exactly ``threads`` threads
    (in one process, torch.set_num_threads 2 → 1 → 2 and a second runtime's pool made eager 10-35x
    slower at batch 1 on this machine)."""

    def __init__(self, kind: str, source, threads: int):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(kind, str(source), threads, child), daemon=True)

    def __enter__(self) -> "Worker":
        self.process.start()
        assert self.conn.recv() == "ready"
        return self

    def __exit__(self, *exc) -> None:
        self.conn.send(None)
        self.process.join(timeout=30)

    def load(self, batch: np.ndarray) -> None:
        self.conn.send(batch)
        assert self.conn.recv() == "ok"

    def time(self) -> float:
        self.conn.send("run")
        return self.conn.recv()


def race(eager: Worker, onnx: Worker, batch: np.ndarray, threads: int, warmup: int, repeats: int) -> dict:
    """Interleaved repeats (the order alternates) after warm-up: medians as images/s and their ratio."""
    size = len(batch)
    workers = {"eager": eager, "onnxruntime": onnx}
    for worker in workers.values():
        worker.load(batch)
        for _ in range(warmup):
            worker.time()
    times = {"eager": [], "onnxruntime": []}
    for r in range(repeats):
        for name in (("eager", "onnxruntime") if r % 2 == 0 else ("onnxruntime", "eager")):
            times[name].append(workers[name].time())
    speed = {name: size / statistics.median(t) for name, t in times.items()}
    paired = statistics.median(e / o for e, o in zip(times["eager"], times["onnxruntime"]))
    print(f"{threads} thread(s), batch {size}: eager {speed['eager']:.1f} img/s, onnxruntime "
          f"{speed['onnxruntime']:.1f} img/s, ratio {speed['onnxruntime'] / speed['eager']:.3f} "
          f"(same-repeat median {paired:.3f})")
    return {"threads": threads, "batch_size": size, "eager_images_per_s": speed["eager"],
            "onnxruntime_images_per_s": speed["onnxruntime"],
            "ratio_onnxruntime_vs_eager": speed["onnxruntime"] / speed["eager"],
            "same_repeat_ratio_median": paired, "seconds": times}


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
    thread_counts = sorted({int(t) for t in args.threads.split(",")}, reverse=True)
    load_before = os.getloadavg()[0]

    model, cfg = load_adapter(args.adapter)
    images = test_images(cfg, model.backbone.data_config, max(args.images, max(batch_sizes)))  # N, 3, S, S
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_onnx(args.adapter, Path(tmp) / "model.onnx")
        print(f"exported in {exported.seconds:.1f} s ({exported.size_bytes / 1e6:.1f} MB); "
              f"check max |Δlogits| {exported.max_abs_diff:.2e}")
        agreement = agree(model, exported.path, images, max(batch_sizes))
        print(f"agreement on {len(images)} test images: max |Δlogits| {agreement['max_abs_diff_logits']:.2e}, "
              f"top-1 agree {agreement['top1_agree'] * 100:.1f}%")
        num_classes = model.num_classes
        del model  # the timing runs in worker processes
        rows = []
        for threads in thread_counts:
            with Worker("eager", args.adapter, threads) as eager, Worker("onnxruntime", exported.path, threads) as onnx:
                for size in batch_sizes:
                    rows.append(race(eager, onnx, images[:size].numpy(), threads, args.warmup, args.repeats))
    setup = {"adapter": args.adapter, "method": cfg.method, "backbone": cfg.backbone, "weights": cfg.weights,
             "img_size": cfg.img_size, "classes": num_classes, "threads": thread_counts,
             "repeats": args.repeats, "warmup": args.warmup, "device": f"cpu ({platform.machine()})",
             "torch": torch.__version__, "onnxruntime": ort.__version__, "python": platform.python_version(),
             "cpu_count": os.cpu_count(), "load_average_1min": [load_before, os.getloadavg()[0]],
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
        f"Load average (1 min) at start / end: {s['load_average_1min'][0]:.1f} / {s['load_average_1min'][1]:.1f} "
        f"on {s['cpu_count']} cores. When other jobs hold a core, a multi-threaded PyTorch eager run stalls at "
        "its OpenMP barriers (hundreds per forward) far more than onnxruntime's pool: on a shared machine the "
        "1-thread rows are the stable comparison.",
        "",
        f"Command: `{s['command']}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
