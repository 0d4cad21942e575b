"""Datasets for LORE: a registry of declarations, a few generic readers, sampling and selection.

``build_dataset(name, split)`` returns a :class:`LabeledDataset` (PIL RGB image → transform,
int label; ``.classnames``, ``.targets``, ``.name``). Layouts, download places and how to add
a dataset: ``docs/datasets.md``.
"""
from lorevit.data.dataset import BadImageWarning, DatasetError, LabeledDataset, collate_skip_bad, collate_train_batch
from lorevit.data.names import clean_classname
from lorevit.data.registry import (
    FEW_SHOT_DATASETS,
    FULL_DATA_DATASETS,
    DatasetSpec,
    Download,
    Layout,
    build_dataset,
    default_root,
    get_spec,
    list_datasets,
    register,
    template_for,
)
from lorevit.data import benchmarks  # noqa: F401 - registers VTAB-1k, FGVC, CoOp's four, the ImageNet variants
from lorevit.data.sampling import few_shot_indices, subset_indices
from lorevit.data.selection import centroid_similarity, easy_indices, hard_indices, herding_order

__all__ = [
    "BadImageWarning",
    "DatasetError",
    "DatasetSpec",
    "Download",
    "FEW_SHOT_DATASETS",
    "FULL_DATA_DATASETS",
    "LabeledDataset",
    "Layout",
    "build_dataset",
    "centroid_similarity",
    "clean_classname",
    "collate_skip_bad",
    "collate_train_batch",
    "default_root",
    "easy_indices",
    "few_shot_indices",
    "get_spec",
    "hard_indices",
    "herding_order",
    "list_datasets",
    "register",
    "subset_indices",
    "template_for",
]
