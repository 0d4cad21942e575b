"""A whole run from a Config: data, model, training (few-shot, full or easy-to-hard), test,
and the run's files: ``config.yaml``, ``indices.json``, ``metrics.json``, ``adapter.safetensors``,
``logs/`` and ``checkpoints/``.
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from lorevit.adapters.format import FILENAME as ADAPTER_FILE
from lorevit.adapters.format import save_adapter
from lorevit.backbone import PromptedViT, create_backbone
from lorevit.config import RESUME_FREE_KEYS, Config, logger_names
from lorevit.training.protocols import STAGES_FILE
from lorevit.training.protocols import easy_to_hard
from lorevit.training.protocols import fit_and_test
from lorevit.training.protocols import zero_shot_negatives
from lorevit.training.trainer import _trainer, preemption_signals, resume_checkpoint
from lorevit.errors import ConfigError
from lorevit.data.sampling import short_classes
from lorevit.errors import Diverged, Preempted
from lorevit.errors import RunError  # noqa: F401 (re-exported: lorevit.training.run.RunError)
from lorevit.utils.io import write_json, write_text
from lorevit.utils.lock import output_lock
from lorevit.config import ARCH_KEYS
from lorevit.factory import create_model, resolve_config
from lorevit.methods import method_class, options_from_config
from lorevit.model import PromptedClassifier
from lorevit.training.datamodule import ClassificationData

log = logging.getLogger(__name__)


def validate(cfg: Config) -> None:
    """What Config's own checks cannot know: the machine's accelerators and the installed logger packages."""
    logger_names(cfg)  # a logger whose package is missing: one ConfigError naming it, before any file is written
    options_from_config(cfg)  # the method's options, checked by its dataclass: one ConfigError before any file
    method_class(cfg.method).check_config(cfg)  # what a method needs of the config (a CLIP text tower, ...)
    if cfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"accelerator: {cfg.accelerator!r} asked for, but this machine has no CUDA GPU "
                          "(torch.cuda.is_available() is False); use --accelerator cpu or auto")
    if cfg.accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("accelerator: 'mps' asked for, but Apple's MPS is not available here; use --accelerator cpu")
    _trainer(cfg, Path(tempfile.gettempdir()), 1, False, [])  # Lightning checks devices/strategy/precision: before any file is written


UNFINISHED = ("preempted", "diverged")  # metrics.json "status" of a run that stopped before its end


def run_status(out: Path) -> str | None:
    """``metrics.json``'s status: None (no run), "finished", "preempted" or "diverged"."""
    import json

    path = out / "metrics.json"
    if not path.is_file():
        return "finished" if (out / ADAPTER_FILE).exists() else None
    try:
        return json.loads(path.read_text()).get("status", "finished")
    except (OSError, ValueError, AttributeError):
        return "finished"  # unreadable: never treated as resumable, never clobbered without --overwrite


def resolve_resume(cfg: Config) -> Config:
    """``resume: auto``: resume when ``checkpoints/last.ckpt`` (or an easy-to-hard stage record) exists, start fresh
    otherwise; a resumed config must still match the run's (checked by :func:`check_resume_config`)."""
    import dataclasses

    if cfg.resume != "auto":
        return cfg
    out = Path(cfg.output)
    found = (out / "checkpoints" / "last.ckpt").is_file() or (out / STAGES_FILE).is_file()
    return dataclasses.replace(cfg, resume=bool(found) and run_status(out) != "finished")


def prepare_output(cfg: Config) -> Path:
    out = Path(cfg.output)
    finished = run_status(out) not in (None, *UNFINISHED)
    if cfg.resume:
        if not (out / "checkpoints" / "last.ckpt").is_file() and not (out / STAGES_FILE).is_file():
            raise RunError(f"--resume: no checkpoint at {out / 'checkpoints' / 'last.ckpt'}; start without --resume")
        check_resume_config(cfg, out / "config.yaml")
        record_plan_change(cfg, out)
    elif finished and not cfg.overwrite:
        raise RunError(f"{out} already holds a finished run; choose another --output, or pass --overwrite to replace it")
    return out


# Keys a resumed run may change (lorevit.config.RESUME_FREE_KEYS, from the keys' tags): they do not change what is
# trained or measured, or they may grow (epochs: the cosine schedule is a closed form of the total step count).


def check_resume_config(cfg: Config, saved_path: Path) -> None:
    """A resumed run must be the run it continues: refuse a config that differs in any key that matters."""
    import yaml

    try:
        saved = Config.from_dict(yaml.safe_load(saved_path.read_text()) or {})
    except (OSError, yaml.YAMLError, ConfigError) as err:
        raise RunError(f"--resume: cannot read the run's own config {saved_path} ({err}); start a new run") from None
    differ = {k: (getattr(saved, k), getattr(cfg, k)) for k in Config.keys()
              if k not in RESUME_FREE_KEYS and getattr(saved, k) != getattr(cfg, k)}
    if differ:
        listed = "; ".join(f"{k}: {a!r} → {b!r}" for k, a, b in ((k, *v) for k, v in differ.items()))
        raise RunError(f"--resume with a config that differs from the run's ({saved_path}): {listed}. Resume with the "
                       "same values (only epochs, progress, workers, loggers and eval batch size may change) or start a new run")
    if cfg.epochs < saved.epochs:
        raise RunError(f"--resume: epochs {cfg.epochs} is fewer than the run's {saved.epochs}; a finished schedule "
                       "cannot shrink — start a new run")


PLAN_FILE = "plan.json"  # the epoch plans a resumed run followed (issue 25 §4)


def record_plan_change(cfg: Config, out: Path) -> None:
    """A resume with more epochs changes the cosine's length from the step it resumes at: append to
    ``plan.json`` where the plan changed (epoch, step) and from how many epochs to how many, before
    ``config.yaml`` is overwritten with the new plan. The epochs' learning rates actually used are in
    the history (``lr``, at each epoch's end); ``metrics.json`` gets both as ``schedule``."""
    import yaml

    ckpt = out / "checkpoints" / "last.ckpt"
    if cfg.protocol == "easy-to-hard" or not ckpt.is_file():
        return
    saved = Config.from_dict(yaml.safe_load((out / "config.yaml").read_text()) or {})
    if saved.epochs == cfg.epochs:
        return
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    done = len(state.get("history", []))  # whole epochs trained under the old plan
    plan = read_plan(out)
    change = {"from_epochs": saved.epochs, "to_epochs": cfg.epochs, "at_epoch": done + 1,
              "at_step": int(state.get("global_step", 0))}
    if plan and plan[-1] == change:  # the same resume tried again (an earlier try stopped before config.yaml)
        return
    plan.append(change)
    write_json(out / PLAN_FILE, {"changes": plan})


def read_plan(out: Path) -> list[dict]:
    import json

    path = out / PLAN_FILE
    return json.loads(path.read_text())["changes"] if path.is_file() else []


def schedule_record(out: Path, history: list[dict], epochs: int) -> dict:
    """``metrics.json``'s ``schedule``: the plan(s) the run followed and the learning rate of every epoch."""
    changes = read_plan(out)
    planned = [changes[0]["from_epochs"], *(c["to_epochs"] for c in changes)] if changes else [epochs]
    return {"planned_epochs": planned, "changes": changes, "lr_per_epoch": [row.get("lr") for row in history]}


def clear_previous_run(out: Path) -> None:
    """``--overwrite``: remove the old run's files first, so no stale checkpoint or log is mixed in.

    Called only once the new run has been fully validated (data, model): a refused run never costs the old one.
    """
    import shutil

    for name in ("checkpoints", "logs", "eval"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("metrics.json", ADAPTER_FILE, "indices.json", "curves.png", "eval.json", "config.yaml",
                 "env.json", "per_class.json", "confusion.png", STAGES_FILE, PLAN_FILE):  # issue 12 §3, issue 14
        (out / name).unlink(missing_ok=True)


def summary(cfg: Config, model: PromptedClassifier) -> dict:
    trainable, total = model.parameter_counts()
    out = {"method": cfg.method, "recipe": cfg.recipe, "backbone": cfg.backbone, "dataset": cfg.dataset,
           "protocol": cfg.protocol, "shots": cfg.shots, "seed": cfg.seed, "img_size": cfg.img_size, "trainable_params": trainable,
           "total_params": total, "trainable_pct": round(100.0 * trainable / total, 3)}
    template = class_text_template(cfg, model)
    if template:
        out["template"] = template  # the class prompt its classifier is built from (issue 20 §1)
    return out


def class_text_template(cfg: Config, model: PromptedClassifier) -> str | None:
    """The class-name template the run's classifier is built from (the method's ``template`` option, or
    ``text_template`` for ``head: text``); None for a classifier without class text (issue 20 §1: recorded)."""
    template = getattr(model.method.options, "template", None)
    if isinstance(template, str) and template:
        return template
    return cfg.text_template if cfg.head == "text" else None


def plot_curves(metrics: dict, path: Path) -> None:
    """curves.png beside metrics.json; a figure that fails to draw never costs a finished run."""
    if not metrics.get("history"):
        return
    try:
        from lorevit.training.figures import plot_training_curves

        plot_training_curves(metrics, path)
    except Exception as err:  # noqa: BLE001 (matplotlib missing or failing)
        log.warning("training curves not drawn: %s", err)


def train(cfg: Config, backbone: PromptedViT | None = None, data: ClassificationData | None = None,
          test: bool = True) -> dict:
    """Run ``cfg`` end to end and return its metrics (also written to ``<output>/metrics.json``).

    ``backbone`` and ``data`` (built from ``cfg`` when not given) let a benchmark share the frozen
    ViT and the sampled images between runs; they must match ``cfg``. ``test=False`` stops after the
    validation split (a model-selection run, ``bench ablation --grid``): no test metrics.
    """
    cfg = resolve_config(cfg)  # knowledge: clip:auto → the backbone's own text tower, recorded as such
    if cfg.resume == "auto" and run_status(Path(cfg.output)) == "finished" and not cfg.overwrite:
        import json

        log.warning("--resume auto: %s already holds a finished run; nothing to do", cfg.output)
        return json.loads((Path(cfg.output) / "metrics.json").read_text())
    resume_auto = cfg.resume == "auto"  # a damaged last.ckpt then falls back to the one before it
    cfg = resolve_resume(cfg)
    validate(cfg)
    out = prepare_output(cfg)
    start = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if backbone is None:
        backbone = create_backbone(cfg.backbone, cfg.weights, cfg.img_size, **cfg.backbone_kwargs)
    if data is None:
        data = ClassificationData(cfg, backbone.data_config)
    # Once the data and backbone are known good (a bad input is reported as itself, not as a busy folder): a second
    # run on this --output is refused before it writes anything (issue 25 §2); SIGTERM/SIGUSR1 stop the run where it
    # is safe (§1)
    with output_lock(out), preemption_signals():
        return _train_locked(cfg, out, backbone, data, test, resume_auto, start)


def _train_locked(cfg: Config, out: Path, backbone: PromptedViT, data: ClassificationData, test: bool,
                  resume_auto: bool, start: float) -> dict:
    model = create_model(cfg.method, data.classnames, backbone=backbone, knowledge=cfg.knowledge,
                         method_options=cfg.method_options, **{k: getattr(cfg, k) for k in ARCH_KEYS})
    if rank_zero_only.rank == 0:
        if cfg.overwrite and not cfg.resume:
            clear_previous_run(out)
        write_text(out / "config.yaml", cfg.to_yaml())
    metrics = summary(cfg, model)
    metrics["num_test"] = len(data.test_indices)
    metrics["num_val"] = len(data.val_indices)
    if cfg.protocol == "few-shot" and cfg.allow_fewer_shots:  # the opt-in is never silent
        short = short_classes(data.train_set.targets, cfg.shots)
        metrics["fewer_shots"] = {data.classnames[c]: n for c, n in short.items()}
    if cfg.protocol == "easy-to-hard":
        metrics.update(easy_to_hard(cfg, model, data, out, resume_auto))
        metrics["num_train"] = len(data.train_indices)
    else:
        if rank_zero_only.rank == 0:
            write_json(out / "indices.json", {"train": data.train_indices, "val": data.val_indices, "seed": cfg.seed,
                                              "shots": cfg.shots})
        ckpt = resume_checkpoint(out / "checkpoints" / "last.ckpt", auto=resume_auto) if cfg.resume else None
        negatives = zero_shot_negatives(cfg, model, data)
        try:
            results, history, times = fit_and_test(cfg, model, data, out, negatives=negatives, ckpt_path=ckpt,
                                                   test=test)
        except Preempted as stop:
            if rank_zero_only.rank == 0:  # resumable: prepare_output treats this status as unfinished
                write_json(out / "metrics.json", {**metrics, "status": "preempted", "signal": stop.signal_name,
                                                  "epoch": stop.epoch, "step": stop.step,
                                                  "checkpoint": str(Path(stop.checkpoint).relative_to(out))})
            raise
        except Diverged as stop:
            if rank_zero_only.rank == 0:  # the last good checkpoint stays; this run is not resumable as it was
                write_json(out / "metrics.json", {**metrics, "status": "diverged", "epoch": stop.epoch,
                                                  "step": stop.step, "nonfinite": stop.what})
            raise
        metrics.update(results, history=history, num_train=len(data.train_indices), **times)
        metrics["schedule"] = schedule_record(out, history, cfg.epochs)
        metrics["negatives"] = "none" if not model.method.uses_knowledge else \
            "own-prediction" if negatives is None else "clip-zero-shot"
    if cfg.bad_images == "skip":  # images left out as unreadable: per training epoch (all ranks) and in the test
        per_epoch = [row.get("train_skipped", 0) for row in metrics["history"]]
        metrics["skipped_images"] = {"train": max(per_epoch, default=0),
                                     "test": len(data.test_indices) - int(metrics.get("test_images", 0))}
    metrics["wall_time_s"] = round(time.perf_counter() - start, 2)
    metrics["status"] = "finished"
    if rank_zero_only.rank == 0:
        save_adapter(model, cfg, out)
        from lorevit.training.envinfo import write_env  # issue 12 §3: versions, device, git commit, data fingerprints

        write_env(out, cfg, data, metrics)
        write_json(out / "metrics.json", metrics)
        plot_curves(metrics, out / "curves.png")
    return metrics
