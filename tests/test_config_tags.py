"""The Config describes itself (issue 18 §2): every field tagged, the key lists derived from the tags equal the
hand-kept lists they replaced, `lorevit train --help` shows each key's help and default."""
from __future__ import annotations

import dataclasses

from lorevit import config
from lorevit.cli import build_parser
from lorevit.config import Config

# The lists as they were written by hand before the tags (main 0030628): model.ARCH_KEYS, run.RESUME_FREE_KEYS,
# report.IGNORED_KEYS, hub._RUN_ONLY — plus the keys added since (max_steps may grow like epochs: the recipes).
BEFORE = {
    "ARCH_KEYS": ("n_global", "n_local", "vpt_prompts", "bottleneck", "knn", "top_n", "white_box", "head",
                  "text_template"),
    "RESUME_FREE_KEYS": ("resume", "overwrite", "progress", "num_workers", "eval_batch_size", "output", "epochs",
                         "logger", "checkpoint_every_n_steps", "max_steps"),
    "REPORT_IGNORED_KEYS": ("seed", "output", "progress", "num_workers", "logger", "resume", "overwrite",
                            "eval_batch_size", "checkpoint_every_n_steps"),
    "RUN_ONLY_KEYS": ("output", "data_root", "download", "num_workers", "precision", "accelerator", "devices",
                      "strategy", "num_nodes", "resume", "overwrite", "progress", "logger", "checkpoint_every_n_steps",
                      "eval_batch_size"),
}


def test_every_field_is_tagged():
    for f in dataclasses.fields(Config):
        assert f.metadata["section"] in config.SECTIONS, f.name
        assert f.metadata["help"], f.name
        assert isinstance(f.metadata["result"], bool), f.name


def test_derived_key_lists_equal_the_hand_kept_ones():
    for name, before in BEFORE.items():
        derived = getattr(config, name)
        assert sorted(derived) == sorted(before), name
        assert len(derived) == len(set(derived)), name
    from lorevit.tools.report import IGNORED_KEYS
    from lorevit.training.run import RESUME_FREE_KEYS

    assert IGNORED_KEYS == config.REPORT_IGNORED_KEYS and RESUME_FREE_KEYS == config.RESUME_FREE_KEYS


def test_train_help_shows_each_keys_help_and_default(capsys):
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    text = train.format_help()
    for f in dataclasses.fields(Config):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
    assert "global prompts per block (default: 8)" in " ".join(text.split())
    assert "config keys: machine" in text


def test_one_torch_free_list_of_method_names():
    import lorevit.methods as methods

    assert list(methods.METHODS)[: len(config.METHOD_NAMES)] == list(config.METHOD_NAMES)
    assert config.method_names()[: len(config.METHOD_NAMES)] == config.METHOD_NAMES
