"""The shared (global) prompts' keys/values projected once per block (backbone.SharedPromptKV): the same
logits as the plain path (every image's prompts projected) and as the block run on the whole sequence (Eq. 12),
recomputed whenever a prompt, a weight, the device or the dtype changes, and gradients unchanged in training."""
import pytest
import torch

import lorevit
from lorevit.backbone import block_with_side_tokens

from .conftest import CLASSES, TINY_SIZE


def build(method, backbone, **arch):
    model = lorevit.create_model(method, CLASSES, backbone=backbone, knowledge="st:minilm", knowledge_width=16,
                                 with_knowledge=False, **arch)
    with torch.no_grad():  # prompts and head away from their init, so every part shows in the logits
        for p in model.method.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        torch.nn.init.normal_(model.head.weight, std=0.5)
    return model.eval()


def plain_logits(model, images):
    """The plain path: every image's prompts projected (no shared K/V)."""
    model.backbone.share_prompt_kv = False
    try:
        return model(images).logits
    finally:
        model.backbone.share_prompt_kv = True


def sequence_logits(model, images):
    """The reference: each block run on [CLS, prompts, patches] (Eq. 12), the prompt outputs dropped."""
    backbone, vit = model.backbone, model.backbone.vit
    e0 = backbone.embed_patches(images)
    prompts = model.method(e0).prompts
    x = vit.norm_pre(vit._pos_embed(e0))
    P, n = backbone.num_prefix, prompts.shape[2]
    for i, block in enumerate(vit.blocks):
        out = block(torch.cat([x[:, :P], prompts[:, i], x[:, P:]], dim=1))
        x = torch.cat([out[:, :P], out[:, P + n:]], dim=1)
    return model.head(vit.forward_head(vit.norm(x), pre_logits=True))


@pytest.mark.parametrize("method", ["lore", "lore-no-kp", "vpt-deep"])
def test_shared_kv_matches_plain_path_and_sequence(method, tiny_backbone):
    model = build(method, tiny_backbone)
    images = torch.randn(5, 3, TINY_SIZE, TINY_SIZE)
    with torch.inference_mode():
        assert model.method(model.backbone.embed_patches(images)).shared is not None
        fast = model(images).logits
        again = model(images).logits  # from the cache
        plain, reference = plain_logits(model, images), sequence_logits(model, images)
    assert len(model.backbone.shared_kv.entries) == model.backbone.depth
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, fast, atol=0, rtol=0)
    assert fast.abs().max() > 1e-2  # the comparison compares something


def test_cache_hit_does_not_project_again(tiny_backbone):
    model = build("lore", tiny_backbone)
    images = torch.randn(3, 3, TINY_SIZE, TINY_SIZE)
    with torch.no_grad():
        model(images)
        first = {i: e[1] for i, e in model.backbone.shared_kv.entries.items()}
        model(torch.randn(4, 3, TINY_SIZE, TINY_SIZE))  # another batch, another batch size: the same K/V
    assert all(model.backbone.shared_kv.entries[i][1] is k for i, k in first.items())
    assert first[0].shape == (1, 8, tiny_backbone.dim)  # 1, n_s, width: broadcast over the batch, heads split later


def test_cache_follows_prompts_weights_and_dtype(tiny_backbone):
    model = build("lore", tiny_backbone)
    images = torch.randn(3, 3, TINY_SIZE, TINY_SIZE)
    with torch.no_grad():
        before = model(images).logits
        model.method.global_prompts.tokens.mul_(-2.0)  # an optimizer step / load_state_dict: in place
        changed = model(images).logits
        torch.testing.assert_close(changed, plain_logits(model, images), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(changed, before, atol=1e-4)
        model.backbone.vit.blocks[1].attn.qkv.weight.mul_(0.5)  # the ViT's weights changed (a merge, ...)
        torch.testing.assert_close(model(images).logits, plain_logits(model, images), atol=1e-5, rtol=1e-5)
        model.method.load_state_dict({k: v.clone() for k, v in model.method.state_dict().items()})
        torch.testing.assert_close(model(images).logits, plain_logits(model, images), atol=1e-5, rtol=1e-5)
        model.double()  # another dtype: recomputed (the cache is cleared by .to and keyed on the dtype)
        wide = model(images.double()).logits
        assert wide.dtype == torch.float64
        torch.testing.assert_close(wide, plain_logits(model, images.double()), atol=1e-10, rtol=1e-10)


def test_training_gradients_unchanged(tiny_backbone):
    """With gradients the shared K/V are projected per call (not cached) and the prompts get the plain path's
    gradients."""
    model = build("lore-no-kp", tiny_backbone)
    images, labels = torch.randn(4, 3, TINY_SIZE, TINY_SIZE), torch.tensor([0, 1, 2, 0])
    grads = []
    for share in (True, False):
        model.zero_grad()
        model.backbone.share_prompt_kv = share
        model.train()
        torch.nn.functional.cross_entropy(model(images).logits, labels).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    model.backbone.share_prompt_kv = True
    assert not model.backbone.shared_kv.entries  # never cached with gradients
    assert grads[0]["method.global_prompts.tokens"].abs().sum() > 0
    for name in grads[1]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_vpt_dropout_prompts_are_not_shared_in_training(tiny_backbone):
    model = build("vpt-deep", tiny_backbone, method_options={"vpt_dropout": 0.5})
    e0 = model.backbone.embed_patches(torch.randn(2, 3, TINY_SIZE, TINY_SIZE))
    assert model.method.train()(e0).shared is None  # a dropout mask per image
    assert model.method.eval()(e0).shared is not None
    public = build("lore", tiny_backbone, white_box="public")  # block 0's globals pass the pre-norm: not shared
    assert public.method(e0).shared is None


def test_block_refuses_shared_kv_for_other_blocks(tiny_backbone):
    block = tiny_backbone.vit.blocks[0]
    block.attn.train()  # supports_side_tokens is False for a block in training mode
    kv = torch.zeros(1, 2, 1, 16)
    with pytest.raises(ValueError, match="shared_kv"):
        block_with_side_tokens(block, torch.randn(1, 3, 32), torch.randn(1, 1, 32), shared_kv=(kv, kv))


def test_max_relative_subtracts_after_the_max_bit_for_bit():
    """LIN's e'_i = max_j (e_j − e_i) is computed as (max_j e_j) − e_i (no B·M·k·d temporary): the same bits."""
    from lorevit.white_box import knn_graph, max_relative

    tokens = torch.randn(3, 20, 16) * 10
    neighbours = knn_graph(tokens, 5)
    B, M, d = tokens.shape
    gathered = tokens.gather(1, neighbours.reshape(B, -1, 1).expand(B, -1, d)).view(B, M, 5, d)
    reference = (gathered - tokens.unsqueeze(2)).amax(dim=2)
    assert torch.equal(max_relative(tokens, neighbours), reference)  # one neighbour at a time (no gradients)
    leaf, reference_leaf = tokens.clone().requires_grad_(), tokens.clone().requires_grad_()
    with_grad = max_relative(leaf, neighbours)  # with gradients: the amax path
    picked = reference_leaf.gather(1, neighbours.reshape(B, -1, 1).expand(B, -1, d)).view(B, M, 5, d)
    by_gather = (picked - reference_leaf.unsqueeze(2)).amax(dim=2)
    assert torch.equal(with_grad.detach(), reference)
    weights = torch.randn_like(reference)
    (with_grad * weights).sum().backward()
    (by_gather * weights).sum().backward()
    assert leaf.grad.abs().sum() > 0
    torch.testing.assert_close(leaf.grad, reference_leaf.grad)  # the same gradient as Eq. 3 written out
