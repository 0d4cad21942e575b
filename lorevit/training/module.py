"""How every method is trained: one LightningModule and one DataModule (spec "Hyper-parameters").

SGD (momentum 0.9, the config's weight decay) or AdamW over the trainable parameters only, an optional
warm-up, then cosine annealing from ``lr`` to ``lr_min`` over all steps (with ``white_box: public`` over the
epochs, stepped once per epoch, as the public code; ``schedule_interval`` chooses), L = L_task + λ L_kp. The frozen ViT runs once per step.
Checkpoints hold only the trained state (``model.trained_state_dict()``: the frozen ViT is rebuilt from its
weights), so a ViT-B run's checkpoint is a few MB, not 350.
"""
from __future__ import annotations

import functools
import logging
import math
import time

import lightning as L
import torch

from lorevit.config import Config
from lorevit.errors import RunError
from lorevit.model import PromptedClassifier

log = logging.getLogger(__name__)


def cosine_factor(step: int, total: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from ``lr`` to ``lr_min`` over ``total`` steps, as a multiplier of ``lr`` (closed form).

    A closed form of the step (not the recursive form of ``CosineAnnealingLR``): a run resumed with more
    epochs continues on the cosine of its new length instead of climbing back up past the old one.
    """
    progress = min(step, total) / total
    return (lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))) / lr


def lr_factor(step: int, total: int, lr: float, lr_min: float, warmup: int = 0, warmup_lr: float = 0.0,
              shape: str = "linear") -> float:
    """The one learning-rate schedule of every method and recipe, as a multiplier of ``lr`` (closed form in the
    step or epoch ``step`` of ``total``): ``warmup`` steps of warm-up, then :func:`cosine_factor`.

    - ``shape="linear"`` — timm's ``CosineLRScheduler`` with ``warmup_prefix=False`` (the VTAB recipes: NOAH,
      V-PETL): the lr rises linearly from ``warmup_lr`` at step 0 towards ``lr`` at step ``warmup``; from then on
      it is the cosine of the whole run at ``step`` (the warm-up covers the cosine's first steps).
    - ``shape="constant"`` — Dassl's ``ConstantWarmupScheduler`` with ``WARMUP_RECOUNT`` (the CoOp family,
      BASELINES_CLIP §0): ``warmup_lr`` for the first ``warmup`` epochs, then the cosine restarted at 0 with the
      whole run's length: epoch e ≥ w gets ``lr_min + (lr − lr_min)(1 + cos(π(e − w)/T))/2``, T = ``total`` (so
      the last epoch never reaches ``lr_min``, as in Dassl).
    """
    if step < warmup:
        if shape == "constant":
            return warmup_lr / lr
        return (warmup_lr + (lr - warmup_lr) * step / warmup) / lr
    return cosine_factor(step - warmup if shape == "constant" else step, total, lr, lr_min)


def build_optimizer(parameters, cfg: Config, lr: float) -> torch.optim.Optimizer:
    """``optimizer: sgd`` (momentum, dampening 0, no Nesterov) or ``adamw`` (torch's betas and eps), both with
    the config's weight decay over the trainable parameters."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def restore_loader_state(trainer: L.Trainer) -> None:
    """Hand the checkpoint's training-loader state (:class:`ResumableLoader`) to the loader, then start it again.

    Lightning 2.6 loads a stateful loader's state only when it sets the loader up after restoring the
    checkpoint, but ``estimated_stepping_batches`` (the cosine's length, ``configure_optimizers``) has set it
    up before: without this the restarted epoch would start from its first batch again. Starting the
    iterator again also lets DataLoader workers (which draw indices as soon as it starts) draw the restored
    epoch's order.
    """
    loop = trainer.fit_loop
    if getattr(loop, "_combined_loader_states_to_load", None) and loop._combined_loader is not None:
        loop._combined_loader._load_state_dicts(loop._combined_loader_states_to_load)
        loop._combined_loader_states_to_load = []
        iter(loop._data_fetcher)


EPOCH_SUMS = ("loss", "correct", "images", "task", "kp", "skipped")  # LitClassifier's per-epoch sums


def derived_buffer_names(module: torch.nn.Module) -> list[str]:
    """Qualified names of ``module``'s non-persistent buffers (``register_buffer(..., persistent=False)``)."""
    return [f"{prefix}.{name}" if prefix else name for prefix, sub in module.named_modules()
            for name in sub._non_persistent_buffers_set if name in sub._buffers]


class LitClassifier(L.LightningModule):
    def __init__(self, model: PromptedClassifier, cfg: Config, negatives: torch.Tensor | None = None,
                 lr: float | None = None, lr_min: float | None = None):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.lr = cfg.lr if lr is None else lr
        self.lr_min = cfg.lr_min if lr_min is None else lr_min
        # p of Eq. 10 per training index (CLIP zero-shot), else the model's own prediction.
        # A plain CPU tensor, not a buffer: DDP would broadcast a buffer from rank 0 at every step; rows are
        # looked up per batch and moved to the batch's device (B labels).
        self.negatives = None if negatives is None else negatives.cpu()
        self.strict_loading = False  # checkpoints leave the frozen ViT out
        self.history: list[dict] = []
        self._epoch_start = time.perf_counter()
        self._counts: dict[str, torch.Tensor] = {}  # prefix → (correct top-1, correct top-5, images)
        # This epoch's sums on this rank, kept in the checkpoints (a run resumed mid-epoch still averages the
        # whole epoch; Lightning's own epoch aggregates start again from the restart).
        self._sums = torch.zeros(len(EPOCH_SUMS), dtype=torch.float64)
        self.nonfinite_skipped = 0  # steps left out by on_nonfinite: skip (this process; the ranks agree)
        # DDP broadcasts every buffer from rank 0 at every step. A non-persistent buffer is never saved: it is rebuilt
        # from the class names and frozen weights (a text-side method's prompt embeddings, class tokens, teacher or
        # zero-shot text features, BASELINES_CLIP §0), the same on every rank — CoCoOp's prompt suffix alone is
        # C × 72 × 512 floats (147 MB at 1,000 classes on ViT-B/16). DDP leaves those out.
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            self, derived_buffer_names(self))

    def training_step(self, batch, batch_idx):
        images, labels, index, skipped = batch
        B = labels.shape[0]
        if B == 0:  # every image unreadable (bad_images: skip): a zero-weight step on one blank image, so that
            # this rank still joins DDP's gradient all-reduce (and the logging's) and no rank waits for it
            images = images.new_zeros(1, 3, self.cfg.img_size, self.cfg.img_size)
            labels = index = labels.new_zeros(1)
        out = self.model(images)
        predicted = self.negatives[index.cpu()].to(labels.device) if self.negatives is not None else None
        parts = self.model.loss(out, labels, predicted, self.cfg.kp_weight)
        if B == 0:
            parts = {name: value * 0.0 for name, value in parts.items()}
        correct = (out.logits.argmax(-1) == labels).sum() if B else labels.new_zeros(())
        accuracy = correct.float() / max(B, 1) * 100
        self._add_to_epoch(parts, correct, B, skipped)
        self.log("train_loss", parts["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=B, sync_dist=True)
        self.log("train_acc", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=B, sync_dist=True)
        for name in ("task", "kp"):
            if name in parts:
                self.log(f"train_{name}", parts[name], on_step=False, on_epoch=True, batch_size=B, sync_dist=True)
        self._step_loss = parts["loss"].detach()
        return parts["loss"]

    def on_before_optimizer_step(self, optimizer) -> None:
        """Non-finite loss or gradients (issue 25 §2), checked after DDP's all-reduce (so every rank agrees) and
        before the optimiser moves anything: ``on_nonfinite: stop`` raises :class:`lorevit.errors.Diverged`;
        ``skip`` drops the step's gradients (the optimisers skip a parameter without one) and counts it. Under
        16-mixed the GradScaler skips overflowing steps itself; only the loss is checked there."""
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]  # trainable
        scaled = str(self.cfg.precision).startswith("16") and "mixed" in str(self.cfg.precision)
        checks = [self._step_loss.float().reshape(1)]
        if params and not scaled:
            checks.append(torch.stack(torch._foreach_norm([p.grad for p in params])).float())
        if bool(torch.isfinite(torch.cat(checks)).all()):  # one sync per step
            return
        if self.cfg.on_nonfinite == "skip":
            for p in params:
                p.grad = None
            self.nonfinite_skipped += 1
            return
        from lorevit.errors import Diverged

        what = "loss" if not torch.isfinite(self._step_loss).all() else "gradients"
        ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or None
        raise Diverged(what, self.current_epoch + 1, int(self.global_step) + 1, optimizer.param_groups[0]["lr"],
                       str(self.cfg.precision), ckpt)

    def _add_to_epoch(self, parts: dict, correct: torch.Tensor, B: int, skipped: torch.Tensor) -> None:
        device = parts["loss"].device  # summed where the step runs: no device-to-host copy per step
        dtype = torch.float32 if device.type == "mps" else torch.float64
        values = [parts["loss"] * B, correct, B, parts.get("task", 0.0) * B, parts.get("kp", 0.0) * B, skipped]
        self._sums = self._sums.to(device, dtype) + torch.stack([torch.as_tensor(v, device=device).detach().to(dtype)
                                                                 for v in values])

    def _epoch_means(self) -> dict:
        """The epoch's training means over every rank's images (plus the images skipped as unreadable)."""
        sums = self.trainer.strategy.reduce(self._sums.to(self.device, copy=True), reduce_op="sum").cpu().double()
        loss, correct, images, task, kp, skipped = sums.tolist()
        means = {"train_loss": loss / images, "train_acc": correct / images * 100} if images else {}
        means.update({"train_task": task / images, "train_kp": kp / images} if images else {})
        if self.cfg.bad_images == "skip":
            means["train_skipped"] = int(skipped)
        return means

    def on_train_start(self) -> None:
        self.model.train()  # also for a run restarted mid-epoch, where Lightning calls no on_train_epoch_start
        restore_loader_state(self.trainer)

    def on_train_epoch_start(self) -> None:
        # Lightning keeps each module's mode as found; a selection pass or an earlier stage may have
        # left the White Box in eval (KLA's BatchNorm frozen, Ê not kept). The ViT stays in eval.
        self.model.train()
        self._epoch_start = time.perf_counter()
        self._sums.zero_()

    def on_train_epoch_end(self) -> None:
        metrics = self.trainer.callback_metrics
        row = {"epoch": self.current_epoch + 1, "step": int(self.global_step), "seconds": round(time.perf_counter() - self._epoch_start, 2),
               "lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
        means = self._epoch_means()
        for key in ("train_loss", "train_acc", "train_task", "train_kp"):  # those the method's loss has
            if key in means and (key in metrics or f"{key}_epoch" in metrics):
                row[key] = means[key]
        if "val_top1" in metrics:
            row["val_top1"] = float(metrics["val_top1"])
        if "train_skipped" in means:
            row["train_skipped"] = means["train_skipped"]
        if self.cfg.on_nonfinite == "skip":
            row["nonfinite_skipped"] = self.nonfinite_skipped  # so far in the run
        self.history.append(row)

    def _evaluate(self, batch, prefix: str) -> None:
        """Count correct top-1 / top-5 predictions; the epoch end turns the summed counts into accuracies."""
        if batch is None:
            return
        images, labels, _ = batch
        logits = self.model(images).logits
        ranked = logits.topk(min(5, logits.shape[1]), dim=-1).indices
        counts = torch.stack([(ranked[:, 0] == labels).sum(), (ranked == labels[:, None]).any(-1).sum(),
                              torch.tensor(labels.shape[0], device=labels.device)]).double()
        self._counts[prefix] = self._counts.get(prefix, 0) + counts

    def _log_accuracy(self, prefix: str, top5: bool = True) -> None:
        """Exact accuracy over every image once: counts summed over ranks (each rank saw a disjoint shard)."""
        counts = self._counts.pop(prefix, None)
        if counts is None:
            counts = torch.zeros(3, dtype=torch.float64, device=self.device)
        counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        total = counts[2].clamp_min(1)
        self.log(f"{prefix}_top1", counts[0] / total * 100, rank_zero_only=True)
        self.log(f"{prefix}_images", counts[2], rank_zero_only=True)  # evaluated: without the unreadable ones
        if top5:
            self.log(f"{prefix}_top5", counts[1] / total * 100, rank_zero_only=True)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_accuracy("val", top5=False)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_accuracy("test")

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model.trainable_parameters(), self.cfg, self.lr)
        # white_box: public follows the public code's schedule, stepped once per epoch; the paper's is per step.
        interval = self.cfg.interval
        epochs = max(1, self.trainer.max_epochs or 1)  # -1 with max_steps: one "epoch" of all the steps
        steps = max(1, int(epochs if interval == "epoch" else self.trainer.estimated_stepping_batches))
        per_epoch = 1 if interval == "epoch" else steps / epochs
        warmup = int(round(self.cfg.warmup_epochs * per_epoch))
        factor = functools.partial(lr_factor, total=steps, lr=self.lr, lr_min=self.lr_min, warmup=warmup,
                                   warmup_lr=self.cfg.warmup_lr, shape=self.cfg.warmup)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": interval}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        trained = {f"model.{k}" for k in self.model.trained_state_dict()}
        state = checkpoint["state_dict"]
        for key in [k for k in state if k not in trained]:  # the frozen ViT (and second names of shared modules)
            del state[key]
        checkpoint["history"] = self.history
        sums = self._sums
        if self.trainer.world_size > 1:  # one checkpoint for all ranks: each rank restarts from an equal share
            sums = self.trainer.strategy.reduce(sums.to(self.device, copy=True), reduce_op="sum")
            sums = sums / self.trainer.world_size
        checkpoint["epoch_sums"] = sums.tolist()
        checkpoint["nonfinite_skipped"] = self.nonfinite_skipped

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """The checkpoint must hold exactly the trainable state of the model built now (the ViT is left out)."""
        expected = {f"model.{k}" for k in self.model.trained_state_dict()}
        found = set(checkpoint["state_dict"])
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        if missing or unexpected:
            raise RunError(f"the checkpoint does not fit the model built from this config: missing {missing[:5]}"
                           f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                           f"{' ...' if len(unexpected) > 5 else ''}; resume with the run's own config")
        self.history = checkpoint.get("history", [])
        self._sums = torch.tensor(checkpoint.get("epoch_sums", [0.0] * len(EPOCH_SUMS)), dtype=torch.float64)
        self.nonfinite_skipped = checkpoint.get("nonfinite_skipped", 0)


