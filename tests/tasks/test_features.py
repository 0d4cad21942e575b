"""Task features: B-B equals timm's own forward_features at any size; an adapter's prompts change them."""
from __future__ import annotations

import pytest
import torch

from lorevit.tasks import TaskError, load_extractor
from lorevit.tasks.features import same_size_batches

from ..conftest import TINY_KWARGS, TINY_VIT


@pytest.fixture
def blackbox():
    return load_extractor(None, TINY_VIT, "random", TINY_KWARGS, base_size=32)


@pytest.mark.parametrize("size", [(32, 32), (40, 24), (45, 29)])  # square, non-square, not multiples of 8
def test_blackbox_equals_timm_forward_features(blackbox, size):
    vit = blackbox.backbone.vit
    images = torch.randn(2, 3, *size)
    feats = blackbox(images)
    h, w = size[0] // 8, size[1] // 8
    with torch.no_grad():
        reference = vit.forward_features(images[..., : h * 8, : w * 8])  # B, 1 + h·w, d after the final norm
        pooled = vit.forward_head(reference, pre_logits=True)
    assert feats.patches.shape == (2, h, w, 32)
    torch.testing.assert_close(feats.patches, reference[:, 1:].unflatten(1, (h, w)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats.cls, pooled, atol=1e-5, rtol=1e-5)


def test_adapter_features_differ_and_use_no_knowledge(tiny_adapter, blackbox):
    lore = load_extractor(tiny_adapter)
    assert lore.label == "LORE" and lore.provenance["source"] == "adapter"
    assert lore.provenance["method"] == "lore" and len(lore.provenance["adapter_sha256"]) == 64
    images = torch.randn(2, 3, 40, 24)
    a, b = lore(images), blackbox(images)
    assert a.patches.shape == b.patches.shape == (2, 5, 3, 32)
    assert (a.cls - b.cls).abs().max() > 1e-3  # the White Box's prompts enter every block
    assert (a.patches - b.patches).abs().max() > 1e-3
    assert lore.method.class_queries.numel() == 0  # knowledge encoder never loaded


def test_adapter_features_project_the_shared_prompts_once(tiny_adapter):
    """The global prompts' keys/values are cached per block (backbone.SharedPromptKV) for the tasks too, and the
    features equal the per-image computation."""
    lore = load_extractor(tiny_adapter)
    images = torch.randn(3, 3, 40, 24)
    lore.backbone.shared_kv.clear()
    fast = lore(images)
    assert len(lore.backbone.shared_kv.entries) == lore.backbone.depth
    lore.backbone.share_prompt_kv = False
    try:
        slow = lore(images)
    finally:
        lore.backbone.share_prompt_kv = True
    torch.testing.assert_close(fast.cls, slow.cls, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.patches, slow.patches, atol=1e-5, rtol=1e-5)


def test_adapter_on_another_backbone_is_refused(tiny_adapter):
    with pytest.raises(TaskError, match="trained on backbone"):
        load_extractor(tiny_adapter, backbone="vit_base_patch16_224")


def test_image_smaller_than_a_patch_is_refused(blackbox):
    with pytest.raises(TaskError, match="smaller than one"):
        blackbox(torch.randn(1, 3, 5, 40))


def test_extract_batches_equal_sizes_and_keeps_order(blackbox):
    images = [torch.randn(3, 32, 32), torch.randn(3, 32, 32), torch.randn(3, 40, 24), torch.randn(3, 32, 32)]
    assert [b.shape[0] for b in same_size_batches(images, 8)] == [2, 1, 1]
    out = blackbox.extract(images, batch_size=8, keep="cls")
    assert out.count == 4 and out.images_per_s > 0
    one_by_one = torch.cat([blackbox(im[None]).cls for im in images])
    torch.testing.assert_close(out.stacked(), one_by_one, atol=1e-5, rtol=1e-5)
