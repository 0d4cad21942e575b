"""``lorevit app`` (issue 22 §2): the explorer's views as data, the missing-extra error, and the page in a real
headless browser (Debian's chromium through Selenium): upload an image, read the predicted label, screenshot;
a non-image upload shows a message."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from PIL import Image

from lorevit.cli import main

from . import browser
from .conftest import CLASSES


@pytest.fixture(scope="module")
def explorer(tiny_adapter):
    from lorevit.app.explorer import Explorer

    return Explorer.load(tiny_adapter, top_k=2)


def _test_image(tiny_adapter):
    """A real image of the adapter's test split (a PNG on disk) and its class."""
    path = sorted((tiny_adapter.parent / "colors" / "test").rglob("*.png"))[0]
    return path, path.parent.name.replace("_", " ")


def _huge_png(path, width: int, height: int):
    """A PNG whose header says width × height (a 1 × 1 image's data after it): what a decompression bomb looks like
    to a reader that checks the size first."""
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IHDR")
    data[start + 4:start + 12] = struct.pack(">II", width, height)
    data[start + 17:start + 21] = struct.pack(">I", zlib.crc32(bytes(data[start:start + 17])))
    path.write_bytes(bytes(data))
    return path


def test_classify_matches_predict_and_draws_fig3(explorer, tiny_adapter):
    from lorevit.app.explorer import PANEL_SIDE, open_picture
    from lorevit.tools.predict import predict_images

    path, label = _test_image(tiny_adapter)
    result = explorer.classify(open_picture(path), true_class=label)
    expected = predict_images(explorer.setup.model, explorer.setup.cfg, [path], top_k=2)[0]["top"]
    assert [t["class"] for t in result.top] == [t["class"] for t in expected]
    assert np.allclose([t["prob"] for t in result.top], [t["prob"] for t in expected], atol=1e-6)
    assert result.predicted == result.top[0]["class"] and result.true == label
    captions = [caption for _, caption in result.panels]  # LORE: image, Black Box, LORE, KLA predicted, KLA true
    assert captions[1:3] == ["Black Box CLS attention", "LORE CLS attention"]
    assert captions[3] == f"KLA attention (predicted: {result.predicted})" and captions[4] == f"KLA attention (true: {label})"
    for pixels, _ in result.panels:
        assert pixels.dtype == np.uint8 and pixels.shape == (PANEL_SIDE, PANEL_SIDE, 3)
    assert not np.array_equal(result.panels[1][0], result.panels[2][0])  # the prompts change the attention


def test_samples_are_the_adapters_test_images(explorer):
    samples = explorer.samples()
    assert samples and {label for _, label in samples.values()} == set(CLASSES)
    name = next(iter(samples))
    picture, label = explorer.sample(name)
    assert picture.mode == "RGB" and label == samples[name][1]


def test_correspondence_of_an_image_with_itself_finds_the_same_point(explorer, tiny_adapter):
    from lorevit.app.explorer import open_picture

    picture = open_picture(_test_image(tiny_adapter)[0]).resize((48, 40))
    result = explorer.correspond(picture, picture, (30, 12))
    assert [m.source for m in result.matches] == ["B-B", "LORE"]
    for m in result.matches:  # the cosine of a vector with itself is 1, the maximum
        assert m.cosine == pytest.approx(1.0, abs=1e-5)
        assert abs(m.best[0] - 30) <= 1 and abs(m.best[1] - 12) <= 1
        assert m.panel.shape == (40, 48, 3) and m.panel.dtype == np.uint8
    assert result.source_panel.shape == (40, 48, 3)


def test_bad_uploads_are_messages(tmp_path, explorer):
    from lorevit.app.explorer import AppError, open_picture

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(AppError, match="notes.txt is not an image"):
        open_picture(text)
    truncated = tmp_path / "cut.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(tmp_path / "whole.png")
    truncated.write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    with pytest.raises(AppError, match="cut.png"):
        open_picture(truncated)
    big = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(big)
    with pytest.raises(AppError, match="300×200 px, more than"):  # refused from the header, before decoding
        open_picture(big, max_pixels=50_000)
    with pytest.raises(AppError, match="huge.png is (too large|9000×9000 px)"):  # 81 MP: PIL's own bomb limit or ours
        open_picture(_huge_png(tmp_path / "huge.png", 9000, 9000))
    with pytest.raises(AppError, match="outside image A"):
        explorer.correspond(Image.new("RGB", (32, 32)), Image.new("RGB", (32, 32)), (40, 3))
    with pytest.raises(AppError, match="not one of the adapter's classes"):
        explorer.classify(Image.new("RGB", (32, 32)), true_class="purple square")


def test_missing_gradio_is_one_error_line(monkeypatch, tiny_adapter, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    assert main(["app", "--adapter", str(tiny_adapter)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lorevit: error: lorevit app needs Gradio") and 'pip install "lorevit[app]"' in err
    assert len(err.splitlines()) == 1


def test_a_taken_port_is_one_error_line_before_the_adapter_loads(tmp_path, capsys):
    import socket

    pytest.importorskip("gradio", reason="the app extra (pip install 'lorevit[app]') is not installed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["app", "--adapter", str(tmp_path / "no-such-run"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"lorevit: error: cannot serve on 127.0.0.1:{port}" in err and "another --port" in err
    assert main(["app", "--adapter", "x", "--port", "70000"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err


@pytest.mark.skipif(not browser.have_chromium(), reason=browser.MISSING)
def test_page_in_a_real_browser(tiny_adapter, explorer, tmp_path):
    pytest.importorskip("gradio", reason="the app extra (pip install 'lorevit[app]') is not installed")
    pytest.importorskip("selenium", reason="selenium (the dev extra) is not installed")
    from lorevit.app.explorer import open_picture

    image, _ = _test_image(tiny_adapter)
    expected = explorer.classify(open_picture(image)).predicted
    home = os.environ["LOREVIT_HOME"]  # the session's caches (knowledge features) for the server too
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    huge = _huge_png(tmp_path / "huge.png", 8000, 6000)  # 48 MP in the header, 70 bytes on disk
    with browser.served_app(tiny_adapter, env={"LOREVIT_HOME": home}) as (url, seconds, lines), browser.chromium() as driver:
        print(f"lorevit app ready in {seconds:.1f} s")
        driver.get(url)
        browser.upload(driver, "upload", text)
        assert "notes.txt is not an image" in browser.text_of(driver, "message", "not an image")
        assert "Traceback" not in driver.page_source
        driver.get(url)
        browser.upload(driver, "upload", huge)
        assert "8000×6000 px, more than 40 megapixels" in browser.text_of(driver, "message", "megapixels")

        driver.get(url)  # a fresh page
        browser.upload(driver, "upload", image)
        shown = browser.text_of(driver, "prediction", "predicted:")
        predicted = shown.split("predicted:")[1].split("(")[0].strip()
        assert predicted == expected and predicted in CLASSES
        shot = tmp_path / "app.png"
        assert driver.save_screenshot(str(shot))
        with Image.open(shot) as picture:
            assert picture.format == "PNG" and picture.width >= 1000

        browser.open_tab(driver, "Correspondence")  # the same image as A and B: a click finds its own point
        browser.upload(driver, "upload-a", image)
        browser.upload(driver, "upload-b", image)
        browser.wait_image(driver, "match-bb")  # B shown
        browser.click_image(driver, "image-a", 0.5, 0.5)
        said = browser.text_of(driver, "match-message", "LORE: best match")
        assert "B-B: best match" in said and "cosine 1.000" in said
    assert not any("Traceback" in line for line in lines), "\n".join(lines)


def test_a_hub_folder_of_a_method_that_changes_the_vit(tmp_path, tiny_backbone, color_folder):
    """bitfit trains the ViT's own biases: the Black Box panels and B-B features come from a clean copy of the ViT;
    no KLA panels; the adapter loads from a hub-style folder (save_pretrained)."""
    import torch

    import lorevit
    from lorevit.adapters.format import save_adapter
    from lorevit.app.explorer import Explorer
    from lorevit.tools.locality import changes_the_vit

    from .conftest import TINY_SIZE, tiny_config

    cfg = tiny_config(tmp_path / "run", color_folder, method="bitfit")
    model = lorevit.create_model("bitfit", CLASSES, backbone=tiny_backbone, knowledge=cfg.knowledge)
    with torch.no_grad():
        for name, p in model.backbone.named_parameters():
            if p.requires_grad:
                p.add_(0.5)  # "trained" biases: the adapted ViT differs from the Black Box
    save_adapter(model.eval(), cfg, cfg.output)
    lorevit.load_adapter(cfg.output)[0].save_pretrained(tmp_path / "hub", config=cfg)
    explorer = Explorer.load(tmp_path / "hub")
    assert changes_the_vit(explorer.setup.model) and explorer.setup.blackbox is not None
    picture = Image.open(sorted((color_folder / "test").rglob("*.png"))[0]).convert("RGB")
    result = explorer.classify(picture, true_class=CLASSES[1])
    assert [c for _, c in result.panels][1:] == ["Black Box CLS attention", "bitfit CLS attention"]  # no KLA
    assert not np.array_equal(result.panels[1][0], result.panels[2][0])
    match = explorer.correspond(picture, picture, (5, 20))
    plain, adapted = explorer.extractors()
    assert plain.backbone is not adapted.backbone and [m.source for m in match.matches] == ["B-B", "bitfit"]
    assert all(m.cosine == pytest.approx(1.0, abs=1e-5) for m in match.matches)
    assert TINY_SIZE == picture.width


def test_a_merged_export_is_a_plain_classifier(tmp_path, tiny_backbone, color_folder, capsys):
    """``lorevit export --merge --format timm`` output (the file, or a folder holding it) loads: top-k = timm's own
    classifier on the file, the merged ViT's CLS attention and correspondence; the Black Box, KLA and B-B views say
    why they are missing; --weights and an ONNX export are one error line each."""
    import json
    import shutil

    import timm
    import torch

    import lorevit
    from lorevit.adapters.format import save_adapter
    from lorevit.app.explorer import MERGED_CLASSIFY_NOTE, MERGED_MATCH_NOTE, Explorer

    from .conftest import tiny_config

    cfg = tiny_config(tmp_path / "run", color_folder, method="bitfit")
    model = lorevit.create_model("bitfit", CLASSES, backbone=tiny_backbone, knowledge=cfg.knowledge)
    with torch.no_grad():
        for _, p in model.backbone.named_parameters():
            if p.requires_grad:
                p.add_(0.5)  # "trained" biases
        model.head.weight.normal_()
    save_adapter(model.eval(), cfg, cfg.output)
    merged = tmp_path / "export" / "bitfit.safetensors"
    assert main(["export", "--adapter", cfg.output, "--merge", "--format", "timm", "--output", str(merged)]) == 0
    capsys.readouterr()
    arguments = json.loads(merged.with_name(merged.name + ".json").read_text())["create_model"]

    explorer = Explorer.load(merged, top_k=3)
    assert explorer.method == "bitfit (merged)" and "merged bitfit export" in explorer.describe()
    assert explorer.samples() == {}
    path = sorted((color_folder / "test").rglob("*.png"))[0]
    picture = Image.open(path).convert("RGB")
    result = explorer.classify(picture, true_class=CLASSES[0])
    plain = timm.create_model(**arguments).eval()  # timm's own classifier from the file
    with torch.no_grad():
        probs = plain(explorer.setup.transform(picture)[None]).softmax(-1)[0]
    best = probs.argsort(descending=True)[:3]
    assert [t["class"] for t in result.top] == [CLASSES[int(i)] for i in best]
    assert np.allclose([t["prob"] for t in result.top], probs[best].numpy(), atol=1e-5)
    assert [c for _, c in result.panels] == ["image (as the model sees it)", "bitfit (merged) CLS attention"]
    assert result.note == MERGED_CLASSIFY_NOTE and "Black Box" in result.note and "KLA" in result.note
    match = explorer.correspond(picture, picture, (5, 20))
    assert [m.source for m in match.matches] == ["bitfit (merged)"] and match.note == MERGED_MATCH_NOTE
    assert match.matches[0].best == (5, 20) and match.matches[0].cosine == pytest.approx(1.0, abs=1e-5)

    # the folder export wrote (the file and its report) works too; a run folder is still an adapter
    assert Explorer.load(merged.parent).merged.path == merged
    assert Explorer.load(cfg.output).merged is None
    # an export of an earlier lorevit (no backbone_kwargs in the file) is rebuilt from its sidecar report
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(merged), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k not in ("backbone_kwargs", "transforms")}
    old = tmp_path / "old" / "bitfit.safetensors"
    old.parent.mkdir()
    save_file(load_file(str(merged)), str(old), metadata=meta)
    from lorevit.tools.export import ExportError, read_timm_export

    assert read_timm_export(old).backbone_kwargs == {}  # no sidecar: none, and the tiny ViT does not fit timm's default
    with pytest.raises(ExportError, match="keep its bitfit.safetensors.json beside it"):
        Explorer.load(old)
    shutil.copy(merged.with_name(merged.name + ".json"), old.with_name(old.name + ".json"))
    assert Explorer.load(old).classify(picture).top == result.top

    pytest.importorskip("gradio", reason="the app extra (pip install 'lorevit[app]') is not installed")
    for bad, said in (([str(merged), "--weights", "random"], "--weights and --strict do not apply"),
                      ([str(tmp_path / "lore.onnx")], "is an ONNX export")):
        assert main(["app", "--adapter", *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lorevit: error: ") and said in err and len(err.strip().splitlines()) == 1, err
    from lorevit.app.page import build_page

    build_page(explorer)  # the page over a merged export builds (its views are the explorer's, tested above)
