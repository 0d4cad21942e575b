"""``lorevit bench ablation``: the methods side by side for k-shot training over seeds (paper Table 5).

Every (method, k, seed) is one run, trained and tested exactly as ``lorevit train`` does (the same
Lightning loop, ``run.fit_and_test``), but with the frozen backbone built *once* for the whole
benchmark and the data built once per (k, seed): within a seed every method trains on the same
sampled images, and every run is tested on the same fixed test subset (``test_seed``).

Output directory::

    ablation.json   {"setup": {...}, "results": {method: {k: {mean, std, runs, trainable_params}}}, "claim": ...}
    ablation.md     the table (mean ± std over seeds), like the paper's Table 5
    ablation.png    bars with error bars (std over seeds)
    runs/<method>/<k>shot/seed<s>/{config.yaml,metrics.json,adapter.safetensors,...}

With a ``grid`` (``--grid epochs=10,30 --grid weight_decay=0.001,0.01``) each method first trains every
grid point for every seed (or the ``--select-seeds``) *without testing* and picks, per method and k, the point with the best mean
accuracy on the validation split (train images held out of the shots, ``val_shots``); only the picked
runs are then tested — the test split is read once (issue 11 §5). Grid runs live in
``runs/<method>/<k>shot/<point>/seed<s>``; ``ablation.json`` gains ``selection``.

``--white-box paper,public`` (``AblationPlan.white_boxes``) trains every method that has a White Box
(``lore``, ``lore-no-kp``) once per variant, on the same images and seeds, as rows ``lore`` (paper)
and ``lore@public`` (runs under ``runs/lore@public/``); the methods without one run once, with the
first variant's config. Without the option the config's ``white_box`` (paper) is the only variant and
the output is the same as before the option existed.

Resumable: a run whose ``metrics.json`` exists is read back, not trained again (its config must
match; otherwise choose another ``--output``). ``ablation.json`` is rewritten atomically after every
run, so partial results survive an interruption.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import yaml

from lorevit.backbone import create_backbone
from lorevit.config import Config
from lorevit.errors import ConfigError
from lorevit.utils.io import atomic_write, write_json, write_text
from lorevit.methods import METHODS
from lorevit.tools.report import seed_stats
from lorevit.bench.defaults import ABLATION_DEFAULTS, ALL_METHODS, DEFAULT_SEEDS, DEFAULT_SHOTS  # noqa: F401 (re-exported)

LABELS = {
    "zero-shot": "zero-shot CLIP", "linear": "B-B (linear probe)", "vpt-shallow": "B-B + VPT-shallow",
    "vpt-deep": "B-B + VPT-deep", "lore-no-kp": "LORE w/o L_kp", "lore": "LORE",
    # the CLIP baselines of LORE's Tables 1–3 (issue 20, BASELINES_CLIP §2–§7)
    "coop": "CoOp", "cocoop": "CoCoOp", "prograd": "ProGrad", "clip-adapter": "CLIP-Adapter", "maple": "MaPLe",
    "clip-lora": "CLIP-LoRA",
}
# The paper's claim (Table 5): LORE > LORE without L_kp > B-B + VPT > the plain Black Box.
CLAIM = ("lore", "lore-no-kp", "vpt-deep", "linear")

# Defaults of the offline ablation: the offline default run's setup (112 px, 10 epochs) with the
# issue's minimum fixed test subset of 2,000 images. Measured on 2 idle CPU cores (ViT-S/14, batch
# 32): a LORE training step ≈ 1.4 s, inference ≈ 47 img/s, so a 16-shot LORE run takes ≈ 2 min and
# the grid (5 trained methods × k ∈ {4, 16} × 3 seeds = 30 runs; zero-shot is n/a without CLIP)
# ≈ 45 min. Sharing the cores with other work stretches it 2–3×.
# Keys whose value must agree between a finished run on disk and the benchmark that reuses it.
RUN_KEYS = ("method", "backbone", "weights", "backbone_kwargs", "knowledge", "dataset", "data_root", "protocol",
            "shots", "test_subset", "test_seed", "img_size", "epochs", "batch_size", "lr", "lr_min", "momentum",
            "weight_decay", "kp_weight", "n_global", "n_local", "vpt_prompts", "bottleneck", "knn", "top_n", "seed",
            "precision", "white_box", "head", "method_options", "recipe")
WHITE_BOX_VARIANTS = ("paper", "public")


def row_key(method: str, white_box: str) -> str:
    """The results key (and run directory) of a method under a White Box variant: ``lore``, ``lore@public``."""
    return method if white_box == "paper" or not METHODS[method].has_white_box else f"{method}@{white_box}"


def row_label(key: str, variants: Sequence[str] = ("paper",)) -> str:
    """``LORE``; with several White Box variants (or another one than the paper's) ``LORE [public W-B]``."""
    method, _, variant = key.partition("@")
    label = LABELS.get(method, method)
    if method in METHODS and METHODS[method].has_white_box and (variant or len(variants) > 1):
        label += f" [{variant or 'paper'} W-B]"
    return label


# Keys a grid may search over on the validation split (the optimisation recipe; the method's own
# architecture is the method).
SELECTABLE = ("epochs", "weight_decay", "lr", "kp_weight", "batch_size")
SHORT = {"epochs": "ep", "weight_decay": "wd", "lr": "lr", "kp_weight": "kp", "batch_size": "bs"}


@dataclass
class AblationPlan:
    base: Config
    methods: Sequence[str] = ALL_METHODS
    shots: Sequence[int] = DEFAULT_SHOTS
    seeds: Sequence[int] = DEFAULT_SEEDS
    full_test: bool = False
    grid: dict[str, list] = field(default_factory=dict)  # key → values, searched on the validation split
    select_seeds: Sequence[int] | None = None  # seeds the grid is searched with (None: all of ``seeds``)

    @property
    def selection_seeds(self) -> list[int]:
        return [int(s) for s in (self.seeds if self.select_seeds is None else self.select_seeds)]

    def points(self) -> list[dict]:
        """Every combination of the grid's values, in the order given (the first wins a tie)."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))] or [{}]
    white_boxes: Sequence[str] | None = None  # White Box variants compared (None: the base config's, paper)

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(self.white_boxes or [self.base.white_box]))

    def rows(self) -> list[tuple[str, str, str]]:
        """(results key, method, white_box) of every row: methods with a White Box once per variant."""
        variants = self.variants
        return [(row_key(m, v), m, v) for m in self.methods
                for v in (variants if METHODS[m].has_white_box else variants[:1])]

    def validate(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
        wrong = [v for v in self.variants if v not in WHITE_BOX_VARIANTS]
        if wrong or not self.variants:
            raise ConfigError(f"--white-box takes comma-separated variants from {', '.join(WHITE_BOX_VARIANTS)}, "
                              f"got {list(self.white_boxes or [])}")
        if not self.methods or not self.shots or not self.seeds:
            raise ConfigError("the ablation needs at least one method, one shot count and one seed")
        if any(int(k) < 1 for k in self.shots):
            raise ConfigError(f"shots must be positive integers, got {list(self.shots)}")
        if self.base.protocol != "few-shot":
            raise ConfigError("the ablation is a few-shot benchmark; protocol must be few-shot")
        if not self.full_test and self.base.test_subset is not None and self.base.test_subset < 1:
            raise ConfigError("test_subset must be a positive integer (or pass --full-test)")
        for key in self.grid:
            if key not in SELECTABLE:
                raise ConfigError(f"--grid {key}: only {', '.join(SELECTABLE)} can be chosen on the validation split")
        if self.grid and any(not self.base.replace(shots=int(k)).validation_shots for k in self.shots):
            raise ConfigError("--grid picks settings on the validation split, which is empty: set --val-shots N")


def point_name(point: dict) -> str:
    """``ep30-wd0.01``: a grid point as a directory name."""
    return "-".join(f"{SHORT[k]}{v:g}" if isinstance(v, float) else f"{SHORT[k]}{v}" for k, v in point.items())


def run_dir(out: Path, key: str, shots: int, seed: int, point: dict | None = None) -> Path:
    folder = out / "runs" / key / f"{shots}shot"
    return (folder / point_name(point) if point else folder) / f"seed{seed}"


def method_options_for(base: Config, method: str) -> dict:
    """The ``method_options`` of ``method``'s runs. One mapping of options applies to every method (as in ``lorevit
    train``); a mapping keyed by method names gives each its own (``{maple: {depth: 2}, coop: {n_ctx: 4}}``: the
    methods side by side need different options; one not named gets its defaults). Mixing both is one ConfigError."""
    options = dict(base.method_options or {})
    named = [k for k in options if k in METHODS]
    if not named:
        return options
    if len(named) != len(options):
        raise ConfigError(f"method_options mixes method names {named} with options "
                          f"{sorted(set(options) - set(named))}: give either one mapping of options for every method "
                          "or one mapping per method, like {maple: {depth: 2}, coop: {n_ctx: 4}}")
    own = options.get(method) or {}
    if not isinstance(own, dict):
        raise ConfigError(f"method_options.{method} must be a mapping of {method}'s options, got {own!r}")
    return dict(own)


def run_config(plan: AblationPlan, out: Path, method: str, shots: int, seed: int, white_box: str | None = None,
               point: dict | None = None) -> Config:
    from lorevit.factory import resolve_config

    white_box = white_box or plan.base.white_box
    # resolved as `lorevit train` resolves it: the method's own recipe (published or lore) over the base
    return resolve_config(plan.base.replace(method=method, shots=int(shots), seed=int(seed), protocol="few-shot", white_box=white_box,
                             output=str(run_dir(out, row_key(method, white_box), shots, seed, point)),
                             test_subset=None if plan.full_test else plan.base.test_subset, resume=False,
                             method_options=method_options_for(plan.base, method), **(point or {})))


def check_runs(plan: AblationPlan, out: Path) -> None:
    """Every row's config as ``lorevit train`` checks it (its options, what the method needs of the backbone and
    knowledge — a CLIP text tower, MaPLe's depth —, Lightning's devices/precision) before the first run: a bad
    input is one error before anything is trained or written, not after the other methods' runs."""
    from lorevit.training.run import validate

    for _, method, white_box in plan.rows():
        if method == "zero-shot" and zero_shot_unavailable(plan.base):
            continue  # reported as n/a in the table
        for k in plan.shots:
            validate(run_config(plan, out, method, k, plan.seeds[0], white_box, (plan.points() or [{}])[0]))


def continue_stopped(cfg: Config, path: Path, label: str, say) -> Config:
    """A run a signal stopped (``metrics.json`` status "preempted": a killed benchmark) continues from its last
    checkpoint instead of counting as done or starting over; anything else runs as configured."""
    from lorevit.training.run import run_status

    if run_status(path) != "preempted":
        return cfg
    say(f"{label}: stopped before its end, resuming from its last checkpoint")
    return cfg.replace(resume="auto")


def zero_shot_unavailable(cfg: Config) -> str | None:
    """Why zero-shot cannot run on this setup (None when it can)."""
    if not cfg.knowledge.startswith("clip:"):
        return f"n/a: zero-shot needs a CLIP backbone and knowledge clip:<model>@<tag>, not {cfg.knowledge}"
    return None


def _check_reusable(cfg: Config, path: Path) -> None:
    saved = path / "config.yaml"
    if not saved.is_file():
        return
    old = yaml.safe_load(saved.read_text()) or {}
    new = cfg.to_dict()
    diff = [k for k in RUN_KEYS if k in old and old[k] != new[k]]
    if diff:
        raise ConfigError(
            f"{path} holds a finished run with different settings ({', '.join(f'{k}: {old[k]!r} ≠ {new[k]!r}' for k in diff)}); "
            "choose another --output for this benchmark"
        )


def aggregate(plan: AblationPlan, finished: dict[tuple[str, int, int], dict], notes: dict[str, str]) -> dict:
    """results[row][k] = {mean, std, runs, trainable_params} over the seeds finished so far (row: ``row_key``)."""
    results: dict[str, dict] = {}
    for method, _, _ in plan.rows():
        results[method] = {}
        for k in plan.shots:
            runs = [finished[(method, k, s)] for s in plan.seeds if (method, k, s) in finished]
            entry = {"mean": None, "std": None, "runs": [], "trainable_params": 0}
            if method in notes:
                entry["note"] = notes[method]
            if runs:
                accs = [round(float(m["test_top1"]), 4) for m in runs]
                entry.update(**seed_stats(accs), runs=accs, trainable_params=int(runs[0]["trainable_params"]),
                             seeds=[s for s in plan.seeds if (method, k, s) in finished])
            results[method][str(k)] = entry
    return results


def check_claim(results: dict) -> dict:
    """Does LORE > LORE w/o L_kp > VPT-deep > linear hold, per k (on the means)?"""
    claim = {}
    present = [m for m in CLAIM if m in results]
    shots = sorted({k for m in present for k in results[m]}, key=int)
    for k in shots:
        means = [results[m][k]["mean"] for m in present]
        if len(present) < 2 or any(v is None for v in means):
            continue
        pairs = {f"{a} > {b}": bool(results[a][k]["mean"] > results[b][k]["mean"]) for a, b in zip(present, present[1:])}
        ranked = sorted((m for m in results if results[m][k]["mean"] is not None),
                        key=lambda m: results[m][k]["mean"], reverse=True)
        claim[k] = {"holds": all(pairs.values()), "pairs": pairs, "ranking": ranked}
    return claim


def ablation_markdown(report: dict) -> str:
    s, results = report["setup"], report["results"]
    shots = [str(k) for k in s["shots"]]
    lines = [
        "# Ablation (paper Table 5)", "",
        f"`{s['backbone']}` ({s['weights']}) at {s['img_size']} px, knowledge `{s['knowledge']}`, "
        f"{s['dataset']}; {s['epochs']} epochs, batch {s['batch_size']}, lr {s['lr']}"
        f"{' (except the grid keys, chosen per method on the validation split: below)' if s.get('grid') else ''}; seeds {s['seeds']} "
        f"(same images for every method within a seed); test: {s['test']}. Top-1 accuracy (%), mean ± std over seeds.",
        "",
        "| method | " + " | ".join(f"{k}-shot" for k in shots) + " | trainable params |",
        "|---|" + "---:|" * len(shots) + "---:|",
    ]
    for method, per_k in results.items():
        cells = []
        for k in shots:
            e = per_k[k]
            if e["mean"] is None:
                cells.append("n/a" if e.get("note") else "…")
            else:
                cells.append(f"{e['mean']:.2f} ± {e['std']:.2f}" + (f" ({len(e['runs'])})" if len(e["runs"]) < len(s["seeds"]) else ""))
        params = max((per_k[k]["trainable_params"] for k in shots), default=0)
        lines.append(f"| {row_label(method, s.get('white_boxes', ('paper',)))} | " + " | ".join(cells) + f" | {params:,} |")
    notes = sorted({e["note"] for per_k in results.values() for e in per_k.values() if e.get("note")})
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines += ["", "Per-seed accuracies:", ""]
    for method, per_k in results.items():
        for k in shots:
            if per_k[k]["runs"]:
                lines.append(f"- {method}, {k}-shot: " + ", ".join(f"{a:.2f}" for a in per_k[k]["runs"]))
    claim = report.get("claim") or {}
    if claim:
        lines += ["", "Paper's claim, LORE > LORE w/o L_kp > VPT-deep > linear (on the means):", ""]
        for k, c in claim.items():
            pairs = ", ".join(f"{p}: {'yes' if ok else 'no'}" for p, ok in c["pairs"].items())
            lines.append(f"- {k}-shot: {'holds' if c['holds'] else 'does not hold'} ({pairs}); "
                         f"ranking {' > '.join(c['ranking'])}")
    if report.get("selection"):
        lines += selection_markdown(report["selection"], s)
    lines += ["", "Paper (16-shot, average of CIFAR-10/100, DTD, ImageNet; CLIP ViT-B/16): B-B + VPT 73.91, "
                  "LORE w/o L_kp 77.16, LORE 78.19."]
    return "\n".join(lines) + "\n"


def plot_ablation(report: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    shots = [str(k) for k in report["setup"]["shots"]]
    methods = [m for m in results if any(results[m][k]["mean"] is not None for k in shots)]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.55 * len(shots) * max(1, len(methods))) + 1.8, 3.6), dpi=120)
    width = 0.8 / max(1, len(methods))
    colors = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(shots))]
        means = [results[method][k]["mean"] or 0.0 for k in shots]
        stds = [results[method][k]["std"] or 0.0 for k in shots]
        bars = ax.bar(xs, means, width * 0.92, yerr=stds, capsize=3,
                      label=row_label(method, report["setup"].get("white_boxes", ("paper",))),
                      color=colors(i), error_kw={"elinewidth": 1})
        for bar, mean, std in zip(bars, means, stds):
            if mean:
                ax.annotate(f"{mean:.1f}", (bar.get_x() + bar.get_width() / 2, mean + std), ha="center", va="bottom",
                            fontsize=6, xytext=(0, 2), textcoords="offset points")
    lows = [results[m][k]["mean"] - (results[m][k]["std"] or 0) for m in methods for k in shots]
    highs = [results[m][k]["mean"] + (results[m][k]["std"] or 0) for m in methods for k in shots]
    if lows:
        ax.set_ylim(max(0.0, math.floor(min(lows) / 5) * 5 - 5), min(100.0, math.ceil(max(highs) / 5) * 5 + 5))
    ax.set_xticks(range(len(shots)), [f"{k}-shot" for k in shots])
    ax.set_ylabel("test top-1 (%)")
    s = report["setup"]
    ax.set_title(f"{s['dataset']}, {s['backbone']} @ {s['img_size']} px, mean ± std over {len(s['seeds'])} seed(s)",
                 fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return Path(path)


def test_saved_run(cfg: Config, backbone, data) -> dict:
    """Test a finished selection run from its saved adapter (its ``metrics.json`` gains the test metrics)."""
    from lorevit.factory import load_adapter
    from lorevit.training.protocols import fit_and_test

    path = Path(cfg.output)
    model, _ = load_adapter(path, backbone=backbone)
    results, _, times = fit_and_test(cfg.replace(epochs=0, progress=False, logger="csv"), model, data, path / "test")
    metrics = json.loads((path / "metrics.json").read_text())
    metrics.update(results, test_s=times["test_s"])
    write_json(path / "metrics.json", metrics)
    return metrics


def select_on_validation(plan: AblationPlan, runs: dict[tuple, dict]) -> tuple[dict, dict]:
    """Per row (method, or ``method@variant``) and k, the grid point with the best mean validation top-1 over the
    selection seeds (the first one on a tie). Returns ({(row, k): point}, the selection table for ``ablation.json``)."""
    chosen, table = {}, {}
    for method in [key for key, _, _ in plan.rows()]:
        for k in plan.shots:
            rows = []
            for point in plan.points():
                accs = [runs[(method, k, s, point_name(point))]["val_top1"] for s in plan.selection_seeds
                        if (method, k, s, point_name(point)) in runs]
                if accs:
                    rows.append({"point": point, "name": point_name(point), "val": [round(a, 4) for a in accs],
                                 "mean": round(statistics.fmean(accs), 4),
                                 "std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0})
            if rows:
                best = max(rows, key=lambda r: r["mean"])  # max keeps the first of equal means
                chosen[(method, int(k))] = best["point"]
                table.setdefault(method, {})[str(k)] = {"chosen": best["name"], "points": rows}
    return chosen, table


def selection_markdown(selection: dict, setup: dict) -> list[str]:
    lines = ["", f"## Settings chosen on the validation split ({setup.get('val_shots')} held-out train images per "
                 f"class; validation top-1, mean ± std over seeds {setup.get('selection_seeds')}; **chosen**; the test "
                 "split was not read for these)", ""]
    for method, per_k in selection.items():
        for k, entry in per_k.items():
            cells = [f"**{r['name']}: {r['mean']:.2f} ± {r['std']:.2f}**" if r["name"] == entry["chosen"]
                     else f"{r['name']}: {r['mean']:.2f} ± {r['std']:.2f}" for r in entry["points"]]
            lines.append(f"- {row_label(method, setup.get('white_boxes') or ('paper',))}, {k}-shot: " + "; ".join(cells))
    return lines


def run_ablation(plan: AblationPlan, out_dir: str | Path, progress: Callable[[str], None] | None = print) -> dict:
    """Train and test the grid (resuming finished runs), writing the JSON, MD and PNG as it goes.

    With ``plan.grid`` the settings of each (method, k) are first chosen on the validation split."""
    from lorevit.factory import resolve_config
    from lorevit.training.datamodule import ClassificationData
    from lorevit.training.run import run_status, train

    say = progress or (lambda _msg: None)
    plan.validate()
    out = Path(out_dir)
    # clip:auto: the backbone's own text tower, in every record; the recipe is resolved per run (each method's own)
    base = plan.base = resolve_config(plan.base, recipe=False)
    check_runs(plan, out)
    grid = [(key, m, wb, int(k), int(s)) for s in plan.seeds for k in plan.shots for key, m, wb in plan.rows()]
    notes: dict[str, str] = {}
    finished: dict[tuple[str, int, int], dict] = {}
    start = time.perf_counter()
    setup = {
        "backbone": base.backbone, "weights": base.weights, "backbone_kwargs": base.backbone_kwargs,
        "knowledge": base.knowledge, "dataset": base.dataset, "data_root": base.data_root,
        "img_size": base.img_size, "epochs": base.epochs, "batch_size": base.batch_size, "lr": base.lr,
        "lr_min": base.lr_min, "kp_weight": base.kp_weight, "recipe": base.recipe, "shots": [int(k) for k in plan.shots],
        "seeds": [int(s) for s in plan.seeds], "methods": list(plan.methods),
        "test": "full test split" if plan.full_test else f"fixed subset of {base.test_subset} images (test_seed {base.test_seed})",
        "test_subset": None if plan.full_test else base.test_subset, "test_seed": base.test_seed,
        "arch": {k: getattr(base, k) for k in ("n_global", "n_local", "vpt_prompts", "bottleneck", "knn", "top_n")},
        "accelerator": base.accelerator, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "budget_note": "offline defaults chosen for about 45 min on 2 idle CPU cores (112 px, 10 epochs, 2,000 fixed test images)"
    }
    if plan.variants != ["paper"]:  # the default report stays as it was
        setup["white_boxes"] = plan.variants
    if plan.grid:
        setup.update(grid={k: list(v) for k, v in plan.grid.items()}, val_shots=base.val_shots,
                     selection_seeds=plan.selection_seeds)
    selection: dict = {}

    def write_all() -> dict:
        results = aggregate(plan, finished, notes)
        done = len(finished) + sum(len(plan.shots) * len(plan.seeds) for m in notes)
        report = {"setup": {**setup, "runs_done": done, "runs_total": len(grid),
                            "wall_time_s": round(time.perf_counter() - start, 1)},
                  "results": results, "claim": check_claim(results)}
        if selection:
            report["selection"] = selection
        write_json(out / "ablation.json", report)
        write_text(out / "ablation.md", ablation_markdown(report))
        return report

    backbone = None
    data_cache: dict[tuple[int, int], object] = {}
    run_seconds: list[float] = []
    zero_shot_result: dict | None = None

    def shared_data(cfg: Config):
        nonlocal backbone
        if backbone is None:
            backbone = create_backbone(base.backbone, base.weights, base.img_size, **base.backbone_kwargs)
        # the same seeded draw for every method; the loaders follow each run's own batch sizes (recipes differ)
        key = (cfg.shots, cfg.seed, cfg.batch_size, cfg.eval_batch_size)
        if key not in data_cache:
            data_cache.clear()
            data_cache[key] = ClassificationData(cfg, backbone.data_config)
        return data_cache[key]

    def execute(cfg: Config, test: bool = True) -> dict:
        """One run, trained as ``lorevit train`` does, sharing the backbone and the sampled images."""
        _check_reusable(cfg, Path(cfg.output))
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # Lightning's notes on frozen (eval-mode) modules, no val loader
            warnings.filterwarnings("ignore", message=".*eval mode at the start of training.*")
            warnings.filterwarnings("ignore", message=".*validation_step.*")
            data = shared_data(cfg)  # builds the shared backbone too
            # each run on its own copy: methods of kind 2 (lora, ssf, full, ...) change the ViT they are given
            metrics = train(cfg.replace(overwrite=True), backbone=copy.deepcopy(backbone), data=data, test=test)
        run_seconds.append(time.perf_counter() - t0)
        return metrics

    if plan.grid:  # model selection first: every grid point, validation only
        selection_runs: dict[tuple, dict] = {}
        trained = [(key, m, wb) for key, m, wb in plan.rows() if m != "zero-shot"]
        todo = [(key, m, wb, int(k), s, p) for s in plan.selection_seeds for k in plan.shots for key, m, wb in trained
                for p in plan.points()]
        for i, (key, method, white_box, k, seed, point) in enumerate(todo, 1):
            cfg = run_config(plan, out, method, k, seed, white_box, point)
            label = f"[select {i}/{len(todo)}] {key} {k}-shot {point_name(point)} seed {seed}"
            path = Path(cfg.output)
            if run_status(path) == "finished":
                _check_reusable(cfg, path)
                metrics = json.loads((path / "metrics.json").read_text())
                say(f"{label}: done before, val {metrics['val_top1']:.2f}%")
            else:
                shared_data(cfg)
                metrics = execute(continue_stopped(cfg, path, label, say), test=False)
                eta = statistics.fmean(run_seconds) * (len(todo) - i)
                say(f"{label}: val {metrics['val_top1']:.2f}% ({run_seconds[-1]:.0f} s; ~{eta / 60:.0f} min left)")
            selection_runs[(key, k, seed, point_name(point))] = metrics
        chosen, selection = select_on_validation(plan, selection_runs)
        for (key, k), point in chosen.items():
            say(f"chosen on validation: {key} {k}-shot → {point_name(point)}")
    else:
        chosen = {}

    for i, (key, method, white_box, k, seed) in enumerate(grid, 1):
        label = f"[{i}/{len(grid)}] {key} {k}-shot seed {seed}"
        if method == "zero-shot":
            reason = zero_shot_unavailable(plan.base)  # before building its Config, which would refuse it
            if reason:
                if method not in notes:
                    say(f"{label}: {reason}")
                notes[method] = reason
                continue
        cfg = run_config(plan, out, method, k, seed, white_box, chosen.get((key, k)))
        path = Path(cfg.output)
        if run_status(path) == "finished":
            _check_reusable(cfg, path)
            metrics = json.loads((path / "metrics.json").read_text())
            if "test_top1" not in metrics:  # a chosen selection run: tested now, once (seeds not searched train here)
                data = shared_data(cfg)  # builds the shared backbone too
                metrics = test_saved_run(cfg, copy.deepcopy(backbone), data)
                say(f"{label}: {point_name(chosen[(key, k)])} tested, {metrics['test_top1']:.2f}%")
            else:
                say(f"{label}: done before, {metrics['test_top1']:.2f}%")
            finished[(key, k, seed)] = metrics
            write_all()
            continue
        if method == "zero-shot" and zero_shot_result is not None:  # no training: one evaluation serves all
            finished[(key, k, seed)] = zero_shot_result
            continue
        try:
            metrics = execute(continue_stopped(cfg, path, label, say))
        except ValueError as err:
            if method != "zero-shot":
                raise
            notes[method] = f"n/a: {err}"
            say(f"{label}: {notes[method]}")
            continue
        finished[(key, k, seed)] = metrics
        if method == "zero-shot":
            zero_shot_result = metrics
        left = sum(1 for _, m, _, _, _ in grid[i:] if m not in notes)
        eta = statistics.fmean(run_seconds) * left
        say(f"{label}: {metrics['test_top1']:.2f}% ({run_seconds[-1]:.0f} s; ~{eta / 60:.0f} min left)")
        write_all()
    report = write_all()
    plot_ablation(report, out / "ablation.png")
    return report
