"""The public code's per-dataset recipes (LORE_SPEC "Public per-dataset recipes"; issue 11 §4).

One table, read by ``configs/paper/generate.py`` to write ``configs/paper/**.yaml`` and shown in
docs/recipes.md. Values are ``lorevit.config.Config`` keys. Every recipe trains with SGD
(momentum 0.9), lr → 0.0001 cosine and λ = 0.1; only what differs per dataset is listed here.
No torch import: the CLI may read this while building its parser.
"""
from __future__ import annotations

LR_MIN = 0.0001
HARD_EPOCHS = 5  # easy-to-hard stage 2: always 5 epochs, a fresh SGD from hard_lr to LR_MIN

# dataset: (epochs, weight decay at 16 shots, weight decay at 8 shots, batch, lr) — CLIP ViT-B/16
FEW_SHOT_B16: dict[str, tuple[int, float, float, int, float]] = {
    "imagenet": (50, 0.1, 0.2, 64, 0.003),
    "fgvc-aircraft": (50, 0.5, 1.0, 64, 0.003),
    "stanford-cars": (50, 0.5, 1.0, 64, 0.003),
    "stanford-dogs": (50, 1.0, 1.0, 64, 0.003),
    "dtd": (50, 0.5, 1.0, 64, 0.003),
    "ucf101": (50, 0.5, 1.0, 64, 0.003),
    "flowers102": (50, 0.5, 0.5, 64, 0.003),
    "resisc45": (50, 0.5, 0.5, 64, 0.003),
    "patternnet": (50, 0.5, 0.5, 64, 0.003),
    "eurosat": (50, 1.0, 1.0, 32, 0.0015),
    "cifar10": (20, 0.001, 0.001, 32, 0.003),
    "cifar100": (10, 0.001, 0.001, 32, 0.003),
}

# CLIP ViT-B/32 (few-shot only): the B/16 recipe except these (dataset, shots) entries
FEW_SHOT_B32_CHANGES: dict[tuple[str, int], dict] = {
    ("imagenet", 16): {"lr": 0.008, "batch_size": 128},
    ("cifar100", 8): {"weight_decay": 0.0001},
    ("eurosat", 8): {"lr": 0.002},
}

# easy-to-hard stage 1 (the public `h` configs), per dataset: {images per class per stage: (epochs, weight decay)}.
# Where the issue gives a range (CIFAR-10 10–20 epochs / 0.001–0.0001, EuroSAT 30–50 / 0.5–1.0) we take the
# few-shot recipe's value, which lies inside it; Cars, Flowers and UCF101 are pinned at 8 per stage only and use
# the same values at 16 (EASY_ASSUMED).
EASY_STAGE: dict[str, dict[int, tuple[int, float]]] = {
    "imagenet": {16: (20, 0.05), 8: (20, 0.05)},
    "cifar100": {16: (10, 0.001), 8: (10, 0.001)},
    "cifar10": {16: (20, 0.001), 8: (20, 0.001)},
    "fgvc-aircraft": {16: (30, 0.2), 8: (30, 0.5)},
    "stanford-dogs": {16: (30, 0.2), 8: (30, 0.5)},
    "dtd": {16: (30, 0.2), 8: (30, 0.5)},
    "resisc45": {16: (30, 0.2), 8: (30, 0.5)},
    "patternnet": {16: (30, 0.2), 8: (30, 0.5)},
    "stanford-cars": {16: (10, 0.5), 8: (10, 0.5)},
    "flowers102": {16: (10, 0.5), 8: (10, 0.5)},
    "ucf101": {16: (20, 0.5), 8: (20, 0.5)},
    "eurosat": {16: (50, 1.0), 8: (50, 1.0)},
}
EASY_STAGE_CHANGES: dict[str, dict] = {"eurosat": {"lr": 0.002, "batch_size": 16}}
EASY_RANGES = {"cifar10": "10–20 epochs, wd 0.001–0.0001", "eurosat": "30–50 epochs, wd 0.5–1.0"}
EASY_ASSUMED = {("stanford-cars", 16), ("flowers102", 16), ("ucf101", 16)}
HARD_LR = {"imagenet": 0.0001, "eurosat": 0.0001}  # stage 2's lr; 0.0005 elsewhere
HARD_LR_DEFAULT = 0.0005


def few_shot_recipe(dataset: str, shots: int, model: str = "clip-b16") -> dict:
    """Config values of the public few-shot recipe; ``model`` ∈ {"clip-b16", "clip-b32"}."""
    if dataset not in FEW_SHOT_B16:
        raise KeyError(f"no public recipe for {dataset!r}; known: {', '.join(FEW_SHOT_B16)}")
    epochs, wd16, wd8, batch, lr = FEW_SHOT_B16[dataset]
    recipe = {"epochs": epochs, "batch_size": batch, "lr": lr, "lr_min": LR_MIN,
              "weight_decay": wd16 if shots == 16 else wd8}
    if model == "clip-b32":
        recipe |= FEW_SHOT_B32_CHANGES.get((dataset, shots), {})
    return recipe


def easy_to_hard_recipe(dataset: str, per_stage: int) -> dict:
    """Config values of the public easy-to-hard recipe (stage 1, then stage 2 with hard_lr / hard_epochs)."""
    epochs, weight_decay = EASY_STAGE[dataset][per_stage]
    _, _, _, batch, lr = FEW_SHOT_B16[dataset]
    recipe = {"epochs": epochs, "batch_size": batch, "lr": lr, "lr_min": LR_MIN, "weight_decay": weight_decay}
    recipe |= EASY_STAGE_CHANGES.get(dataset, {})
    return recipe | {"hard_lr": HARD_LR.get(dataset, HARD_LR_DEFAULT), "hard_epochs": HARD_EPOCHS}


def markdown_table() -> str:
    """The few-shot table as in docs/recipes.md (the docs test compares the two)."""
    rows = ["| dataset | epochs | weight decay 16-shot / 8-shot | batch | lr |", "|---|---|---|---|---|"]
    for dataset, (epochs, wd16, wd8, batch, lr) in FEW_SHOT_B16.items():
        rows.append(f"| {dataset} | {epochs} | {wd16:g} / {wd8:g} | {batch} | {lr:g} |")
    return "\n".join(rows)


def markdown_easy_table() -> str:
    """The easy-to-hard table as in docs/recipes.md."""
    rows = ["| dataset | stage 1 epochs (16 / 8 per stage) | stage 1 weight decay (16 / 8) | batch | stage 1 lr | "
            "stage 2 lr |", "|---|---|---|---|---|---|"]
    for dataset, stages in EASY_STAGE.items():
        (e16, wd16), (e8, wd8) = stages[16], stages[8]
        first = easy_to_hard_recipe(dataset, 16)
        rows.append(f"| {dataset} | {e16} / {e8} | {wd16:g} / {wd8:g} | {first['batch_size']} | {first['lr']:g} | "
                    f"{first['hard_lr']:g} |")
    return "\n".join(rows)
