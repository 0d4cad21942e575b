"""Adapters saved by lorevit 0.1.0 before the restructure (tests/fixtures/adapters_v0_1_0, written by
tests/fixtures/make_legacy_adapters.py with that release's code) load unchanged and give identical logits."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lorevit

FIXTURES = Path(__file__).parent / "fixtures" / "adapters_v0_1_0"
NAMES = ("lore", "lore-public", "lore-no-kp", "vpt-deep", "vpt-shallow", "linear")


@pytest.mark.parametrize("name", NAMES)
def test_a_v0_1_0_adapter_loads_with_identical_logits(name):
    model, cfg = lorevit.load_adapter(FIXTURES / f"{name}.safetensors")
    reference = load_file(str(FIXTURES / f"{name}.logits.safetensors"))
    with torch.no_grad():
        logits = model(reference["images"]).logits
    assert torch.equal(logits, reference["logits"]), (logits - reference["logits"]).abs().max()
    assert model.method.options is not None and cfg.method_options == {}


def test_a_v0_1_0_adapter_saves_again_with_its_options(tmp_path):
    from lorevit.adapters.format import read_adapter, save_adapter

    model, cfg = lorevit.load_adapter(FIXTURES / "lore.safetensors")
    tensors, meta = read_adapter(save_adapter(model, cfg, tmp_path))
    old, _ = read_adapter(FIXTURES / "lore.safetensors")
    assert set(tensors) == set(old) and all(torch.equal(tensors[k], old[k]) for k in old)
    assert '"n_global": 8' in meta["method_options"]
