"""CLIP backbones: zero-shot negatives for L_kp (computed once, cached) and the zero-shot method.

A CLIP-shaped random ViT (2 blocks, 512-wide image projection) and open_clip's ViT-B-16 text
tower with random weights stand in for the hub weights, which need internet.
"""
import pytest
import torch

pytest.importorskip("open_clip")

from lorevit.utils.paths import sub_dir  # noqa: E402
from lorevit.training.run import train  # noqa: E402

from .conftest import tiny_config  # noqa: E402

CLIP_TINY = dict(backbone="vit_base_patch16_clip_224", weights="random", knowledge="clip:ViT-B-16",
                 backbone_kwargs={"patch_size": 8, "depth": 2, "num_classes": 512})


def test_lore_uses_cached_clip_zero_shot_labels(tmp_path, color_folder):
    cfg = tiny_config(tmp_path / "a", color_folder, epochs=1, **CLIP_TINY)
    before = set(sub_dir("zero_shot").glob("*.pt"))  # the session's cache may hold other tests' entries
    metrics = train(cfg)
    assert metrics["negatives"] == "clip-zero-shot"
    cached = sorted(set(sub_dir("zero_shot").glob("*.pt")) - before)
    assert len(cached) == 1
    table = torch.load(cached[0], weights_only=True)
    assert (table >= 0).sum() == metrics["num_train"]  # one label p per training image, -1 elsewhere
    mtime = cached[0].stat().st_mtime_ns
    train(cfg.replace(output=str(tmp_path / "b")))  # same split: read from the cache
    assert cached[0].stat().st_mtime_ns == mtime


def test_zero_shot_method_is_evaluated_not_trained(tmp_path, color_folder):
    metrics = train(tiny_config(tmp_path / "zs", color_folder, method="zero-shot", **CLIP_TINY))
    assert metrics["history"] == [] and 0 <= metrics["test_top1"] <= 100
    assert metrics["trainable_params"] == 0


def test_zero_shot_needs_a_clip_text_tower(tmp_path, color_folder):
    with pytest.raises(ValueError, match="CLIP"):
        train(tiny_config(tmp_path / "zs", color_folder, method="zero-shot"))


def test_clip_negatives_need_the_backbones_own_text_tower(tmp_path, color_folder):
    from lorevit.knowledge import KnowledgeError

    cfg = tiny_config(tmp_path / "b32", color_folder, epochs=1, **(CLIP_TINY | {"knowledge": "clip:ViT-B-32"}))
    with pytest.raises(KnowledgeError, match="set knowledge: clip:ViT-B-16"):
        train(cfg)


def test_clip_knowledge_on_a_non_clip_backbone_uses_own_predictions(tmp_path, color_folder):
    metrics = train(tiny_config(tmp_path / "own", color_folder, epochs=1, knowledge="clip:ViT-B-16"))
    assert metrics["negatives"] == "own-prediction"  # KLA's queries may come from any text encoder
