"""``lorevit export --merge`` (issue 19 §1): lora / ssf / bitfit folded into the ViT's weights, written as a plain
timm ViT (``--format timm``, loaded back by ``timm.create_model(..., pretrained_cfg_overlay=dict(file=...))``) or as
the merged ONNX graph; methods that cannot merge and bad outputs are one error line with nothing written."""
from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors import safe_open

import lorevit
from lorevit.cli import main

from .conftest import TINY_SIZE
from .test_method_interface import _train_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short CLI run per method, on generated colour images (tiny random ViT)."""
    from .conftest import write_color_folder

    root = tmp_path_factory.mktemp("merge")
    data = write_color_folder(root / "colors", per_class=(4, 2))
    runs = {}
    for method, options in (("lora", {}), ("lora-qv", {"targets": "qv"}), ("ssf", {}), ("bitfit", {}),
                            ("adaptformer", {})):
        name = method.split("-")[0]
        runs[method] = _train_cli(root / method, data, name, "--lr", "0.05", "--method-options", json.dumps(options))
    return runs


def _images():
    return torch.randn(3, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("run", ["lora", "lora-qv", "ssf", "bitfit"])
def test_merge_format_timm_loads_back_into_plain_timm_with_identical_logits(trained, run, tmp_path, capsys):
    out = tmp_path / "merged.safetensors"
    assert main(["export", "--adapter", str(trained[run]), "--merge", "--format", "timm", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "timm.create_model(" in printed and "pretrained_cfg_overlay" in printed
    report = json.loads(out.with_name(out.name + ".json").read_text())
    arguments = report["create_model"]
    assert arguments["pretrained_cfg_overlay"]["file"] == str(out) and report["max_abs_diff"] <= 1e-4
    plain = timm.create_model(**arguments).eval()
    model, _ = lorevit.load_adapter(trained[run])  # the unmerged adapter
    with torch.no_grad():
        assert (plain(_images()) - model(_images()).logits).abs().max() <= 1e-4
    with safe_open(str(out), framework="pt") as f:
        keys = set(f.keys())
    assert keys == set(plain.state_dict())  # timm's own keys, the task head as timm's head
    assert not any("lora" in k or "ssf" in k for k in keys)


def test_merge_format_onnx_is_the_merged_graph(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    from lorevit.tools.export import export_onnx

    result = export_onnx(trained["lora"], tmp_path / "lora.onnx", merge=True)
    assert result.max_abs_diff <= 1e-4 and result.metadata["merged"] == "true"
    assert float(result.metadata["merge_max_abs_diff_logits"]) <= 1e-4


def test_merge_of_a_method_that_cannot_merge_is_one_error_line(trained, tmp_path, capsys):
    for fmt, name in (("timm", "x.safetensors"), ("onnx", "x.onnx")):
        out = tmp_path / name
        assert main(["export", "--adapter", str(trained["adaptformer"]), "--merge", "--format", fmt,
                     "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "method 'adaptformer' cannot be merged" in err, err
        assert list(tmp_path.iterdir()) == []


def test_format_timm_without_merge_or_with_another_suffix_is_one_error_line(trained, tmp_path, capsys):
    assert main(["export", "--adapter", str(trained["ssf"]), "--format", "timm",
                 "--output", str(tmp_path / "x.safetensors")]) == 2
    assert "add --merge" in capsys.readouterr().err
    assert main(["export", "--adapter", str(trained["ssf"]), "--merge", "--format", "timm",
                 "--output", str(tmp_path / "x.pt")]) == 2
    assert "writes safetensors" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
