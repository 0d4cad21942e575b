"""A whole run from a Config: data, model, training (few-shot, full or easy-to-hard), test,
and the run's files: ``config.yaml``, ``indices.json``, ``metrics.json``, ``adapter.safetensors``,
``logs/`` and ``checkpoints/``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from .adapter import FILENAME as ADAPTER_FILE
from .adapter import save_adapter
from .backbone import PromptedViT, create_backbone
from .config import Config, ConfigError, logger_names
from .data import easy_indices, few_shot_indices, hard_indices
from .data.sampling import short_classes
from .errors import UserError
from .io import atomic_write, write_json, write_text
from .knowledge import ZERO_SHOT_TEMPLATE, check_matching_towers, class_features
from .methods import ZeroShotHead
from .model import ARCH_KEYS, PromptedClassifier, create_model
from .paths import sub_dir
from .training import ClassificationData, LitClassifier, one_off_pass, pass_device

log = logging.getLogger(__name__)


class RunError(UserError, RuntimeError):
    """The run cannot start as asked (output directory state, resume); nothing was written."""


def validate(cfg: Config) -> None:
    """What Config's own checks cannot know: the machine's accelerators and the installed logger packages."""
    logger_names(cfg)  # a logger whose package is missing: one ConfigError naming it, before any file is written
    if cfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"accelerator: {cfg.accelerator!r} asked for, but this machine has no CUDA GPU "
                          "(torch.cuda.is_available() is False); use --accelerator cpu or auto")
    if cfg.accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("accelerator: 'mps' asked for, but Apple's MPS is not available here; use --accelerator cpu")
    _trainer(cfg, Path(tempfile.gettempdir()), 1, False, [])  # Lightning checks devices/strategy/precision: before any file is written


def prepare_output(cfg: Config) -> Path:
    out = Path(cfg.output)
    finished = (out / "metrics.json").exists() or (out / ADAPTER_FILE).exists()
    if cfg.resume:
        if not (out / "checkpoints" / "last.ckpt").is_file() and not (out / STAGES_FILE).is_file():
            raise RunError(f"--resume: no checkpoint at {out / 'checkpoints' / 'last.ckpt'}; start without --resume")
        check_resume_config(cfg, out / "config.yaml")
    elif finished and not cfg.overwrite:
        raise RunError(f"{out} already holds a finished run; choose another --output, or pass --overwrite to replace it")
    return out


# Keys a resumed run may change: they do not change what is trained or measured. ``epochs`` may grow:
# the cosine schedule is a closed form of the run's total step count (training.cosine_factor).
RESUME_FREE_KEYS = ("resume", "overwrite", "progress", "num_workers", "eval_batch_size", "output", "epochs", "logger",
                    "checkpoint_every_n_steps")


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


def clear_previous_run(out: Path) -> None:
    """``--overwrite``: remove the old run's files first, so no stale checkpoint or log is mixed in.

    Called only once the new run has been fully validated (data, model): a refused run never costs the old one.
    """
    import shutil

    for name in ("checkpoints", "logs", "eval"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("metrics.json", ADAPTER_FILE, "indices.json", "curves.png", "eval.json", "config.yaml",
                 "env.json", "per_class.json", "confusion.png", STAGES_FILE):  # issue 12 §3, issue 14
        (out / name).unlink(missing_ok=True)


def progress_bar() -> L.Callback:
    """Lightning's bar (rich when installed) without the logger's version number: runs are named by directory."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    Bar = RichProgressBar if importlib.util.find_spec("rich") else TQDMProgressBar

    class ProgressBar(Bar):
        def get_metrics(self, trainer, pl_module):
            items = super().get_metrics(trainer, pl_module)
            items.pop("v_num", None)
            return items

    return ProgressBar()


def make_trainer(cfg: Config, out: Path, epochs: int, stage: str = "") -> L.Trainer:
    """The run's Trainer; its loggers (config key ``logger``, issue 12 §5) are Lightning's own, all under ``out/logs``:
    csv → ``logs/metrics.csv``, tensorboard → ``logs/tensorboard``, wandb → ``logs/wandb`` (offline unless
    WANDB_MODE=online), mlflow → a local file store ``logs/mlruns`` (unless MLFLOW_TRACKING_URI is set).
    """
    from lightning.pytorch import loggers as pl_loggers

    run_name = f"{out.name}-{stage}" if stage else out.name
    build = {
        "csv": lambda: CSVLogger(out, name="logs", version=stage),
        "tensorboard": lambda: pl_loggers.TensorBoardLogger(out, name="logs", version=stage or "tensorboard"),
        "wandb": lambda: pl_loggers.WandbLogger(name=run_name, save_dir=str(out / "logs"), project="lorevit",
                                                offline=os.environ.get("WANDB_MODE") != "online"),
        "mlflow": lambda: pl_loggers.MLFlowLogger(
            experiment_name="lorevit", run_name=run_name,
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or (out / "logs" / "mlruns").resolve().as_uri()),
    }
    loggers = [build[name]() for name in logger_names(cfg)]
    # last.ckpt rewritten at every epoch's end (Lightning 2.6 writes save_last only when a top-k file was saved,
    # i.e. with save_top_k=0 only at the very end): the one most recent checkpoint, under the name resume reads.
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints" / stage, filename="last", save_top_k=1, every_n_epochs=1,
                                 enable_version_counter=False)
    callbacks = [checkpoint] + ([progress_bar()] if cfg.progress else [])
    if cfg.checkpoint_every_n_steps:  # also within an epoch (the training loader resumes mid-epoch)
        callbacks.insert(1, StepCheckpoint(dirpath=out / "checkpoints" / stage, filename="last", save_top_k=1,
                                           every_n_train_steps=cfg.checkpoint_every_n_steps,
                                           enable_version_counter=False))
    return _trainer(cfg, out, epochs, loggers, callbacks)


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every N optimiser steps (config key ``checkpoint_every_n_steps``), except after an epoch's
    last batch: the epoch's own checkpoint follows a moment later, once the epoch's history row is written."""

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            super().on_train_batch_end(trainer, *args, **kwargs)


def _trainer(cfg: Config, out: Path, epochs: int, loggers, callbacks: list) -> L.Trainer:
    """Lightning's Trainer for ``cfg``; its own refusals of the trainer keys become one ConfigError."""
    try:
        return L.Trainer(
            max_epochs=epochs, accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
            num_nodes=cfg.num_nodes, precision=cfg.precision, logger=loggers, callbacks=callbacks,
            enable_progress_bar=cfg.progress, enable_model_summary=False, log_every_n_steps=1,
            num_sanity_val_steps=0, default_root_dir=out, deterministic=False,
            check_val_every_n_epoch=max(cfg.val_every, 1),
            plugins=[AtomicCheckpointIO()],
        )
    except (ValueError, TypeError, MisconfigurationException) as err:
        raise ConfigError(f"trainer settings (accelerator {cfg.accelerator!r}, devices {cfg.devices!r}, strategy "
                          f"{cfg.strategy!r}, precision {cfg.precision!r}, num_nodes {cfg.num_nodes}): {err}") from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a run killed while writing one keeps the previous
    ``last.ckpt`` whole (Lightning writes the file in place)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        atomic_write(Path(path), lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(checkpoint, tmp,
                                                                                             storage_options))


def fit_and_test(cfg, model, data, out, *, stage="", epochs=None, lr=None, negatives=None, ckpt_path=None, test=True):
    """Train (unless the method trains nothing), validate on the validation split (if any), then test (unless
    ``test`` is False: model selection must not look at the test split); returns (metrics, history, seconds)."""
    epochs = cfg.epochs if epochs is None else epochs
    lit = LitClassifier(model, cfg, negatives=negatives, lr=lr)
    trainer = make_trainer(cfg, out, epochs, stage)
    start = time.perf_counter()
    if model.method.trains and epochs > 0:
        trainer.fit(lit, train_dataloaders=data.train_dataloader(),
                    val_dataloaders=data.val_dataloader() if cfg.val_every else None, ckpt_path=ckpt_path)
    train_s = time.perf_counter() - start
    results = trainer.validate(lit, dataloaders=data.val_dataloader(), verbose=False)[0] if data.val_indices else {}
    start = time.perf_counter()
    if test:
        results.update(trainer.test(lit, dataloaders=data.test_dataloader(), verbose=False)[0])
    test_s = time.perf_counter() - start
    times = {"train_s": round(train_s, 2), "test_s": round(test_s, 2), "world_size": trainer.world_size}
    return {k: float(v) for k, v in results.items()}, lit.history, times


def zero_shot_negatives(cfg: Config, model: PromptedClassifier, data: ClassificationData) -> torch.Tensor | None:
    """p of Eq. 10 for CLIP backbones: zero-shot CLIP predictions, computed once and cached.

    None (→ the model's own detached prediction) when the method has no L_kp, the knowledge is
    no CLIP text tower, or the backbone is no CLIP image tower (KLA's queries may come from any
    text encoder). A CLIP backbone with the text tower of another CLIP model or tag is a
    KnowledgeError: its "zero-shot" labels would be meaningless.
    """
    if not model.method.uses_knowledge or not cfg.knowledge.startswith("clip:"):
        return None
    if not check_matching_towers(cfg.backbone, cfg.weights, cfg.knowledge):
        log.warning("no CLIP zero-shot labels for L_kp (%s is no CLIP image tower); using the model's own "
                    "predictions", cfg.backbone)
        return None
    try:
        head = ZeroShotHead(model.backbone, class_features(cfg.knowledge, data.classnames, ZERO_SHOT_TEMPLATE))
    except ValueError as err:  # e.g. a CLIP-named backbone built without its image projection
        log.warning("no CLIP zero-shot labels for L_kp (%s); using the model's own predictions", err)
        return None
    key = hashlib.sha1(json.dumps([cfg.backbone, cfg.weights, cfg.knowledge, cfg.dataset, str(cfg.data_root),
                                   cfg.img_size, data.train_indices]).encode()).hexdigest()[:16]
    path = sub_dir("zero_shot") / f"{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    table = torch.full((len(data.train_set),), -1, dtype=torch.long)
    index, (labels,) = one_off_pass(torch.nn.ModuleList([model.backbone, head]),
                                    lambda images: head(model.backbone(images)).argmax(-1),
                                    data.plain_train_dataloader(), pass_device(cfg))
    table[index] = labels
    atomic_write(path, lambda tmp: torch.save(table, tmp))  # never half-written for another rank or run
    return table


def summary(cfg: Config, model: PromptedClassifier) -> dict:
    trainable, total = model.parameter_counts()
    return {"method": cfg.method, "backbone": cfg.backbone, "dataset": cfg.dataset, "protocol": cfg.protocol,
            "shots": cfg.shots, "seed": cfg.seed, "img_size": cfg.img_size, "trainable_params": trainable,
            "total_params": total, "trainable_pct": round(100.0 * trainable / total, 3)}


STAGES_FILE = "stages.json"  # easy-to-hard: each stage's images, and its results once it has finished


def easy_to_hard(cfg: Config, model: PromptedClassifier, data: ClassificationData, out: Path) -> dict:
    """Spec "Protocols": LORE-e on the N easiest images per class, then LORE-h on LORE-e's N hardest.

    Resumable per stage: ``stages.json`` records each stage's images as soon as they are chosen and its
    results once it has finished; each stage checkpoints to ``checkpoints/<stage>/last.ckpt``. ``--resume``
    reloads a finished easy stage (its trained state from its checkpoint, its results from the record)
    instead of training it again, and continues the stage the run was killed in from its checkpoint.
    """
    record = read_stages(out) if cfg.resume else {}
    targets = torch.tensor(data.train_set.targets)
    pool = few_shot_indices(data.train_set.targets, cfg.selection_pool, cfg.seed) if cfg.selection_pool \
        else data.unreserved_train_indices()
    loader = data.plain_train_dataloader(pool)
    device = pass_device(cfg)
    if "easy" not in record:  # Black Box features: the frozen ViT without prompts
        order, (feats,) = one_off_pass(model.backbone, model.backbone, loader, device)
        record["easy"] = {"indices": order[easy_indices(feats, targets[order], cfg.stage_shots)].tolist()}
        write_stages(out, record)
    easy = data.train_indices = record["easy"]["indices"]
    negatives = zero_shot_negatives(cfg, model, data)
    if "test_top1" in record["easy"]:  # finished before the run stopped: its trained state back, no training
        load_trained_state(model, out / "checkpoints" / "easy" / "last.ckpt")
        easy_metrics, easy_history = {"test_top1": record["easy"]["test_top1"]}, record["easy"]["history"]
        easy_time = {k: record["easy"][k] for k in ("train_s", "test_s", "world_size")}
    else:
        easy_metrics, easy_history, easy_time = fit_and_test(cfg, model, data, out, stage="easy", negatives=negatives,
                                                             ckpt_path=stage_checkpoint(cfg, out, "easy"))
        record["easy"].update(test_top1=easy_metrics["test_top1"], history=easy_history, **easy_time)
        write_stages(out, record)

    if "hard" not in record:  # LORE-e on the pool
        def predictions_and_features(images):
            out = model(images)
            return out.logits.argmax(-1), out.features

        order, (preds, feats) = one_off_pass(model, predictions_and_features, loader, device)
        record["hard"] = {"indices": order[hard_indices(feats, targets[order], preds, cfg.stage_shots)].tolist()}
        write_stages(out, record)
    hard = data.train_indices = record["hard"]["indices"]
    negatives = zero_shot_negatives(cfg, model, data)
    hard_metrics, hard_history, hard_time = fit_and_test(cfg, model, data, out, stage="hard", epochs=cfg.hard_epochs,
                                                         lr=cfg.hard_lr, negatives=negatives,
                                                         ckpt_path=stage_checkpoint(cfg, out, "hard"))
    return {
        "test_top1": hard_metrics["test_top1"], "test_top5": hard_metrics["test_top5"],
        "test_images": hard_metrics["test_images"],
        "stages": {
            "easy": {"indices": easy, "test_top1": easy_metrics["test_top1"], "history": easy_history, **easy_time},
            "hard": {"indices": hard, "test_top1": hard_metrics["test_top1"], "history": hard_history, **hard_time},
        },
        "improvement": hard_metrics["test_top1"] - easy_metrics["test_top1"],
        **{k: hard_metrics[k] for k in ("val_top1",) if k in hard_metrics},
        "history": easy_history + hard_history,
        "train_s": easy_time["train_s"] + hard_time["train_s"], "test_s": hard_time["test_s"],
        "negatives": "own-prediction" if negatives is None else "clip-zero-shot",
    }


def read_stages(out: Path) -> dict:
    path = out / STAGES_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"--resume: cannot read the easy-to-hard stage record {path} ({err}); start a new run") from None


def write_stages(out: Path, record: dict) -> None:
    if rank_zero_only.rank == 0:
        write_json(out / STAGES_FILE, record)


def stage_checkpoint(cfg: Config, out: Path, stage: str) -> Path | None:
    """The stage's own ``last.ckpt`` when resuming and it exists (a stage killed before its first one starts anew)."""
    path = out / "checkpoints" / stage / "last.ckpt"
    return path if cfg.resume and path.is_file() else None


def load_trained_state(model: PromptedClassifier, path: Path) -> None:
    """The trainable state a stage's checkpoint holds (the frozen ViT is not in it), checked key for key."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except (OSError, RuntimeError, KeyError, EOFError) as err:
        raise RunError(f"--resume: cannot read the finished stage's checkpoint {path} ({err}); "
                       "start a new run") from None
    state = {k.removeprefix("model."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("backbone.")]
    if missing or unexpected:
        raise RunError(f"--resume: {path} does not fit the model built from this config (missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]}); resume with the run's own config")


def plot_curves(metrics: dict, path: Path) -> None:
    """curves.png beside metrics.json; a figure that fails to draw never costs a finished run."""
    if not metrics.get("history"):
        return
    try:
        from .viz import plot_training_curves

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
    validate(cfg)
    out = prepare_output(cfg)
    start = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if backbone is None:
        backbone = create_backbone(cfg.backbone, cfg.weights, cfg.img_size, **cfg.backbone_kwargs)
    if data is None:
        data = ClassificationData(cfg, backbone.data_config)
    model = create_model(cfg.method, data.classnames, backbone=backbone, knowledge=cfg.knowledge,
                         **{k: getattr(cfg, k) for k in ARCH_KEYS})
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
        metrics.update(easy_to_hard(cfg, model, data, out))
        metrics["num_train"] = len(data.train_indices)
    else:
        if rank_zero_only.rank == 0:
            write_json(out / "indices.json", {"train": data.train_indices, "val": data.val_indices, "seed": cfg.seed,
                                              "shots": cfg.shots})
        ckpt = out / "checkpoints" / "last.ckpt" if cfg.resume else None
        negatives = zero_shot_negatives(cfg, model, data)
        results, history, times = fit_and_test(cfg, model, data, out, negatives=negatives, ckpt_path=ckpt, test=test)
        metrics.update(results, history=history, num_train=len(data.train_indices), **times)
        metrics["negatives"] = "none" if not model.method.uses_knowledge else \
            "own-prediction" if negatives is None else "clip-zero-shot"
    if cfg.bad_images == "skip":  # images left out as unreadable: per training epoch (all ranks) and in the test
        per_epoch = [row.get("train_skipped", 0) for row in metrics["history"]]
        metrics["skipped_images"] = {"train": max(per_epoch, default=0),
                                     "test": len(data.test_indices) - int(metrics.get("test_images", 0))}
    metrics["wall_time_s"] = round(time.perf_counter() - start, 2)
    if rank_zero_only.rank == 0:
        save_adapter(model, cfg, out)
        from .envinfo import write_env  # issue 12 §3: versions, device, git commit, data fingerprints

        write_env(out, cfg, data, metrics)
        write_json(out / "metrics.json", metrics)
        plot_curves(metrics, out / "curves.png")
    return metrics
