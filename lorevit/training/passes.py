"""One-off passes over a loader outside Lightning's loop (predicted labels, features; sharded under DDP)."""
from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader

from lorevit.config import Config
from lorevit.model import PromptedClassifier
from lorevit.training.loaders import ShardSampler, uses_gpu


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
