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
    # The same weights and the same code; float32 matmuls still differ by an ulp or two between CPUs (AVX2 vs
    # AVX-512 kernels sum in different orders: 3.7e-9 measured), so "identical" is to 1e-6, far below any change in
    # the method or in how the adapter's tensors are read back (those move logits by > 1e-3).
    torch.testing.assert_close(logits, reference["logits"], rtol=0, atol=1e-6)
    assert model.method.options is not None and cfg.method_options == {}


def test_a_v0_1_0_adapter_saves_again_with_its_options(tmp_path):
    from lorevit.adapters.format import read_adapter, save_adapter

    model, cfg = lorevit.load_adapter(FIXTURES / "lore.safetensors")
    tensors, meta = read_adapter(save_adapter(model, cfg, tmp_path))
    old, _ = read_adapter(FIXTURES / "lore.safetensors")
    assert set(tensors) == set(old) and all(torch.equal(tensors[k], old[k]) for k in old)
    assert '"n_global": 8' in meta["method_options"]
