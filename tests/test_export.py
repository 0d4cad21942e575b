"""``lorevit export`` (issue 12 §2): one ONNX file per adapter, equal to PyTorch at any batch size."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from .conftest import CLASSES, TINY_SIZE, tiny_config, write_color_folder

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """Tiny adapters trained for one epoch on generated colour images: {method: run dir}."""
    from lorevit.training.run import train

    root = tmp_path_factory.mktemp("export")
    data = write_color_folder(root / "colors", per_class=(4, 2))
    runs = {}
    for method in ("lore", "linear", "vpt-deep"):
        runs[method] = root / method
        train(tiny_config(runs[method], data, method=method, epochs=1, shots=4, batch_size=4))
    return runs


def onnx_logits(path, images: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"images": images.numpy()})[0]


def torch_logits(adapter, images: torch.Tensor) -> np.ndarray:
    from lorevit.factory import load_adapter

    model, _ = load_adapter(adapter)
    with torch.no_grad():
        return model(images).logits.numpy()


def test_lore_export_matches_pytorch_at_batch_1_and_3(adapters, tmp_path, capsys):
    from lorevit.cli import main

    out = tmp_path / "deploy" / "lore.onnx"
    assert main(["export", "--adapter", str(adapters["lore"]), "--format", "onnx", "--output", str(out)]) == 0
    assert "max |difference|" in capsys.readouterr().out
    images = torch.randn(3, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(7))  # not the check's
    expected = torch_logits(adapters["lore"], images)  # 3, C
    assert np.abs(onnx_logits(out, images) - expected).max() <= 1e-4
    assert np.abs(onnx_logits(out, images[:1]) - expected[:1]).max() <= 1e-4

    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    from lorevit.adapters.format import read_adapter

    assert json.loads(meta["classnames"]) == json.loads(read_adapter(adapters["lore"])[1]["classnames"])
    assert sorted(json.loads(meta["classnames"])) == sorted(CLASSES)  # in logit order (ImageFolder's)
    assert (meta["method"], meta["img_size"], meta["format"]) == ("lore", str(TINY_SIZE), "lorevit.onnx/1")
    assert len(json.loads(meta["mean"])) == len(json.loads(meta["std"])) == 3
    batch_axis = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_axis.dim_param == "batch" and not batch_axis.HasField("dim_value")

    report = json.loads(out.with_name("lore.onnx.json").read_text())
    assert report["max_abs_diff"] <= 1e-4 and report["check_batch_sizes"] == [1, 3]
    assert float(meta["max_abs_diff_logits"]) == pytest.approx(report["max_abs_diff"], rel=1e-5)


@pytest.mark.parametrize("method", ["linear", "vpt-deep"])
def test_other_methods_export(adapters, tmp_path, method):
    from lorevit.tools.export import export_onnx

    result = export_onnx(adapters[method], tmp_path / f"{method}.onnx")
    assert result.max_abs_diff <= 1e-4
    images = torch.randn(3, 3, TINY_SIZE, TINY_SIZE)
    assert np.abs(onnx_logits(result.path, images) - torch_logits(adapters[method], images)).max() <= 1e-4


def test_lin_fold_cache_is_neither_read_nor_baked_while_tracing(adapters):
    """A warm fold cache, then new LIN weights: the graph follows the weights, and tracing leaves the cache alone."""
    from lorevit.factory import load_adapter
    from lorevit.tools.export import compare_with_torch, trace_to_onnx

    model, cfg = load_adapter(adapters["lore"])
    images = torch.randn(2, 3, TINY_SIZE, TINY_SIZE)
    with torch.no_grad():
        before = model(images).logits  # folds W_mix·W1 into the cache
        lin = model.method.lin
        cached = lin._folded
        lin.w1.weight.mul_(3.0)
        lin.mix.bias.add_(0.5)
    graph = trace_to_onnx(model, cfg.img_size, opset=17)
    assert lin._folded is cached  # the tracer neither read nor refilled it
    difference, sizes = compare_with_torch(graph, model, cfg.img_size)
    assert difference <= 1e-4 and sizes == [1, 3]
    with torch.no_grad():
        assert not torch.allclose(model(images).logits, before)  # the new weights do change the logits


def test_bad_inputs_exit_2_and_write_nothing(adapters, tmp_path, capsys, monkeypatch):
    from lorevit.tools import export
    from lorevit.cli import main

    out = tmp_path / "x.onnx"
    cases = [
        (["--adapter", str(tmp_path / "missing"), "--output", str(out)], "no adapter at"),
        (["--adapter", str(adapters["linear"]), "--format", "tflite", "--output", str(out)], "'tflite' is not supported"),
        (["--adapter", str(adapters["linear"]), "--output", str(tmp_path)], "is a directory"),
        (["--adapter", str(adapters["linear"]), "--opset", "9", "--output", str(out)], "--opset 9"),
    ]
    for argv, message in cases:
        assert main(["export", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err

    monkeypatch.setattr(export, "compare_with_torch", lambda *a, **k: (0.5, [1, 3]))  # a graph that disagrees
    assert main(["export", "--adapter", str(adapters["linear"]), "--output", str(out)]) == 2
    assert "differ from PyTorch's by 0.5" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temporary left behind

    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # not installed
    assert main(["export", "--adapter", str(adapters["linear"]), "--output", str(out)]) == 2
    assert "pip install" in capsys.readouterr().err


def test_onnx_metadata_names_local_weights_by_basename_and_fingerprint(tmp_path):
    """issue 25 §4: no machine path in the ONNX file — a local weights file is named by its base name, with the
    weights' fingerprint beside it."""
    from safetensors.torch import save_file

    from lorevit.adapters.format import backbone_fingerprint
    from lorevit.backbone import create_backbone
    from lorevit.factory import create_model
    from lorevit.tools.export import onnx_metadata

    from .conftest import TINY_KWARGS, TINY_VIT

    random = create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS)
    folder = tmp_path / "home" / "alice" / "private-weights"
    folder.mkdir(parents=True)
    save_file({k.removeprefix("vit."): v.contiguous() for k, v in random.state_dict().items()},
              str(folder / "vit.safetensors"))
    backbone = create_backbone(TINY_VIT, str(folder / "vit.safetensors"), TINY_SIZE, **TINY_KWARGS)
    model = create_model("linear", CLASSES, backbone=backbone, knowledge=None)
    adapter = tmp_path / "a.bin"
    adapter.write_bytes(b"x")
    cfg = tiny_config(tmp_path / "run", tmp_path, method="linear", weights=str(folder / "vit.safetensors"))
    meta = onnx_metadata(model, cfg, adapter, 17)
    assert json.loads(meta["weights"]) == "vit.safetensors"
    assert meta["weights_sha256"] == backbone_fingerprint(backbone) == backbone_fingerprint(random)
    assert not any(str(tmp_path) in value or "alice" in value for value in meta.values()), meta
