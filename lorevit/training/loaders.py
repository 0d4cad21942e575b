"""Loader parts: indexed datasets, the resumable seeded training order, DDP shards, worker counts and the eval
batch per device."""
from __future__ import annotations

import os
import random
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lorevit.config import Config


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


# eval_batch_size: auto (issue 24; docs/inference.md): on 2 CPU cores a ViT-S/14 at 112 px tests 22 % faster at 32
# images per batch than at 128 (smaller activations stay in cache); a GPU needs large batches to be kept busy.
AUTO_EVAL_BATCH = {"cpu": 32, "gpu": 128}


def eval_batch_size(cfg: Config) -> int:
    """The inference batch of the eval loaders: ``eval_batch_size``, or for ``auto`` (the default) the rule of
    :data:`AUTO_EVAL_BATCH` for the device the run uses (an explicit value always wins)."""
    if cfg.eval_batch_size != "auto":
        return int(cfg.eval_batch_size)
    return AUTO_EVAL_BATCH["gpu" if uses_gpu(cfg) else "cpu"]


def test_timing(cfg: Config, images: int, seconds: float) -> dict:
    """The test phase's timing for metrics.json: seconds, images/s and the inference batch it ran with."""
    return {"test_s": round(seconds, 2), "test_img_per_s": round(images / seconds, 2) if seconds > 0 and images else None,
            "eval_batch_size_used": eval_batch_size(cfg)}


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


def derived_seed(*parts: int) -> int:
    """A well-mixed 32-bit seed from several integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed torch, numpy and random from (seed, epoch): the epoch's augmentations."""
    derived = derived_seed(seed, epoch)
    torch.manual_seed(derived)
    np.random.seed(derived)
    random.seed(derived)
