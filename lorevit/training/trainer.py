"""The Lightning Trainer of a run: progress bar, loggers, checkpoints written atomically, resume and preemption."""
from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lorevit.config import Config, logger_names
from lorevit.errors import ConfigError
from lorevit.utils.io import atomic_write


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
    callbacks = [checkpoint, PreemptionCheckpoint(out / "checkpoints" / stage / "last.ckpt")] + \
        ([progress_bar()] if cfg.progress else [])
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
            max_epochs=-1 if cfg.max_steps else epochs, max_steps=cfg.max_steps or -1, accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
            num_nodes=cfg.num_nodes, precision=cfg.precision, logger=loggers, callbacks=callbacks,
            enable_progress_bar=cfg.progress, enable_model_summary=False, log_every_n_steps=1,
            num_sanity_val_steps=0, default_root_dir=out, deterministic=False,
            check_val_every_n_epoch=max(cfg.val_every, 1),
            plugins=[AtomicCheckpointIO()],
        )
    except (ValueError, TypeError, MisconfigurationException) as err:
        raise ConfigError(f"trainer settings (accelerator {cfg.accelerator!r}, devices {cfg.devices!r}, strategy "
                          f"{cfg.strategy!r}, precision {cfg.precision!r}, num_nodes {cfg.num_nodes}): {err}") from None


def previous_checkpoint(path: Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``last.ckpt`` → ``last.prev.ckpt``."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def checkpoint_problem(path: Path) -> str | None:
    """What is wrong with a checkpoint file (missing, truncated, corrupt), or None when it is whole.

    torch saves a zip archive; every member's CRC is checked, so a file cut at any offset or overwritten with other
    bytes is found without unpickling anything."""
    import zipfile

    if not path.is_file():
        return "it does not exist"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f"it is not a whole torch checkpoint ({err}): truncated or corrupt"
    return f"its member {bad} fails its checksum: corrupt" if bad else None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a run killed while writing one keeps the previous
    ``last.ckpt`` whole (Lightning writes the file in place). The one before it stays as ``last.prev.ckpt`` (a hard
    link, no copy), for ``--resume auto`` when ``last.ckpt`` was damaged afterwards (issue 25 §2)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        if path.is_file():
            keep = previous_checkpoint(path)
            atomic_write(keep, lambda tmp: (tmp.unlink(), _link_or_copy(path, tmp)))
        atomic_write(path, lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(checkpoint, tmp,
                                                                                       storage_options))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        import shutil

        shutil.copyfile(source, target)


def resume_checkpoint(path: Path, auto: bool) -> Path:
    """The checkpoint to resume from: ``path`` when whole; with ``--resume auto`` the previous one when ``path`` is
    damaged and it is whole (logged); otherwise one :class:`lorevit.errors.DamagedFileError` naming the file."""
    import logging

    from lorevit.errors import DamagedFileError

    problem = checkpoint_problem(path)
    if problem is None:
        return path
    keep = previous_checkpoint(path)
    kept_ok = checkpoint_problem(keep) is None
    if auto and kept_ok:
        logging.getLogger("lorevit").warning("%s: %s; resuming from the previous checkpoint %s instead",
                                             path, problem, keep)
        return keep
    fix = (f"pass --resume auto to resume from the previous checkpoint {keep}" if kept_ok else
           "no whole earlier checkpoint is kept: start again with --overwrite")
    raise DamagedFileError(f"cannot resume from {path}: {problem}; {fix}")


class _Recorder:
    """SIGTERM / SIGUSR1 recorded, never acted on in the handler: the run stops where it is safe to."""

    SIGNALS = ("SIGTERM", "SIGUSR1")

    def __init__(self):
        self.received: str | None = None
        self.active = False

    def handle(self, signum, frame) -> None:
        import signal

        self.received = self.received or signal.Signals(signum).name

    def install(self) -> dict:
        """Our handler for both signals (main thread only); returns the handlers it replaced."""
        import signal
        import threading

        if not self.active or threading.current_thread() is not threading.main_thread():
            return {}
        return {name: signal.signal(getattr(signal, name), self.handle) for name in self.SIGNALS
                if hasattr(signal, name)}


PREEMPTION = _Recorder()


@contextlib.contextmanager
def preemption_signals():
    """SIGTERM / SIGUSR1 recorded for the whole run (training, testing and writing its files): a second signal while
    a preempted run writes its metrics (a scheduler's SIGTERM, then the user's scancel), or one during the test
    phase, never kills it half-way. The previous handlers come back when the run returns — unless the run was
    signalled: the process has been asked to stop, and a second signal on its way out (the CLI printing, exiting
    with 75) must not turn a clean preemption into a kill, so ours stay (recording only) until the process exits."""
    import signal

    PREEMPTION.received, PREEMPTION.active = None, True
    previous = PREEMPTION.install()
    try:
        yield PREEMPTION
    finally:
        signalled = PREEMPTION.received is not None
        PREEMPTION.active, PREEMPTION.received = False, None
        for name, handler in previous.items():
            if not signalled:
                signal.signal(getattr(signal, name), handler)


class PreemptionCheckpoint(L.Callback):
    """SIGTERM / SIGUSR1 (a cluster's preemption, SLURM's warning before the time limit) inside a run
    (:func:`preemption_signals`): during training the step in progress finishes, ``last.ckpt`` is written
    atomically, and :class:`lorevit.errors.Preempted` stops the run (issue 25 §1). A signal on the epoch's last batch
    lets the epoch end (its own checkpoint holds the epoch's history row) and stops before the next batch. After
    training (the validation and test passes) a single-process run stops at the next batch (``last.ckpt`` already
    holds the trained state, and a resumed run only evaluates); a DDP run finishes its evaluation. More signals
    while stopping change nothing (recorded only)."""

    def __init__(self, checkpoint: Path):
        self.checkpoint = Path(checkpoint)

    def on_train_start(self, trainer, pl_module) -> None:
        PREEMPTION.install()  # over Lightning's SIGTERM notifier (its teardown puts ours back): the step finishes first

    def on_validation_start(self, trainer, pl_module) -> None:
        PREEMPTION.install()  # Lightning's would raise its SIGTERMException mid-pass

    def on_test_start(self, trainer, pl_module) -> None:
        PREEMPTION.install()

    def _stop_now(self, trainer) -> bool:
        stop = PREEMPTION.received is not None
        if trainer.world_size > 1:  # every rank stops at the same step (one may have seen the signal later)
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        return stop

    def _preempted(self, trainer):
        from lorevit.errors import Preempted

        return Preempted(PREEMPTION.received or "a signal on another rank", trainer.current_epoch + 1,
                         trainer.global_step, str(self.checkpoint))

    def _evaluation_batch(self, trainer) -> None:
        # Within fit the next training batch stops. Under DDP an evaluation pass runs to its end: the ranks' shards
        # may differ by a batch (no padding: each image counted once), so no per-batch agreement is possible.
        if trainer.state.fn != "fit" and trainer.world_size == 1 and PREEMPTION.received is not None:
            raise self._preempted(trainer)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._evaluation_batch(trainer)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._evaluation_batch(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch or not self._stop_now(trainer):
            return
        trainer.save_checkpoint(self.checkpoint)  # atomic (AtomicCheckpointIO); every rank joins, rank 0 writes
        raise self._preempted(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # An epoch's first batch: a signal that came on the previous epoch's last batch (its checkpoint is written)
        # stops here. Any other batch runs first (its batch is already drawn from the loader) and stops at its end.
        if batch_idx == 0 and self._stop_now(trainer):
            raise self._preempted(trainer)
