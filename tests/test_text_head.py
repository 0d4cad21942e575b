"""``head: text`` (issue 21 §2): a cosine classifier over the class names' frozen CLIP text features — equal to
zero-shot CLIP on the plain Black Box, trained nothing of its own, rebuilt for new classes from their names."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("open_clip")

from lorevit.cli import main  # noqa: E402
from lorevit.factory import create_model  # noqa: E402

CLIP_KW = {"patch_size": 8, "depth": 2, "num_classes": 512}
CLIP_ARGS = ["--backbone", "vit_base_patch16_clip_224", "--weights", "random", "--backbone-kwargs", json.dumps(CLIP_KW),
             "--knowledge", "clip:ViT-B-16", "--img-size", "32", "--eval-batch-size", "64"]


@pytest.fixture
def clip_backbone():
    from lorevit.backbone import create_backbone

    torch.manual_seed(0)
    return create_backbone("vit_base_patch16_clip_224", "random", 32, **CLIP_KW)


def test_text_head_on_the_black_box_equals_zero_shot_clip(clip_backbone):
    names = ["cat", "dog", "red car"]
    text = create_model("linear", names, backbone=clip_backbone, knowledge="clip:ViT-B-16", head="text")
    zero = create_model("zero-shot", names, backbone=clip_backbone, knowledge="clip:ViT-B-16")
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        a = text(images).logits / text.head.logit_scale.exp()  # cosines
        b = zero(images).logits / 100.0
    assert a.shape == (4, 3)
    assert torch.allclose(a, b, atol=1e-5)
    head_params = [n for n, p in text.named_parameters() if p.requires_grad and n.startswith("head.")]
    assert head_params == []  # nothing of the head trains
    assert "head.text_features" not in text.trained_state_dict()  # recomputed from the names, never saved


def test_text_head_needs_clip(clip_backbone):
    from lorevit.errors import ConfigError

    with pytest.raises(ConfigError, match="head: text"):
        create_model("linear", ["a", "b"], backbone=clip_backbone, knowledge="st:minilm", head="text")


def test_lore_with_text_head_scores_new_classes_in_base2novel(tmp_path):
    from pathlib import Path

    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist (make setup)")
    from lorevit.tasks.standins.protocols import build_coop

    build_coop(tmp_path / "data", sizes=(4, 1, 4))
    out = tmp_path / "suite"
    assert main(["bench", "suite", "--protocol", "base2novel", "--methods", "lore", "--head", "text", "--shots", "2",
                 "--seeds", "1", "--epochs", "1", "--data-root", str(tmp_path / "data"), "--output", str(out),
                 *CLIP_ARGS]) == 0
    report = json.loads((out / "suite.json").read_text())["protocols"]["base2novel"]
    cell = report["cells"]["food101@base|lore|2|1"]
    assert cell["new_top1"] is not None and 0 <= cell["new_top1"] <= 100
    evaluated = json.loads((out / cell["run"] / "eval" / "food101@new.json").read_text())
    assert evaluated["rebuilt_for_classes"] and evaluated["num_test"] == 5 * 4
    config = (out / cell["run"] / "config.yaml").read_text()
    assert "text_template: a photo of {}, a type of food." in config  # the dataset's CoOp template
    avg = report["tables"]["lore"]["average"]
    assert avg["hm"] == pytest.approx(2 * avg["base"] * avg["new"] / (avg["base"] + avg["new"]))
