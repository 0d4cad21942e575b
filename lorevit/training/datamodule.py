"""The run's data as a LightningDataModule: the few-shot (or full) train split, the test split, their transforms
and loaders."""
from __future__ import annotations

from typing import Sequence

import lightning as L
from torch.utils.data import DataLoader

from lorevit.config import Config
from lorevit.data import build_dataset, collate_skip_bad, collate_train_batch, few_shot_indices, subset_indices
from lorevit.data.sampling import validation_indices
from lorevit.data.transforms import image_transforms
from lorevit.training.loaders import EpochShuffle, Indexed, ResumableLoader, ShardSampler, eval_batch_size, \
    loader_workers


class ClassificationData(L.LightningDataModule):
    """Train split (few-shot, full or a given index list) and test split (all or a seeded subset)."""

    def __init__(self, cfg: Config, data_config: dict, train_indices: Sequence[int] | None = None):
        super().__init__()
        self.cfg = cfg
        self.train_transform = image_transforms(data_config, cfg.img_size, train=True, preset=cfg.transforms)
        self.test_transform = image_transforms(data_config, cfg.img_size, train=False, preset=cfg.transforms)
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
        batch_size = self.cfg.batch_size if train else eval_batch_size(self.cfg)
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
