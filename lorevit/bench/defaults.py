"""Benchmark defaults, in a module without torch so that ``lorevit --help`` stays fast."""

ALL_METHODS = ("linear", "vpt-shallow", "vpt-deep", "lore-no-kp", "lore", "zero-shot")  # the ablation's rows
ABLATION_DEFAULTS = dict(img_size=112, epochs=10, weight_decay=1e-3, test_subset=2000, test_seed=0, progress=False)  # the README table's setting
DEFAULT_SHOTS = (4, 16)
DEFAULT_SEEDS = (0, 1, 2)
COST_METHODS = ("linear", "vpt-deep", "lore-no-kp", "lore")  # the cost table's rows
