"""Write the paper's experiment configs (configs/paper/**/*.yaml) from one table.

Run ``python configs/paper/generate.py`` after changing the table; the YAMLs are committed so
that nobody needs to run this. Every file uses only keys of ``lorevit.config.Config``.
"""
from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

FEW_SHOT = (  # dataset, paper accuracy (CLIP ViT-B/16 LORE) at 16 and 8 shots, spec Table 1
    ("flowers102", 98.98, 97.48),
    ("stanford-cars", 87.20, 81.25),
    ("fgvc-aircraft", 54.34, 42.99),
    ("stanford-dogs", 78.14, 70.72),
    ("cifar10", 93.19, 87.79),
    ("cifar100", 72.39, 64.75),
    ("dtd", 75.00, 70.21),
    ("imagenet", 72.16, 70.65),
    ("eurosat", 87.04, 76.95),
    ("resisc45", 88.94, 84.25),
    ("ucf101", 87.13, 83.48),
    ("patternnet", 98.04, 96.51),
)
BACKBONES = {  # tag: (timm backbone, knowledge encoder)
    "clip-b16": ("vit_base_patch16_clip_224.openai", "clip:ViT-B-16@openai"),
    "clip-b32": ("vit_base_patch32_clip_224.openai", "clip:ViT-B-32@openai"),
    "in21k-b16": ("vit_base_patch16_224.augreg_in21k", "clip:ViT-B-16@openai"),
}
ABLATION_DATASETS = ("cifar10", "cifar100", "dtd", "imagenet")
ABLATION_PAPER = {  # spec Table 5: 16-shot average over the four ablation datasets
    ("vpt-deep", "in21k-b16"): 74.01, ("vpt-deep", "clip-b16"): 73.91,
    ("lore-no-kp", "in21k-b16"): 75.24, ("lore-no-kp", "clip-b16"): 77.16,
    ("lore", "in21k-b16"): 76.38, ("lore", "clip-b16"): 78.19,
}
FULL_DATA = ("cifar100", "tiny-imagenet", "imagenet100", "imagenet")

EPOCHS_NOTE = "epochs: 10 as in the public few-shot configs; the paper says 50 epochs"


def base(dataset: str, tag: str, output: str) -> dict:
    backbone, knowledge = BACKBONES[tag]
    return {
        "method": "lore",
        "backbone": backbone,
        "weights": None,
        "knowledge": knowledge,
        "dataset": dataset,
        "protocol": "few-shot",
        "shots": 16,
        "img_size": 224,
        "epochs": 10,
        "batch_size": 32,
        "lr": 0.003,
        "lr_min": 0.0001,
        "seed": 0,
        "output": f"runs/paper/{output}",
    }


def write(rel: str, values: dict, comments: list[str]) -> None:
    path = HERE / f"{rel}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "".join(f"# {c}\n" for c in comments)
    path.write_text(head + yaml.safe_dump(values, sort_keys=False))


def main() -> None:
    for dataset, acc16, acc8 in FEW_SHOT:
        for shots, acc in ((16, acc16), (8, acc8)):
            for tag in ("clip-b16", "clip-b32"):
                name = f"few-shot/{dataset}-{shots}shot-{tag}"
                paper = f"{acc:.2f}" if tag == "clip-b16" else "see Table 2 (not in our spec)"
                cfg = base(dataset, tag, name) | {"shots": shots}
                write(name, cfg, [f"LORE few-shot, {dataset}, {shots} shots, {BACKBONES[tag][0]}",
                                  f"paper: {paper}", EPOCHS_NOTE])
        for n in (16, 8):
            name = f"easy-to-hard/{dataset}-{n}per-stage-clip-b16"
            cfg = base(dataset, "clip-b16", name) | {
                "protocol": "easy-to-hard", "stage_shots": n, "hard_lr": 0.0005, "hard_epochs": 5,
            }
            del cfg["shots"]  # the stages pick stage_shots images per class from the training split
            write(name, cfg, [f"LORE easy-to-hard (LORE-e then LORE-h), {dataset}, {n} images per class per stage",
                              "paper: not in our spec", EPOCHS_NOTE + " (easy stage); hard stage 5 epochs as in the public code"])
    for dataset in ABLATION_DATASETS:
        for tag in ("in21k-b16", "clip-b16"):
            for method in ("vpt-deep", "lore-no-kp", "lore"):
                name = f"ablation/{dataset}-16shot-{tag}-{method}"
                cfg = base(dataset, tag, name) | {"method": method}
                write(name, cfg, [f"ablation (Table 5), {method}, {dataset}, 16 shots, {BACKBONES[tag][0]}",
                                  f"paper: {ABLATION_PAPER[(method, tag)]:.2f} (average over {', '.join(ABLATION_DATASETS)}; "
                                  "no per-dataset number in our spec)", EPOCHS_NOTE])
    for dataset in FULL_DATA:
        name = f"full/{dataset}-clip-b16"
        cfg = base(dataset, "clip-b16", name) | {"protocol": "full"}
        write(name, cfg, [f"LORE full-data classification, {dataset}, CLIP ViT-B/16",
                          "paper: not in our spec",
                          "epochs: the spec fixes no full-data schedule; 10 as in the public configs"])


if __name__ == "__main__":
    main()
