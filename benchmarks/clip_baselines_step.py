"""Train-step time of the CLIP baselines beside zero-shot CLIP's forward, in one run (issue 20).

ViT-B/16 image tower (timm) + the open_clip ViT-B-16 text tower, random weights (offline), C classes, batch B, CPU
by default. Writes JSON: seconds per zero-shot forward and per training step (forward + backward) of each method,
and each step's ratio to the zero-shot forward.

    python benchmarks/clip_baselines_step.py --classes 10 --batch 4 --repeats 2 --output clip-step.json
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

import lorevit
from lorevit.backbone import create_backbone

METHODS = ("coop", "cocoop", "prograd", "clip-adapter")


def _seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--output", default="clip-baselines-step.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    vit = create_backbone("vit_base_patch16_clip_quickgelu_224", "random", 224)
    classes = [f"class {i}" for i in range(args.classes)]
    images = torch.randn(args.batch, 3, 224, 224)
    labels = torch.arange(args.batch) % args.classes
    zero_shot = lorevit.create_model("zero-shot", classes, backbone=vit, knowledge="clip:auto").eval()

    def forward():
        with torch.no_grad():
            zero_shot(images)

    base = _seconds(forward, args.repeats)
    results = {"zero-shot forward": {"seconds": base, "vs_zero_shot_forward": 1.0}}
    for method in args.methods.split(","):
        model = lorevit.create_model(method, classes, backbone=vit, knowledge="clip:auto").train()

        def step():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(images).logits, labels).backward()

        seconds = _seconds(step, args.repeats)
        results[f"{method} step"] = {"seconds": seconds, "vs_zero_shot_forward": seconds / base,
                                     "trainable_params": model.parameter_counts()[0]}
    report = {"setting": {"backbone": "ViT-B/16 (random weights)", "classes": args.classes, "batch": args.batch,
                          "repeats": args.repeats, "device": "cpu", "threads": torch.get_num_threads()},
              "results": results}
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
