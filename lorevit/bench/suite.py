"""``lorevit bench suite``: the protocols both communities evaluate on, each table in its community's conventions
(issue 21 §2; BASELINES_VISION §0/§B, BASELINES_CLIP §1/§8).

============== ======================================================================================================
protocol       what runs (per method; the averaging and selection rule is written above every table)
============== ======================================================================================================
vtab           per task: tune on train800 → val200 over each method's declared grid (``Method.tuning_grid``, first
               seed; the best val top-1 is chosen, ``choose_point``), retrain on train800val200
               with the choice, test once per seed; last-epoch model; per task, per group, the mean of the three group
               means (VPT/NOAH/SSF "Average") **and** the plain mean of 19 (V-PETL "Mean"), mean ± std over seeds
fgvc           the same on VPT's json: tune on val.json, final run on train.json, last-epoch test; plain mean of 5
coop-fewshot   K ∈ shots × seeds on CoOp's split (its ``shot_K-seed_S.pkl`` images when present, else lorevit's seeded
               draw, recorded); last epoch; per dataset per K, the mean over the datasets run
base2novel     classes sorted, base = first ceil(C/2); train 16 shots on base, test base and new; Base, New,
               HM = 2BN/(B+N) per dataset; the average HM from the averaged B and N (as the published tables)
xd             train on ImageNet 16-shot, evaluate on the other datasets with their own class names (text-side
               classifiers only); each target and the mean
dg             the ImageNet model on ImageNet-V2/Sketch (1000-way) and -A/-R (the 200-class logit masks for a
               1000-way head); each target and the mean of the four
============== ======================================================================================================

Every (dataset, method, K, seed) is one cell: a ``lorevit train`` run under
``runs/<protocol>/<dataset>/<method>/[<K>shot/][tune/<point>/]seed<s>``. A cell whose ``metrics.json`` says
``finished`` is read back, never rerun; an unfinished one continues from its checkpoint (``resume: auto``) or
starts again, so a killed suite continues where it stopped. ``suite.json`` (all protocols run into this output),
``suite.md`` and ``<protocol>.png`` are rewritten atomically after every cell. Two trivial rows stand beside the
methods: chance (100 / C) and the majority class of the training images.
"""
from __future__ import annotations

import copy
import json
import math
import statistics
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from lorevit.config import Config
from lorevit.errors import ConfigError
from lorevit.utils.io import atomic_write, write_json, write_text

PROTOCOLS = ("vtab", "fgvc", "coop-fewshot", "base2novel", "xd", "dg")
VTAB_GROUP_NAMES = ("natural", "specialized", "structured")


# ------------------------------------------------------------------------------------- averaging (pure)
def vtab_average(scores: dict[str, float]) -> dict:
    """VTAB-1k's two averages (BASELINES_VISION §B1): the mean of each group's tasks, the mean of the three group
    means (VPT/NOAH/SSF tables' "Average") and the plain mean of all tasks (V-PETL's "Mean").

    ``scores``: top-1 per task, keyed by the NOAH folder names (``cifar``, ``caltech101``, …, without ``vtab-``).
    A group with no task is None (and so is ``mean_of_groups``); ``mean_of_19`` is the mean of the tasks given
    (``tasks`` says how many)."""
    from lorevit.data.benchmarks import VTAB_GROUPS

    known = {t for g in VTAB_GROUPS.values() for t in g}
    unknown = sorted(set(scores) - known)
    if unknown:
        raise ValueError(f"unknown VTAB-1k task(s) {unknown}; tasks are {sorted(known)}")
    out: dict = {}
    for group in VTAB_GROUP_NAMES:
        values = [float(scores[t]) for t in VTAB_GROUPS[group] if t in scores]
        out[group] = statistics.fmean(values) if values else None
    groups = [out[g] for g in VTAB_GROUP_NAMES]
    out["mean_of_groups"] = statistics.fmean(groups) if all(g is not None for g in groups) else None
    out["mean_of_19"] = statistics.fmean(float(v) for v in scores.values()) if scores else None
    out["tasks"] = len(scores)
    return out


def harmonic_mean(base: float, new: float) -> float:
    """HM = 2·B·N / (B + N) (CoCoOp's base-to-novel metric); 0 when both are 0."""
    base, new = float(base), float(new)
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


def base2novel_average(rows: dict[str, tuple[float, float]]) -> dict:
    """The "Average" row of a base-to-novel table: B and N averaged over the datasets, HM computed **from the
    averaged B and N** (as the published tables, BASELINES_CLIP §1), not the mean of per-dataset HMs (also given)."""
    if not rows:
        return {"base": None, "new": None, "hm": None, "mean_of_hm": None, "datasets": 0}
    b = statistics.fmean(float(v[0]) for v in rows.values())
    n = statistics.fmean(float(v[1]) for v in rows.values())
    return {"base": b, "new": n, "hm": harmonic_mean(b, n),
            "mean_of_hm": statistics.fmean(harmonic_mean(*v) for v in rows.values()), "datasets": len(rows)}


def mean_std(values: Sequence[float]) -> dict:
    values = [float(v) for v in values]
    return {"mean": round(statistics.fmean(values), 4), "std": round(statistics.stdev(values), 4) if len(values) > 1
            else 0.0, "n": len(values)}


# ---------------------------------------------------------------------------------- published rows (data)
VTAB_COLUMNS = ("cifar", "caltech101", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397",
                "patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy", "clevr_count", "clevr_dist", "dmlab",
                "kitti", "dsprites_loc", "dsprites_ori", "smallnorb_azi", "smallnorb_ele")
_VTAB_ROWS = {  # BASELINES_VISION §B1 (V-PETL:README.md; ViT-B/16 IN-21k); the per-task numbers, in VTAB_COLUMNS order
    "Linear": "63.4 85.0 63.2 97.0 86.3 36.6 51.0 78.5 87.5 68.5 74.0 34.3 30.6 33.2 55.4 12.5 20.0 9.6 19.2",
    "Full": "68.9 87.7 64.3 97.2 86.9 87.4 38.8 79.7 95.7 84.2 73.9 56.3 58.6 41.7 65.5 57.5 46.7 25.7 29.1",
    "BitFit": "72.8 87.0 59.2 97.5 85.3 59.9 51.4 78.7 91.6 72.9 69.8 61.5 55.6 32.4 55.9 66.6 40.0 15.7 25.1",
    "VPT-deep": "78.8 90.8 65.8 98.0 88.3 78.1 49.6 81.8 96.1 83.4 68.4 68.5 60.0 46.5 72.8 73.6 47.9 32.9 37.8",
    "LoRA (NOAH; max over epochs)": "67.1 91.4 69.4 98.8 90.4 85.3 54.0 84.9 95.3 84.4 73.6 82.9 69.2 49.8 78.5 75.7 47.1 31.0 44.0",
    "AdaptFormer": "70.8 91.2 70.5 99.1 90.9 86.6 54.8 83.0 95.8 84.4 76.3 81.9 64.3 49.3 80.3 76.3 45.7 31.7 41.1",
    "SSF (AugReg weights)": "69.0 92.6 75.1 99.4 91.8 90.2 52.9 87.4 95.9 87.4 75.5 75.9 62.3 53.3 80.6 77.3 54.9 29.5 37.9",
}
PUBLISHED_VTAB = {name: dict(zip(VTAB_COLUMNS, map(float, row.split()))) for name, row in _VTAB_ROWS.items()}
PUBLISHED_FGVC = {  # BASELINES_VISION §B2 (V-PETL:README.md): CUB, NABirds, Flowers, Dogs, Cars
    "Full": (87.3, 82.7, 98.8, 89.4, 84.5), "Linear": (85.3, 75.9, 97.9, 86.2, 51.3),
    "BitFit": (87.7, 85.2, 99.2, 86.5, 81.5), "VPT-deep": (88.5, 84.2, 99.0, 90.2, 83.6),
    "LoRA": (85.6, 79.8, 98.9, 87.6, 72.0), "AdaptFormer": (88.4, 84.7, 99.2, 88.2, 81.9),
    "SSF": (89.5, 85.7, 99.6, 89.6, 89.2),
}
PUBLISHED_B2N = {  # BASELINES_CLIP §8: average of 11 datasets, ViT-B/16, 16 shots (Base, New, HM)
    "CLIP": (69.34, 74.22, 71.70), "CoOp": (82.69, 63.22, 71.66), "CoCoOp": (80.47, 71.69, 75.83),
    "ProGrad": (82.48, 70.75, 76.16), "MaPLe": (82.28, 75.14, 78.55),
}
PUBLISHED_COOP16 = {  # BASELINES_CLIP §8, CoOp-11 at 16 shots: IN SUN DTD UCF Air ESAT Cars Food Pets Flo Cal, Avg
    "CLIP-LoRA (B/16) [U]": ("73.6 76.1 72.0 86.7 54.7 92.1 86.3 84.2 92.4 98.0 96.4", 83.0),
    "CLIP-Adapter (RN50)": ("63.59 69.55 65.96 76.76 32.10 84.43 74.01 78.25 87.84 93.90 92.49", 74.44),
}
PUBLISHED_DG = {  # BASELINES_CLIP §8 [U]: ImageNet / -V2 / -Sketch / -A / -R (B/16, ImageNet 16 shots)
    "CLIP": (66.73, 60.83, 46.15, 47.77, 73.96), "CoOp": (71.51, 64.20, 47.99, 49.71, 75.21),
    "CoCoOp": (71.02, 64.07, 48.75, 50.63, 76.18), "MaPLe": (70.72, 64.07, 49.15, 50.90, 76.98),
}
PUBLISHED_XD = {"CoOp": 63.88, "CoCoOp": 65.74, "MaPLe": 66.30}  # target average, BASELINES_CLIP §8 [U]


# ---------------------------------------------------------------------------------------------- the plan
@dataclass
class SuitePlan:
    protocol: str
    base: Config
    methods: Sequence[str] = ("linear", "lore")
    data_root: str | None = None
    datasets: Sequence[str] | None = None  # None: every dataset of the protocol found under data_root
    seeds: Sequence[int] | None = None  # None: the protocol's (vtab/fgvc 0,1,2; CoOp-family 1,2,3)
    shots: Sequence[int] | None = None  # None: coop-fewshot 1,2,4,8,16; base2novel/xd/dg 16
    # vtab/fgvc: None searches each method's declared grid (Method.tuning_grid; --quick: its declared 2-point subset);
    # factors (--lr-factors) replace it by lr × each factor of the method's own (recipe) lr, for every method
    lr_factors: Sequence[float] | None = None
    quick: bool = False
    data_roots: dict = field(default_factory=dict)  # dataset → its root (found), filled by resolve()

    def default_datasets(self) -> tuple[str, ...]:
        from lorevit.data.benchmarks import COOP_DATASETS, DG_TARGETS, FGVC_DATASETS, VTAB_TASKS

        from lorevit.data.registry import FEW_SHOT_DATASETS

        return {"vtab": tuple(f"vtab-{t}" for t, *_ in VTAB_TASKS), "fgvc": FGVC_DATASETS,
                "coop-fewshot": tuple(dict.fromkeys(COOP_DATASETS + FEW_SHOT_DATASETS)), "base2novel": COOP_DATASETS,
                "xd": tuple(d for d in COOP_DATASETS if d != "imagenet"), "dg": DG_TARGETS}[self.protocol]

    @property
    def seed_list(self) -> list[int]:
        return [int(s) for s in (self.seeds or ((0, 1, 2) if self.protocol in ("vtab", "fgvc") else (1, 2, 3)))]

    @property
    def shot_list(self) -> list[int | None]:
        if self.protocol in ("vtab", "fgvc"):
            return [None]
        return [int(k) for k in (self.shots or ((1, 2, 4, 8, 16) if self.protocol == "coop-fewshot" else (16,)))]

    @property
    def tunes(self) -> bool:
        return self.protocol in ("vtab", "fgvc")

    def validate(self) -> None:
        from lorevit.methods import METHODS

        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol {self.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"--methods: unknown method(s) {unknown or '(none given)'}; choose from {', '.join(METHODS)}")
        if self.base.head == "text" and "linear" in self.methods:  # the Black Box + a frozen text head: nothing trains
            raise ConfigError("--methods linear with --head text trains nothing (its only trained part is the head); "
                              "use zero-shot for that classifier, or a method that trains (vpt-deep, lora, lore)")
        if any(k is not None and k < 1 for k in self.shot_list) or not self.seed_list:
            raise ConfigError("--shots takes positive integers and --seeds at least one seed")
        if self.tunes and self.lr_factors is not None and (not self.lr_factors or any(f <= 0 for f in self.lr_factors)
                                                           or len(set(self.lr_factors)) != len(self.lr_factors)):
            raise ConfigError("--lr-factors takes distinct positive numbers, like 0.5,1,2")
        if self.datasets:
            wrong = [d for d in self.datasets if d not in self.default_datasets()]
            if wrong:
                raise ConfigError(f"--datasets {wrong} are not datasets of protocol {self.protocol}; its datasets: "
                                  f"{', '.join(self.default_datasets())}")

    def source(self) -> str:
        return "imagenet"

    def resolve(self) -> list[str]:
        """The datasets to run, each with the root it was found under (``data_root`` or ``data_root/<name>``)."""
        from lorevit.data.dataset import DatasetError
        from lorevit.data.registry import read_records

        wanted = list(self.datasets or self.default_datasets())
        needed = wanted + ([self.source()] if self.protocol in ("xd", "dg") else [])
        found, missing = [], {}
        for name in dict.fromkeys(needed):
            last = None
            roots = [self.data_root] if self.data_root is None else [self.data_root, str(Path(self.data_root) / name)]
            for root in roots:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        read_records(name, "test", root)
                    self.data_roots[name] = root
                    found.append(name)
                    break
                except DatasetError as err:
                    last = err
            else:
                missing[name] = str(last).splitlines()[0]
        if self.protocol in ("xd", "dg") and self.source() not in found:
            raise ConfigError(f"--protocol {self.protocol} trains on ImageNet, which is not under {self.data_root} "
                              f"({missing.get(self.source())})")
        if self.datasets and any(d in missing for d in self.datasets):
            first = next(d for d in self.datasets if d in missing)
            raise ConfigError(f"--datasets {first}: {missing[first]}")
        run = [d for d in wanted if d in found]
        if not run:
            raise ConfigError(f"no dataset of protocol {self.protocol} under {self.data_root} (looked for "
                              f"{', '.join(wanted)}); e.g. {wanted[0]}: {missing.get(wanted[0])}. Build the stand-ins "
                              "with `lorevit bench suite --quick`, or see docs/protocols.md for the layouts")
        return run


# ------------------------------------------------------------------------------------------ the runner
def cell_dir(out: Path, plan: SuitePlan, dataset: str, method: str, shots: int | None, seed: int,
             point: str | None = None) -> Path:
    path = out / "runs" / plan.protocol / dataset / method
    if shots is not None:
        path = path / f"{shots}shot"
    if point is not None:
        path = path / "tune" / point
    return path / f"seed{seed}"


def _status(path: Path) -> dict:
    try:
        return json.loads((path / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def _finished(path: Path) -> dict | None:
    metrics = _status(path)
    return metrics if metrics.get("status", "finished") == "finished" and "test_top1" in metrics else None


def choose_point(rows: Sequence[dict]) -> dict:
    """The tuning rule: the point with the highest val top-1; ties go to the smaller lr (VPT:tune_vtab.py
    ``find_best_lrwd``: "the smallest lr to break tie for stability"), then to the first in the grid's order.
    A point that diverged (``val_top1`` None) is never chosen."""
    ran = [(i, r) for i, r in enumerate(rows) if r.get("val_top1") is not None]
    if not ran:
        raise ConfigError(f"every point of the tuning grid diverged ({', '.join(r['point'] for r in rows)}); lower the "
                          "learning rates (--lr-factors) or pass --on-nonfinite skip")
    return min(ran, key=lambda ir: (-ir[1]["val_top1"], ir[1]["lr"], ir[0]))[1]


def apply_point(cfg: Config, point: dict) -> Config:
    """``cfg`` with a grid point's overrides: config keys replaced, ``method_options`` merged into the run's."""
    changes = {k: v for k, v in point.items() if k != "method_options"}
    if point.get("method_options"):
        changes["method_options"] = {**cfg.method_options, **point["method_options"]}
    return cfg.replace(**changes) if changes else cfg


def trivial_rows(train_targets: Sequence[int], test_targets: Sequence[int], num_classes: int) -> dict:
    """Chance (100 / C) and the majority class of the training images, scored on the test labels (%)."""
    majority = Counter(train_targets).most_common(1)[0][0] if train_targets else 0
    hits = sum(1 for t in test_targets if t == majority)
    return {"chance": 100.0 / max(num_classes, 1), "majority": 100.0 * hits / max(len(test_targets), 1)}


def transfer_trivial_rows(train_targets: Sequence[int], test_targets: Sequence[int], num_classes: int,
                          same_classes: bool, logit_mask: Sequence[int] | None = None) -> dict:
    """xd / dg targets: chance (100 / C of the target) and, where the target's labels are the source's (dg), the
    source's majority training class scored on the target (through A/R's logit mask: label j is source class
    ``mask[j]``; a majority class outside the mask is never right); None on another dataset's classes (xd)."""
    out = {"chance": 100.0 / max(num_classes, 1), "majority": None}
    if same_classes and train_targets:
        majority = Counter(train_targets).most_common(1)[0][0]
        label = majority if logit_mask is None else (list(logit_mask).index(majority) if majority in logit_mask else -1)
        out["majority"] = 100.0 * sum(1 for t in test_targets if t == label) / max(len(test_targets), 1)
    return out


def text_classifier(method: str, head: str = "linear") -> bool:
    """Whether ``method``'s classifier is built from class text (so it can score classes it never trained on):
    any method with ``head: text``, methods that do not train (zero-shot CLIP) or that declare
    ``text_classifier = True``."""
    from lorevit.methods import METHODS

    cls = METHODS[method]
    return head == "text" or (not cls.trains) or bool(getattr(cls, "text_classifier", False))


class Suite:
    """One protocol's cells, run (or read back) in order; ``report`` is what suite.json holds for it."""

    def __init__(self, plan: SuitePlan, out: Path, say: Callable[[str], None]):
        self.plan, self.out, self.say = plan, out, say
        self.backbone = None
        self.cells: dict[str, dict] = {}  # key "dataset|method|K|seed" → record
        self.tuning: dict[str, dict] = {}
        self.trivial: dict[str, dict] = {}
        self.notes: dict[str, str] = {}
        self.split_files: dict[str, dict] = {}
        self.start = time.perf_counter()

    # -- building blocks
    def shared_backbone(self):
        from lorevit.backbone import create_backbone

        if self.backbone is None:
            b = self.plan.base
            self.backbone = create_backbone(b.backbone, b.weights, b.img_size, **b.backbone_kwargs)
        return self.backbone

    def config(self, dataset: str, method: str, shots: int | None, seed: int, out: Path, **changes) -> Config:
        from lorevit.factory import resolve_config

        few = shots is not None
        cfg = self.plan.base.replace(method=method, dataset=dataset, data_root=self.plan.data_roots.get(
            dataset.partition("@")[0], self.plan.data_root), protocol="few-shot" if few else "full", seed=int(seed),
            output=str(out), resume="auto", overwrite=True, progress=False,
            test_subset=self.plan.base.test_subset if "test_subset" in self.plan.base.given else None,  # the protocols: all
            **({"shots": int(shots)} if few else {}), **self.preset())
        cfg = resolve_config(cfg)  # with the dataset's text template where the classifier is built from class text
        return cfg.replace(**changes) if changes else cfg

    def preset(self) -> dict:
        """The community's image transforms (config key ``transforms``) unless the user set them."""
        if "transforms" in self.plan.base.given:
            return {}
        return {"transforms": {"vtab": "vtab", "fgvc": "vpt-fgvc"}.get(self.plan.protocol, "default")}

    def data(self, cfg: Config):
        """The cell's ClassificationData; CoOp's few-shot pickle defines the training images when there is one."""
        from lorevit.data.benchmarks import coop_fewshot_indices
        from lorevit.training.datamodule import ClassificationData

        data = ClassificationData(cfg, self.shared_backbone().data_config)
        if cfg.protocol == "few-shot":
            found = coop_fewshot_indices(data.train_set, cfg.shots, cfg.seed, subset="@" in cfg.dataset)
            if found is not None:
                indices, sha = found
                data.train_indices = indices
                data.fewshot_file = {"file": f"split_fewshot/shot_{cfg.shots}-seed_{cfg.seed}.pkl", "sha256": sha}
        data.fewshot_source = "coop-pickle" if getattr(data, "fewshot_file", None) else (
            "lorevit-seeded" if cfg.protocol == "few-shot" else "whole train split")
        return data

    def run_cell(self, cfg: Config) -> dict:
        """Train and test one cell (``lorevit train``'s loop) on its own copy of the shared backbone."""
        from lorevit.training.run import train

        from lorevit.bench.ablation import _check_reusable

        path = Path(cfg.output)
        _check_reusable(cfg, path)  # a cell on disk with other settings: another --output, never mixed
        done = _finished(path)
        if done is not None:
            self.split_files.setdefault(cfg.dataset, done.get("split_files", {}))
            return done
        data = self.data(cfg)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*eval mode at the start of training.*")
            warnings.filterwarnings("ignore", message=".*validation_step.*")
            metrics = train(cfg, backbone=copy.deepcopy(self.shared_backbone()), data=data)
        metrics["fewshot_source"] = data.fewshot_source
        self.split_files[cfg.dataset] = {**data.train_set.split_files, **data.test_set.split_files}
        metrics.update(fewshot_source=data.fewshot_source, split_files=self.split_files[cfg.dataset])
        write_json(path / "metrics.json", metrics)
        return metrics

    def evaluate_on(self, cell: Path, dataset: str, rebuild: bool) -> dict:
        """Top-1 of a trained cell on another dataset's test split: the same head with A/R's logit mask, or
        (``rebuild``: text-side classifiers) the method rebuilt over that dataset's class names."""
        import torch
        from torch.utils.data import DataLoader

        from lorevit.config import ARCH_KEYS
        from lorevit.data import build_dataset, collate_skip_bad, template_for
        from lorevit.data.transforms import image_transforms
        from lorevit.factory import create_model, dataset_method_options, load_adapter

        record = cell / "eval" / f"{dataset}.json"
        if record.is_file():
            return json.loads(record.read_text())
        backbone = copy.deepcopy(self.shared_backbone())
        model, cfg = load_adapter(cell, backbone=backbone)
        ds = build_dataset(dataset, "test", root=self.plan.data_roots.get(dataset.partition("@")[0], self.plan.data_root),
                           transform=image_transforms(backbone.data_config, cfg.img_size, train=False,
                                                      preset=cfg.transforms))
        mask, template = None, None
        if rebuild:  # the same trained tensors, the classifier rebuilt from the target's class names
            trained = model.trained_state_dict()
            arch = {k: getattr(cfg, k) for k in ARCH_KEYS}
            options = dict(cfg.method_options)
            if "template" not in self.plan.base.method_options:  # the target's own template, unless the user set one
                options.pop("template", None)
            options = dataset_method_options(cfg.method, dataset, options)
            if cfg.head == "text" and "text_template" not in self.plan.base.given:
                arch["text_template"] = template_for(dataset)
            model = create_model(cfg.method, ds.classnames, backbone=backbone, knowledge=cfg.knowledge,
                                 method_options=options, **arch)
            template = options.get("template") or (arch["text_template"] if cfg.head == "text" else None)
            own = model.trained_state_dict()
            # class-sized tensors (the KLA's class features, used in training only) are the new classes' own
            model.load_state_dict({k: v for k, v in trained.items() if k in own and own[k].shape == v.shape}, strict=False)
        elif getattr(ds, "logit_mask", None) is not None and model.num_classes == 1000:
            mask = torch.tensor(ds.logit_mask)
        elif model.num_classes != len(ds.classnames):
            raise ConfigError(f"{dataset}: {len(ds.classnames)} classes, the model has {model.num_classes}")
        model.eval()
        hits = total = 0
        loader = DataLoader(ds, batch_size=cfg.eval_batch_size, collate_fn=collate_skip_bad)
        with torch.no_grad():
            for batch in loader:
                if batch is None:
                    continue
                images, labels = batch[0], batch[1]
                logits = model(images).logits  # B, C
                if mask is not None:
                    logits = logits[:, mask]  # B, 200: the j-th kept logit is label j
                hits += int((logits.argmax(-1) == labels).sum())
                total += len(labels)
        result = {"dataset": dataset, "top1": 100.0 * hits / max(total, 1), "num_test": total,
                  "masked": mask is not None, "rebuilt_for_classes": rebuild, "split_files": ds.split_files,
                  **({"template": template} if template else {})}
        write_json(record, result)
        return result

    def trivial_for(self, dataset: str) -> dict:
        """Chance and majority-class rows from the split files' labels (no image is decoded)."""
        from lorevit.data.registry import read_records

        root = self.plan.data_roots.get(dataset.partition("@")[0], self.plan.data_root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train = read_records(dataset, "train", root)[2]
            test = read_records(dataset, "test", root)[2]
        return trivial_rows(train.targets, test.targets, len(test.classnames))

    def target_trivial(self, target: str) -> dict:
        """xd / dg: the trivial rows on a target, from the source's training labels (no image is decoded)."""
        from lorevit.data.registry import read_records

        source = self.plan.source()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train = read_records(source, "train", self.plan.data_roots.get(source, self.plan.data_root))[2]
            test = read_records(target, "test", self.plan.data_roots.get(target, self.plan.data_root))[2]
        return transfer_trivial_rows(train.targets, test.targets, len(test.classnames),
                                     same_classes=self.plan.protocol == "dg", logit_mask=test.logit_mask)

    def grid(self, method: str, cfg: Config):
        """The grid searched for ``method`` (``cfg``: its resolved tuning run): ``--lr-factors`` when given, else the
        method's declared grid (``--quick``: its declared subset)."""
        from lorevit.methods import METHODS
        from lorevit.methods.tuning import lr_factor_grid

        if self.plan.lr_factors is not None:
            return lr_factor_grid(cfg, self.plan.lr_factors, "--lr-factors: lr × {" + ", ".join(
                f"{f:g}" for f in self.plan.lr_factors) + "} of the method's own lr, at its weight decay")
        grid = METHODS[method].tuning_grid(cfg, self.plan.protocol)
        return grid.quick_grid() if self.plan.quick else grid

    def tune(self, dataset: str, method: str) -> dict:
        """vtab/fgvc: the grid point (config overrides) with the best @tune test (= val200 / val.json) top-1 on the
        first seed (``choose_point``); a point that diverges is recorded as such and never chosen."""
        from lorevit.bench.ablation import _check_reusable
        from lorevit.errors import Diverged

        seed = self.plan.seed_list[0]
        base_cfg = self.config(f"{dataset}@tune", method, None, seed, self.out)
        grid = self.grid(method, base_cfg)
        rows = []
        for name, point in zip(grid.names, grid.points):
            path = cell_dir(self.out, self.plan, dataset, method, None, seed, name)
            cfg = apply_point(base_cfg.replace(output=str(path)), point)
            row = {"point": name, "overrides": point, "lr": cfg.lr, "weight_decay": cfg.weight_decay}
            try:  # a point that diverged before (with these settings) is read back as diverged, not trained again
                if _status(path).get("status") == "diverged":
                    _check_reusable(cfg, path)
                    metrics = _status(path)
                else:
                    metrics = self.run_cell(cfg)
            except Diverged:
                metrics = {"status": "diverged"}
            if metrics.get("status") == "diverged":
                rows.append({**row, "val_top1": None, "status": "diverged"})
                self.say(f"  tune {dataset} {method} {name}: diverged (not chosen)")
                continue
            rows.append({**row, "val_top1": round(metrics["test_top1"], 4)})
            self.say(f"  tune {dataset} {method} {name}: val {metrics['test_top1']:.2f}%")
        best = choose_point(rows)
        self.tuning[f"{dataset}|{method}"] = {"grid": grid.source, "searched": len(rows), "chosen": best["point"],
                                              "points": rows}
        return best["overrides"]

    # -- the protocol
    def run(self) -> dict:
        plan = self.plan
        datasets = plan.resolve()
        self.datasets = datasets
        todo = []
        if plan.protocol in ("xd", "dg"):
            todo = [("imagenet", m, k, s) for k in plan.shot_list for m in plan.methods for s in plan.seed_list]
        else:
            name = (lambda d: f"{d}@base") if plan.protocol == "base2novel" else (lambda d: d)
            todo = [(name(d), m, k, s) for d in datasets for k in plan.shot_list for m in plan.methods
                    for s in plan.seed_list]
        for dataset in dict.fromkeys(d for d, *_ in todo):
            self.trivial[dataset] = self.trivial_for(dataset)
            if plan.protocol == "base2novel":  # chance on the new classes (no training image of theirs: no majority)
                self.trivial[dataset]["new_chance"] = self.trivial_for(dataset.replace("@base", "@new"))["chance"]
        if plan.protocol in ("xd", "dg"):
            for target in datasets:
                self.trivial[target] = self.target_trivial(target)
        for i, (dataset, method, k, seed) in enumerate(todo, 1):
            key = f"{dataset}|{method}|{k}|{seed}"
            label = f"[{i}/{len(todo)}] {plan.protocol} {dataset} {method}{f' {k}-shot' if k else ''} seed {seed}"
            if method == "zero-shot" and not plan.base.knowledge.startswith("clip:"):
                self.notes[method] = "n/a: zero-shot needs a CLIP backbone and knowledge clip:<model>"
                continue
            choice = self.tune(dataset, method) if plan.tunes else {}
            path = cell_dir(self.out, plan, dataset, method, k, seed)
            cfg = apply_point(self.config(dataset, method, k, seed, path), choice)
            was_done = _finished(path) is not None
            metrics = self.run_cell(cfg)
            record = {"dataset": dataset, "method": method, "shots": k, "seed": seed, "top1": metrics["test_top1"],
                      "trainable_params": metrics.get("trainable_params"), "lr": cfg.lr,
                      "weight_decay": cfg.weight_decay, "epochs": cfg.epochs,
                      **({"tuned": self.tuning[f"{dataset}|{method}"]["chosen"], "overrides": choice}
                         if plan.tunes else {}),
                      "fewshot_source": metrics.get("fewshot_source"), "run": str(path.relative_to(self.out))}
            if plan.protocol == "base2novel":
                new = dataset.replace("@base", "@new")
                if text_classifier(method, cfg.head):
                    record["new_top1"] = self.evaluate_on(path, new, rebuild=True)["top1"]
                else:
                    record["new_top1"] = None
                    self.notes.setdefault(method, f"{method}: New n/a — its classifier has one learned row per base "
                                                  "class (no class-text side); Base only")
            if plan.protocol == "xd":
                record["targets"] = {}
                for target in datasets:
                    if text_classifier(method, cfg.head):
                        record["targets"][target] = self.evaluate_on(path, target, rebuild=True)["top1"]
                if not text_classifier(method, cfg.head):
                    self.notes.setdefault(method, f"{method}: cross-dataset n/a — a learned per-class head cannot "
                                                  "score another dataset's classes")
            if plan.protocol == "dg":
                record["targets"] = {t: self.evaluate_on(path, t, rebuild=text_classifier(method, cfg.head))["top1"] for t in datasets}
            self.cells[key] = record
            self.say(f"{label}: {'done before, ' if was_done else ''}{metrics['test_top1']:.2f}%"
                     + (f", new {record['new_top1']:.2f}%" if record.get("new_top1") is not None else "")
                     + (f", targets {', '.join(f'{t} {v:.1f}' for t, v in record.get('targets', {}).items())}"
                        if record.get("targets") else ""))
            self.write()
        return self.write()

    # -- reports
    def report(self) -> dict:
        plan, b = self.plan, self.plan.base
        return {
            "protocol": plan.protocol,
            "setup": {"backbone": b.backbone, "weights": b.weights, "knowledge": b.knowledge, "img_size": b.img_size,
                      "methods": list(plan.methods), "datasets": list(getattr(self, "datasets", [])),
                      "seeds": plan.seed_list, "shots": plan.shot_list, "data_root": plan.data_root,
                      "lr_factors": list(plan.lr_factors) if plan.tunes and plan.lr_factors is not None else None,
                      "tuning": self.tuning_rule() if plan.tunes else None, "quick": plan.quick,
                      "epochs": b.epochs if "epochs" in b.given else "each method's recipe",
                      "test": f"a fixed subset of {b.test_subset} images" if "test_subset" in b.given and b.test_subset
                              else "the full test split",
                      "wall_time_s": round(time.perf_counter() - self.start, 1)},
            "rules": RULES[plan.protocol], "cells": self.cells, "tuning": self.tuning, "trivial": self.trivial,
            "notes": self.notes, "split_files": self.split_files, "tables": tables(plan, self.cells, self.trivial),
        }

    def tuning_rule(self) -> str:
        """What was searched, for the setup line: the declared grids, their --quick subsets, or --lr-factors."""
        if self.plan.lr_factors is not None:
            factors = ", ".join(f"{f:g}" for f in self.plan.lr_factors)
            return f"lr × {{{factors}}} of each method's own lr (--lr-factors)"
        quick = " (--quick: its declared subset, 2 points for the built-in methods)" if self.plan.quick else ""
        return f"each method's declared grid{quick}"

    def write(self) -> dict:
        path = self.out / "suite.json"
        try:
            whole = json.loads(path.read_text())
        except (OSError, ValueError):
            whole = {"protocols": {}}
        report = self.report()
        whole.setdefault("protocols", {})[self.plan.protocol] = report
        write_json(path, whole)
        write_text(self.out / "suite.md", "\n".join(protocol_markdown(r) for r in whole["protocols"].values()))
        plot_protocol(report, self.out / f"{self.plan.protocol}.png")
        return report


RULES = {
    "vtab": "Tuned on train800 → val200 over each method's declared grid (its recipe's lr × weight decay and options, "
            "source listed below; --lr-factors: lr × the factors instead), first seed; the highest val top-1 is chosen "
            "(ties: the smaller lr, as VPT); retrained on train800val200 with the choice, tested once per seed on the "
            "test split; last-epoch model. Top-1 %, mean ± std over seeds. "
            "Averages: the mean of the three group means (VPT/NOAH/SSF 'Average') and the plain mean of the tasks "
            "(V-PETL 'Mean'), both labelled.",
    "fgvc": "Tuned on val.json over each method's declared grid (source listed below; --lr-factors: lr × the "
            "factors instead), first seed, the highest val top-1 chosen (ties: the smaller lr); final run on "
            "train.json, last-epoch test "
            "top-1 %, mean ± std over seeds; the benchmark mean is the plain mean of the datasets.",
    "coop-fewshot": "K shots per class from the train split (CoOp's shot_K-seed_S.pkl images when present, else "
                    "lorevit's seeded draw, recorded per cell); last-epoch test top-1 %, mean over seeds per dataset "
                    "and K; the averages are plain means over CoOp's 11 and over LORE's 12 datasets (those run).",
    "base2novel": "Classes sorted by label, base = first ceil(C/2), new = the rest (each relabelled 0…); trained on "
                  "base at K shots, tested on base and on new; HM = 2BN/(B+N); the Average HM is computed from the "
                  "averaged B and N (as the published tables).",
    "xd": "Trained on ImageNet (K shots, all classes), evaluated on each target's full test split with the target's "
          "own class names (text-side classifiers only); each target and their mean. (chance) = 100 / C of each "
          "target; (majority) is n/a (another dataset's classes).",
    "dg": "The ImageNet model on ImageNet-V2 / -Sketch (1000-way) and -A / -R (200 classes: the 200-class logit mask "
          "of a 1000-way head; text-side classifiers rebuilt over the 200 names); each target and the mean. "
          "(chance) = 100 / C of each target; (majority) = ImageNet's majority training class scored on each target.",
}


def _agg(cells: dict, dataset: str, method: str, shots, field_name: str = "top1") -> dict | None:
    values = [c[field_name] for c in cells.values() if c["dataset"] == dataset and c["method"] == method
              and c["shots"] == shots and c.get(field_name) is not None]
    return mean_std(values) if values else None


def tables(plan: SuitePlan, cells: dict, trivial: dict) -> dict:
    """The protocol's numbers as its community tabulates them (means over seeds, then the averaging rule)."""
    datasets = list(dict.fromkeys(c["dataset"] for c in cells.values()))
    methods = list(dict.fromkeys(c["method"] for c in cells.values()))
    out: dict = {}
    if plan.protocol in ("vtab", "fgvc"):
        for m in methods:
            per = {d: _agg(cells, d, m, None) for d in datasets}
            per = {d: v for d, v in per.items() if v}
            row = {"per_dataset": per}
            means = {d: v["mean"] for d, v in per.items()}
            if plan.protocol == "vtab":
                row["average"] = vtab_average({d.removeprefix("vtab-"): v for d, v in means.items()})
            else:
                row["average"] = {"mean": statistics.fmean(means.values()) if means else None, "datasets": len(means)}
            out[m] = row
        for name in ("chance", "majority"):
            means = {d: trivial[d][name] for d in datasets if d in trivial}
            row = {"per_dataset": {d: {"mean": v, "std": 0.0, "n": 1} for d, v in means.items()}}
            row["average"] = vtab_average({d.removeprefix("vtab-"): v for d, v in means.items()}) \
                if plan.protocol == "vtab" else {"mean": statistics.fmean(means.values()) if means else None}
            out[f"({name})"] = row
    elif plan.protocol == "coop-fewshot":
        from lorevit.data.benchmarks import COOP_DATASETS
        from lorevit.data.registry import FEW_SHOT_DATASETS

        def mean_over(per: dict, names) -> float | None:
            values = [v["mean"] for d, v in per.items() if d in names]
            return statistics.fmean(values) if values else None

        for m in methods:
            out[m] = {}
            for k in plan.shot_list:
                per = {d: v for d in datasets if (v := _agg(cells, d, m, k))}
                out[m][str(k)] = {"per_dataset": per, "average": mean_over(per, per),
                                  "average_coop11": mean_over(per, COOP_DATASETS),  # CoOp's 11 (those run)
                                  "average_lore12": mean_over(per, FEW_SHOT_DATASETS)}  # LORE's 12, as its paper
    elif plan.protocol == "base2novel":
        for m in methods:
            rows, per = {}, {}
            for d in datasets:
                b, n = _agg(cells, d, m, plan.shot_list[0]), _agg(cells, d, m, plan.shot_list[0], "new_top1")
                per[d.removesuffix("@base")] = {"base": b and b["mean"], "new": n and n["mean"],
                                                "hm": harmonic_mean(b["mean"], n["mean"]) if b and n else None}
                if b and n:
                    rows[d] = (b["mean"], n["mean"])
            out[m] = {"per_dataset": per, "average": base2novel_average(rows),
                      "base_average": statistics.fmean(v["base"] for v in per.values() if v["base"] is not None)
                      if any(v["base"] is not None for v in per.values()) else None}
        for name in ("chance", "majority"):
            per = {}
            for d in datasets:
                if d in trivial:
                    b, n = trivial[d][name], trivial[d].get("new_chance") if name == "chance" else None
                    per[d.removesuffix("@base")] = {"base": b, "new": n, "hm": harmonic_mean(b, n) if n is not None else None}
            rows = {d: (e["base"], e["new"]) for d, e in per.items() if e["new"] is not None}
            out[f"({name})"] = {"per_dataset": per, "average": base2novel_average(rows) if rows else None}
    else:  # xd, dg
        for m in methods:
            cs = [c for c in cells.values() if c["method"] == m]
            targets = sorted({t for c in cs for t in c.get("targets", {})})
            per = {t: mean_std([c["targets"][t] for c in cs if t in c.get("targets", {})]) for t in targets}
            out[m] = {"source": mean_std([c["top1"] for c in cs]) if cs else None, "per_target": per,
                      "average": statistics.fmean(v["mean"] for v in per.values()) if per else None}
        source = plan.source()
        targets = [d for d in trivial if d != source]
        for name in ("chance", "majority"):
            per = {t: None if trivial[t][name] is None else {"mean": trivial[t][name], "std": 0.0, "n": 1}
                   for t in targets}
            values = [v["mean"] for v in per.values() if v is not None]
            out[f"({name})"] = {"source": trivial[source][name] if source in trivial else None, "per_target": per,
                                "average": statistics.fmean(values) if values else None}
    return out


def _fmt(entry) -> str:
    if entry is None:
        return "n/a"
    if isinstance(entry, dict):
        return f"{entry['mean']:.2f} ± {entry['std']:.2f}" if entry.get("n", 1) > 1 else f"{entry['mean']:.2f}"
    return f"{entry:.2f}"


def protocol_markdown(report: dict) -> str:
    p, s, t = report["protocol"], report["setup"], report["tables"]
    lines = [f"# {p}", "", f"**Rule.** {report['rules']}", "",
             f"Setup: `{s['backbone']}` ({s['weights']}) at {s['img_size']} px, knowledge `{s['knowledge']}`; "
             f"epochs: {s['epochs']}; test: {s.get('test', 'the full test split')}; seeds {s['seeds']}" + (f"; shots {s['shots']}" if s["shots"] != [None] else "")
             + (f"; tuning grid: {s['tuning']}" if s.get("tuning") else "")
             + (" — **--quick on stand-ins**: checks the machinery end to end, says nothing about the methods' "
                "accuracy on the real benchmarks" if s.get("quick") else ""), ""]
    datasets = list(dict.fromkeys(c["dataset"] for c in report["cells"].values()))
    if p in ("vtab", "fgvc"):
        cols = datasets
        extra = ["natural", "specialized", "structured", "mean of groups", "mean of tasks"] if p == "vtab" else ["mean"]
        lines += ["| method | " + " | ".join(d.removeprefix("vtab-").removeprefix("fgvc-") for d in cols) + " | "
                  + " | ".join(extra) + " |", "|---|" + "---:|" * (len(cols) + len(extra))]
        for m, row in t.items():
            avg = row["average"]
            tail = [avg.get(g) for g in ("natural", "specialized", "structured", "mean_of_groups", "mean_of_19")] \
                if p == "vtab" else [avg.get("mean")]
            lines.append(f"| {m} | " + " | ".join(_fmt(row["per_dataset"].get(d)) for d in cols) + " | "
                         + " | ".join(_fmt(v) for v in tail) + " |")
        if p == "vtab":
            lines += ["", "Published (ViT-B/16 IN-21k; BASELINES_VISION §B1, V-PETL README; **published**, not rerun "
                      "here), on the tasks run here and over all 19:", "",
                      "| method | " + " | ".join(d.removeprefix("vtab-") for d in cols) + " | mean of groups (19) | mean of 19 |",
                      "|---|" + "---:|" * (len(cols) + 2)]
            for name, row in PUBLISHED_VTAB.items():
                avg = vtab_average(row)
                lines.append(f"| {name} (published) | " + " | ".join(
                    f"{row[d.removeprefix('vtab-')]:.1f}" if d.removeprefix("vtab-") in row else "n/a" for d in cols)
                             + f" | {avg['mean_of_groups']:.1f} | {avg['mean_of_19']:.1f} |")
        else:
            names = ("fgvc-cub", "fgvc-nabirds", "fgvc-flowers", "fgvc-dogs", "fgvc-cars")
            lines += ["", "Published (ViT-B/16 IN-21k; BASELINES_VISION §B2, V-PETL README; **published**):", "",
                      "| method | CUB | NABirds | Flowers | Dogs | Cars | mean |", "|---|---:|---:|---:|---:|---:|---:|"]
            for name, row in PUBLISHED_FGVC.items():
                lines.append(f"| {name} (published) | " + " | ".join(f"{v:.1f}" for v in row)
                             + f" | {statistics.fmean(row):.2f} |")
            del names
        if report["tuning"]:
            lines += ["", "Chosen on the tuning split (val top-1 % of every grid point, **chosen**; the highest, ties to "
                      "the smaller lr; the test split was not read):", ""]
            for key, entry in report["tuning"].items():
                lines.append(f"- {key.replace('|', ', ')} — grid: {entry.get('grid', 'lr factors')}: " + "; ".join(
                    (f"**{r['point']}: {r['val_top1']:.2f}**" if r["point"] == entry["chosen"] else
                     f"{r['point']}: " + ("diverged" if r["val_top1"] is None else f"{r['val_top1']:.2f}"))
                    for r in entry["points"]))
    elif p == "coop-fewshot":
        shots = [str(k) for k in s["shots"]]
        lines += ["| method | K | " + " | ".join(datasets) + " | mean, CoOp's 11 | mean, LORE's 12 |",
                  "|---|---:|" + "---:|" * (len(datasets) + 2)]
        for m, per_k in t.items():
            for k in shots:
                e = per_k[k]
                lines.append(f"| {m} | {k} | " + " | ".join(_fmt(e["per_dataset"].get(d)) for d in datasets)
                             + f" | {_fmt(e['average_coop11'])} | {_fmt(e['average_lore12'])} |")
        lines += ["", "(the means are over those of the 11 / 12 datasets that were run)"]
        lines += ["", "Published, 16 shots (BASELINES_CLIP §8; **published**):", ""]
        lines += [f"- {name}: average {avg} (IN SUN DTD UCF Air ESAT Cars Food Pets Flo Cal: {row})"
                  for name, (row, avg) in PUBLISHED_COOP16.items()]
        sources = sorted({c.get("fewshot_source") for c in report["cells"].values() if c.get("fewshot_source")})
        lines += ["", f"Few-shot images: {', '.join(sources)}."]
    elif p == "base2novel":
        names = [d.removesuffix("@base") for d in datasets]
        lines += ["| method | " + " | ".join(f"{d} B / N / HM" for d in names) + " | Average B / N / HM |",
                  "|---|" + "---:|" * (len(names) + 1)]
        for m, row in t.items():
            cells = []
            for d in names:
                e = row["per_dataset"].get(d, {})
                cells.append(" / ".join(_fmt(e.get(x)) for x in ("base", "new", "hm")))
            avg = row.get("average") or {}
            lines.append(f"| {m} | " + " | ".join(cells) + " | "
                         + " / ".join(_fmt(avg.get(x)) for x in ("base", "new", "hm")) + " |")
        lines += ["", "Published, average of 11 datasets, ViT-B/16, 16 shots (BASELINES_CLIP §8; **published**):", ""]
        lines += [f"- {name}: {b:.2f} / {n:.2f} / {h:.2f}" for name, (b, n, h) in PUBLISHED_B2N.items()]
    else:
        targets = sorted({tg for row in t.values() for tg in row["per_target"]})
        lines += ["| method | ImageNet (source) | " + " | ".join(targets) + " | mean of targets |",
                  "|---|---:|" + "---:|" * (len(targets) + 1)]
        for m, row in t.items():
            lines.append(f"| {m} | {_fmt(row['source'])} | " + " | ".join(_fmt(row["per_target"].get(x)) for x in targets)
                         + f" | {_fmt(row['average'])} |")
        if p == "dg":
            lines += ["", "Published (B/16, ImageNet 16 shots; ImageNet / -V2 / -S / -A / -R; BASELINES_CLIP §8; "
                      "**published** [U]):", ""]
            lines += [f"- {n}: " + " / ".join(f"{v:.2f}" for v in row) for n, row in PUBLISHED_DG.items()]
        else:
            lines += ["", "Published target averages (BASELINES_CLIP §8; **published** [U]): "
                      + ", ".join(f"{n} {v:.2f}" for n, v in PUBLISHED_XD.items())]
    if report["notes"]:
        lines += [""] + [f"- {n}" for n in report["notes"].values()]
    return "\n".join(lines) + "\n"


def plot_protocol(report: dict, path: Path) -> Path | None:
    """Bars per dataset (or target) and method, the protocol's average last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, p = report["tables"], report["protocol"]
    series: dict[str, dict[str, float]] = {}
    for m, row in t.items():
        if p in ("vtab", "fgvc"):
            vals = {d.removeprefix("vtab-").removeprefix("fgvc-"): v["mean"] for d, v in row["per_dataset"].items()}
            avg = row["average"].get("mean_of_groups" if p == "vtab" else "mean")
            if avg is not None:
                vals["average"] = avg
        elif p == "coop-fewshot":
            k = str(report["setup"]["shots"][-1])
            vals = {d: v["mean"] for d, v in row[k]["per_dataset"].items()}
        elif p == "base2novel":
            vals = {f"{d} {x}": e[x] for d, e in row["per_dataset"].items() for x in ("base", "new", "hm")
                    if e.get(x) is not None}
        else:
            vals = {tg: v["mean"] for tg, v in row["per_target"].items() if v is not None}
        if vals:
            series[m] = vals
    if not series:
        return None
    keys = list(dict.fromkeys(k for v in series.values() for k in v))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(keys) * max(1, len(series)) / 2 + 2), 3.4), dpi=110)
    width = 0.8 / len(series)
    for i, (m, vals) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(keys))]
        ax.bar(xs, [vals.get(k, 0.0) for k in keys], width * 0.92, label=m)
    ax.set_xticks(range(len(keys)), keys, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{p}: {report['setup']['backbone']} @ {report['setup']['img_size']} px"
                 + (" (stand-ins)" if report["setup"].get("quick") else ""), fontsize=8)
    ax.legend(fontsize=6, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def run_suite(plan: SuitePlan, out_dir: str | Path, progress: Callable[[str], None] | None = print) -> dict:
    """Run (or resume) one protocol of the suite into ``out_dir``; returns its report (also in suite.json)."""
    plan.validate()
    say = progress or (lambda _m: None)
    out = Path(out_dir)
    return Suite(plan, out, say).run()
