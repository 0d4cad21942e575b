"""How every method is trained: one LightningModule and one DataModule (spec "Hyper-parameters").

SGD (momentum 0.9, weight decay 1e-3) over the trainable parameters only, cosine annealing from
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
from .data import build_dataset, collate_skip_bad, few_shot_indices, subset_indices
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

    def __getitem__(self, i: int):
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
    from an epoch's checkpoint sees the same order as one that never stopped. ``set_epoch`` also seeds the
    global RNGs that the augmentations draw from, for the same reason. (Under DDP Lightning shards this
    order with its own distributed sampler.)
    """

    def __init__(self, data, seed: int):
        self.size, self.seed, self.epoch = len(data), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        seed_epoch(self.seed, epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch, 1))  # 1: the order's own stream
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


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
        return DataLoader(indexed, batch_size=batch_size, sampler=sampler,
                          drop_last=False, num_workers=workers, collate_fn=collate_skip_bad,
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

    def training_step(self, batch, batch_idx):
        if batch is None:  # every image of the batch was unreadable and skipped (bad_images: skip)
            return None
        images, labels, index = batch
        out = self.model(images)
        predicted = self.negatives[index.cpu()].to(labels.device) if self.negatives is not None else None
        parts = self.model.loss(out, labels, predicted, self.cfg.kp_weight)
        accuracy = (out.logits.argmax(-1) == labels).float().mean() * 100
        B = labels.shape[0]
        self.log("train_loss", parts["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=B, sync_dist=True)
        self.log("train_acc", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=B, sync_dist=True)
        for name in ("task", "kp"):
            if name in parts:
                self.log(f"train_{name}", parts[name], on_step=False, on_epoch=True, batch_size=B, sync_dist=True)
        return parts["loss"]

    def on_train_epoch_start(self) -> None:
        # Lightning keeps each module's mode as found; a selection pass or an earlier stage may have
        # left the White Box in eval (KLA's BatchNorm frozen, Ê not kept). The ViT stays in eval.
        self.model.train()
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        metrics = self.trainer.callback_metrics
        row = {"epoch": self.current_epoch + 1, "seconds": round(time.perf_counter() - self._epoch_start, 2),
               "lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
        for key in ("train_loss_epoch", "train_acc", "train_task", "train_kp", "val_top1"):
            if key in metrics:
                row[key.removesuffix("_epoch")] = float(metrics[key])
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
