"""How every method is trained: one LightningModule and one DataModule (spec "Hyper-parameters").

SGD (momentum 0.9, the config's weight decay) over the trainable parameters only, cosine annealing from
``lr`` to ``lr_min`` over all steps (with ``white_box: public`` over the epochs, stepped once per
epoch, as the public code), L = L_task + λ L_kp. The frozen ViT runs once per step.
Checkpoints hold only the trainable state (the frozen ViT is rebuilt from its weights), so a
ViT-B run's checkpoint is a few MB, not 350.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import random
import time
from typing import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision import transforms as T

from .config import Config
from .data import build_dataset, collate_skip_bad, collate_train_batch, few_shot_indices, subset_indices
from .data.sampling import validation_indices
from .model import PromptedClassifier

log = logging.getLogger(__name__)


def image_transforms(data_config: dict, img_size: int, train: bool) -> T.Compose:
    """Resize to the run's size and normalise as the backbone was pre-trained (CLIP or ImageNet)."""
    normalize = [T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])]
    if train:
        return T.Compose([T.RandomResizedCrop(img_size, scale=(0.8, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                          T.RandomHorizontalFlip(), *normalize])
    return T.Compose([T.Resize(img_size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(img_size),
                      *normalize])


class Indexed(Dataset):
    """(image, label, index in the underlying dataset): lets a step look up per-image labels p."""

    def __init__(self, dataset, indices: Sequence[int] | None = None):
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, tuple):  # (position, augmentation seed) from EpochShuffle: the image's own random stream
            i, seed = i
            with torch.random.fork_rng(devices=[]):  # leaves the process's global RNG as it was
                torch.manual_seed(seed)
                return self[i]
        index = self.indices[i]
        item = self.dataset[index]
        return None if item is None else (*item, index)


def uses_gpu(cfg: Config) -> bool:
    return cfg.accelerator in ("gpu", "cuda") or (cfg.accelerator == "auto" and torch.cuda.is_available())


def loader_workers(cfg: Config) -> tuple[int, bool]:
    """(worker processes, pin memory) of the data loaders.

    ``num_workers: null`` (the default) picks for the machine: with a GPU, decoding and augmentation
    must keep up with it, so up to 8 workers (one core left to the main process) and pinned memory; on
    the CPU the main process's compute already uses every core and workers would only compete with it,
    so 0 (``lorevit bench data`` measures the loader against a training step).
    """
    gpu = uses_gpu(cfg)
    if cfg.num_workers is not None:
        return cfg.num_workers, gpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return (min(8, max(1, cores - 1)) if gpu else 0), gpu


class EpochShuffle(torch.utils.data.Sampler):
    """The training order of epoch e: a permutation drawn from (seed, e) alone, never from the global RNG.

    Lightning calls ``set_epoch`` before every epoch (also the first one after a resume), so a run resumed
    from a checkpoint sees the same order as one that never stopped. Each item is ``(position, augmentation
    seed)``: the seed is drawn per image from (seed, e) too, and :class:`Indexed` seeds the image's
    transforms with it, so an image's augmentation in epoch e depends on nothing else — not on the images
    before it (a run resumed mid-epoch), nor on the DataLoader workers or the number of ranks. ``set_epoch``
    also seeds the global RNGs from (seed, e). (Under DDP Lightning shards this order with its own
    distributed sampler.)
    """

    def __init__(self, data, seed: int):
        self.size, self.seed, self.epoch = len(data), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        seed_epoch(self.seed, epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch, 1))  # 1: the order's own stream
        order = torch.randperm(self.size, generator=generator).tolist()
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch, 2))  # 2: the augmentations'
        seeds = torch.randint(0, 2**62, (self.size,), generator=generator).tolist()  # one per position, not per turn
        return ((i, seeds[i]) for i in order)

    def __len__(self) -> int:
        return self.size


class ResumableLoader(DataLoader):
    """The training DataLoader, resumable in the middle of an epoch (config key ``checkpoint_every_n_steps``).

    Its ``state_dict`` / ``load_state_dict`` make it a "stateful" loader for Lightning, which stores the state
    in every checkpoint and hands it back when a run restarts mid-epoch: (epoch, batches handed out). The
    restarted epoch then draws the same order (the sampler's ``set_epoch``) and leaves out the batches already
    trained on, without reading them: only their indices are drawn. Under DDP the batches are counted on
    each rank's own shard, which all ranks step through together.
    """

    _skip = 0  # batches at the start of the next iteration to leave out (a mid-epoch restart)
    _position = (0, 0)  # (epoch, batches handed out in it)

    @property
    def _index_sampler(self):
        return _SkipFirst(super()._index_sampler, self)

    def __iter__(self):
        epoch, done = getattr(self.sampler, "epoch", 0), self._skip  # read at the first batch: after set_epoch
        for batch in super().__iter__():
            done += 1
            self._position = (epoch, done)
            yield batch

    def state_dict(self) -> dict:
        epoch, done = self._position
        return {"epoch": epoch, "batches": done}

    def load_state_dict(self, state: dict) -> None:
        epoch, done = int(state["epoch"]), int(state["batches"])
        finished = done >= len(self)
        self._skip = 0 if finished else done
        self._position = (epoch, done)
        if hasattr(self.sampler, "set_epoch"):  # before any worker draws indices, so they draw this epoch's order
            self.sampler.set_epoch(epoch + 1 if finished else epoch)


class _SkipFirst:
    """A batch sampler without its first ``loader._skip`` batches (consumed once: the restarted epoch only)."""

    def __init__(self, batches, loader: ResumableLoader):
        self.batches, self.loader = batches, loader

    def __iter__(self):  # a generator: the skip is taken at the first batch drawn (a DataLoader may call iter twice)
        skip, self.loader._skip = self.loader._skip, 0
        batches = iter(self.batches)
        for _ in range(skip):
            next(batches, None)
        yield from batches

    def __len__(self) -> int:
        return len(self.batches)  # the whole epoch: Lightning counts the restored batches as already fetched


class ShardSampler(DistributedSampler):
    """Evaluation under DDP: rank r reads items r, r + W, r + 2W, ... — every image exactly once.

    torch's DistributedSampler pads the last shard with repeated images so all ranks get equal
    counts, which would count some test images twice; this one does not pad (ranks may differ by one
    item, which evaluation allows). Lightning keeps a DistributedSampler it is given.
    """

    def __init__(self, dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)

    @classmethod
    def if_distributed(cls, dataset) -> "ShardSampler | None":
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return None
        world = torch.distributed.get_world_size()
        return cls(dataset, world, torch.distributed.get_rank()) if world > 1 else None

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


class ClassificationData(L.LightningDataModule):
    """Train split (few-shot, full or a given index list) and test split (all or a seeded subset)."""

    def __init__(self, cfg: Config, data_config: dict, train_indices: Sequence[int] | None = None):
        super().__init__()
        self.cfg = cfg
        self.train_transform = image_transforms(data_config, cfg.img_size, train=True)
        self.test_transform = image_transforms(data_config, cfg.img_size, train=False)
        kwargs = dict(root=cfg.data_root, download=cfg.download, bad_images=cfg.bad_images,
                      test_fraction=cfg.test_fraction)
        self.train_set = build_dataset(cfg.dataset, "train", transform=self.train_transform, **kwargs)
        self.test_set = build_dataset(cfg.dataset, "test", transform=self.test_transform, **kwargs)
        if self.train_set.classnames != self.test_set.classnames:
            raise ValueError(f"{cfg.dataset}: train and test splits disagree on the class list")
        self.classnames = list(self.train_set.classnames)
        self.val_indices = self._validation_split()
        if train_indices is None:
            train_indices = few_shot_indices(self.train_set.targets, cfg.shots, cfg.seed, self.classnames,
                                             cfg.allow_fewer_shots) \
                if cfg.protocol != "full" else self.unreserved_train_indices()
        self.train_indices = list(train_indices)
        self.test_indices = subset_indices(len(self.test_set), cfg.test_subset, cfg.test_seed) \
            if cfg.test_subset else list(range(len(self.test_set)))

    def _validation_split(self) -> list[int]:
        """Train-split images held out for validation (issue 11 §5): disjoint from the training shots and from the
        easy-to-hard pool, seeded by ``seed``, at most ``val_subset`` of them (stratified)."""
        cfg, targets = self.cfg, self.train_set.targets
        if not cfg.validation_shots:
            return []
        reserved = {"few-shot": cfg.shots, "easy-to-hard": cfg.selection_pool or 0}.get(cfg.protocol, 0)
        val = validation_indices(targets, cfg.validation_shots, cfg.seed, reserved)
        keep = subset_indices(len(val), cfg.val_subset, cfg.seed, targets=[targets[i] for i in val])
        return [val[i] for i in keep]

    def unreserved_train_indices(self) -> list[int]:
        """The whole train split less the validation images: the full protocol's training set."""
        held_out = set(self.val_indices)
        return [i for i in range(len(self.train_set)) if i not in held_out]

    def loader(self, dataset, indices, train: bool, transform=None) -> DataLoader:
        if transform is not None:  # e.g. feature extraction from the train split without augmentation
            dataset = build_dataset(self.cfg.dataset, "train", root=self.cfg.data_root, transform=transform,
                                    bad_images=self.cfg.bad_images, test_fraction=self.cfg.test_fraction)
        batch_size = self.cfg.batch_size if train else self.cfg.eval_batch_size
        indexed = Indexed(dataset, indices)
        sampler = EpochShuffle(indexed, self.cfg.seed) if train else ShardSampler.if_distributed(indexed)
        workers, pin = loader_workers(self.cfg)
        Loader, collate = (ResumableLoader, collate_train_batch) if train else (DataLoader, collate_skip_bad)
        return Loader(indexed, batch_size=batch_size, sampler=sampler,
                      drop_last=False, num_workers=workers, collate_fn=collate,
                      persistent_workers=workers > 0, pin_memory=pin)

    def val_dataloader(self) -> DataLoader:
        """The validation split (train images, test transform): checked every ``val_every`` epochs and at the end."""
        return self.plain_train_dataloader(self.val_indices)

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.train_set, self.train_indices, train=True)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.test_set, self.test_indices, train=False)

    def plain_train_dataloader(self, indices: Sequence[int] | None = None) -> DataLoader:
        """Train images with the test transform (no augmentation), for features and predictions."""
        return self.loader(None, self.train_indices if indices is None else indices, train=False,
                           transform=self.test_transform)


def derived_seed(*parts: int) -> int:
    """A well-mixed 32-bit seed from several integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed torch, numpy and random from (seed, epoch): the epoch's augmentations."""
    derived = derived_seed(seed, epoch)
    torch.manual_seed(derived)
    np.random.seed(derived)
    random.seed(derived)


def cosine_factor(step: int, total: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from ``lr`` to ``lr_min`` over ``total`` steps, as a multiplier of ``lr`` (closed form).

    A closed form of the step (not the recursive form of ``CosineAnnealingLR``): a run resumed with more
    epochs continues on the cosine of its new length instead of climbing back up past the old one.
    """
    progress = min(step, total) / total
    return (lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))) / lr


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
        return parts["loss"]

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
        row = {"epoch": self.current_epoch + 1, "seconds": round(time.perf_counter() - self._epoch_start, 2),
               "lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
        means = self._epoch_means()
        for key in ("train_loss", "train_acc", "train_task", "train_kp"):  # those the method's loss has
            if key in means and (key in metrics or f"{key}_epoch" in metrics):
                row[key] = means[key]
        if "val_top1" in metrics:
            row["val_top1"] = float(metrics["val_top1"])
        if "train_skipped" in means:
            row["train_skipped"] = means["train_skipped"]
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
        optimizer = torch.optim.SGD(self.model.trainable_parameters(), lr=self.lr, momentum=self.cfg.momentum,
                                    weight_decay=self.cfg.weight_decay)
        # white_box: public follows the public code's schedule, stepped once per epoch; the paper's is per step.
        interval = "epoch" if self.cfg.white_box == "public" else "step"
        steps = max(1, int(self.trainer.max_epochs if interval == "epoch" else self.trainer.estimated_stepping_batches))
        factor = functools.partial(cosine_factor, total=steps, lr=self.lr, lr_min=self.lr_min)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": interval}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("model.backbone.")]:
            del state[key]
        checkpoint["history"] = self.history
        sums = self._sums
        if self.trainer.world_size > 1:  # one checkpoint for all ranks: each rank restarts from an equal share
            sums = self.trainer.strategy.reduce(sums.to(self.device, copy=True), reduce_op="sum")
            sums = sums / self.trainer.world_size
        checkpoint["epoch_sums"] = sums.tolist()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """The checkpoint must hold exactly the trainable state of the model built now (the ViT is left out)."""
        expected = {k for k in self.state_dict() if not k.startswith("model.backbone.")}
        found = set(checkpoint["state_dict"])
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        if missing or unexpected:
            from .run import RunError

            raise RunError(f"the checkpoint does not fit the model built from this config: missing {missing[:5]}"
                           f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                           f"{' ...' if len(unexpected) > 5 else ''}; resume with the run's own config")
        self.history = checkpoint.get("history", [])
        self._sums = torch.tensor(checkpoint.get("epoch_sums", [0.0] * len(EPOCH_SUMS)), dtype=torch.float64)


@torch.no_grad()
def predict_loader(model: PromptedClassifier, loader: DataLoader, features: bool = False):
    """Predicted labels (and pooled features) over a loader, in loader order, with their indices."""
    model.eval()
    preds, feats, indices = [], [], []
    for batch in loader:
        if batch is None:
            continue
        images, _, index = batch
        out = model(images)
        preds.append(out.logits.argmax(-1))
        indices.append(index)
        if features:
            feats.append(out.features)
    result = torch.cat(preds), torch.cat(indices)
    return (*result, torch.cat(feats)) if features else result


def pass_device(cfg: Config) -> torch.device:
    """The device Lightning trains ``cfg`` on in this process, for the one-off passes before or between trainings."""
    if uses_gpu(cfg):
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        return torch.device("cuda", torch.cuda.current_device() if dist else int(os.environ.get("LOCAL_RANK", 0)))
    if cfg.accelerator == "mps" or (cfg.accelerator == "auto" and torch.backends.mps.is_available()):
        return torch.device("mps")
    return torch.device("cpu")


@torch.no_grad()
def one_off_pass(module: torch.nn.Module, fn, loader: DataLoader, device: torch.device):
    """``fn(images)`` (a tensor or a tuple of tensors per batch) over every image of ``loader`` once, with
    ``module`` in eval mode on ``device``; returns ``(indices, outputs)`` in the loader's dataset order.

    The passes that run once per run (CLIP zero-shot labels, easy-to-hard selection features) use it with the
    eval loaders (``eval_batch_size``, the loader workers). Under DDP each rank runs its own shard of the images
    (:class:`ShardSampler`) and the shards are gathered, so every rank returns the same, whole result.
    Images skipped as unreadable (``bad_images: skip``) are missing from it. ``module`` goes back to its
    device and mode afterwards.
    """
    first = next(module.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    modes = {sub: sub.training for sub in module.modules()}
    module.to(device).eval()
    indices, outputs = [], []
    try:
        for batch in loader:
            if batch is None:
                continue
            images, _, index = batch
            out = fn(images.to(device, non_blocking=True))
            outputs.append(tuple(o.cpu() for o in (out if isinstance(out, tuple) else (out,))))
            indices.append(index)
    finally:
        module.to(home)
        for sub, mode in modes.items():
            sub.training = mode
    index = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long)
    columns = [torch.cat(column) for column in zip(*outputs)]
    if isinstance(loader.sampler, ShardSampler):  # gather the ranks' shards, back in the dataset's order
        shards = [None] * loader.sampler.num_replicas
        torch.distributed.all_gather_object(shards, (index, columns))
        index = torch.cat([shard[0] for shard in shards])
        width = max(len(shard[1]) for shard in shards)  # (a rank whose shard was all unreadable has none)
        columns = [torch.cat([shard[1][c] for shard in shards if shard[1]]) for c in range(width)]
        position = {i: p for p, i in enumerate(loader.dataset.indices)}
        order = torch.tensor([position[i] for i in index.tolist()], dtype=torch.long).argsort()
        index, columns = index[order], [column[order] for column in columns]
    return index, columns
