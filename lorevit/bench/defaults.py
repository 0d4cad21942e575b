"""Benchmark defaults, in a module without torch so that ``lorevit --help`` stays fast."""

ALL_METHODS = ("linear", "vpt-shallow", "vpt-deep", "lore-no-kp", "lore", "zero-shot")  # the ablation's rows
ABLATION_DEFAULTS = dict(img_size=112, epochs=10, weight_decay=1e-3, test_subset=2000, test_seed=0, progress=False)  # the ablation table's setting (docs/results.md)
DEFAULT_SHOTS = (4, 16)
DEFAULT_SEEDS = (0, 1, 2)
COST_METHODS = ("linear", "vpt-deep", "lore-no-kp", "lore")  # the cost table's rows
# bench complexity rows (issue 19 §2). A row is any registered method's name (its default options), ``NAME+merged``
# for a mergeable one (built, then model.merge()), or one of these named variants: row → (method, options, merged).
COST_VARIANTS = {
    "lore-public": ("lore", {"white_box": "public"}, False),
    "lora-qv": ("lora", {"targets": "qv"}, False),
    "adaptformer-k8": ("adaptformer", {"bottleneck_dim": 8}, False),
    "adapter-pfeiffer": ("adapter", {"style": "pfeiffer"}, False),
}
# ``--methods all``: every vision row side by side (the cost table of docs/vision-baselines.md)
ALL_COST_ROWS = ("linear", "vpt-shallow", "vpt-deep", "lore-no-kp", "lore", "lore-public", "lora", "lora+merged",
                 "lora-qv", "adaptformer-k8", "adaptformer", "adapter", "adapter-pfeiffer", "ssf", "ssf+merged",
                 "bitfit", "full")
# ``--methods clip``: the CLIP baselines of issue 20 beside the plain ViT (a CLIP backbone, --knowledge clip:auto);
# ``cocoop@100``/``cocoop@1000``: CoCoOp at 100 and 1,000 classes (BASELINES_CLIP §3: its text tower runs B·C sequences)
CLIP_COST_ROWS = ("linear", "coop", "cocoop", "cocoop@100", "cocoop@1000", "prograd", "clip-adapter", "maple",
                  "clip-lora", "clip-lora+merged")
MERGED_SUFFIX = "+merged"
CLASSES_SEPARATOR = "@"
INFERENCE_METHODS = ("linear", "vpt-deep", "lore", "lora+merged")  # bench inference's rows (issue 24)


def cost_row(row: str) -> tuple[str, dict, bool]:
    """(method, method_options, merged) of a bench complexity row name (see COST_VARIANTS; ``@C``: row_classes)."""
    row = row.partition(CLASSES_SEPARATOR)[0]
    if row in COST_VARIANTS:
        method, options, merged = COST_VARIANTS[row]
        return method, dict(options), merged
    if row.endswith(MERGED_SUFFIX):
        return row[: -len(MERGED_SUFFIX)], {}, True
    return row, {}, False


def row_classes(row: str, default: int) -> int | None:
    """The class count of a bench complexity row: ``NAME@C`` → C (e.g. ``cocoop@1000``), else ``default``; None for
    a suffix that is no positive integer."""
    _, sep, count = row.partition(CLASSES_SEPARATOR)
    if not sep:
        return default
    return int(count) if count.isdigit() and int(count) > 0 else None
