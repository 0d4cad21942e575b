"""Which parameters each method trains, that gradients reach them and never the ViT, adapters."""
import pytest
import torch

import lorevit
from lorevit.adapters.format import AdapterError, save_adapter
from lorevit.factory import load_adapter
from lorevit.backbone import create_backbone
from lorevit.config import Config
from lorevit.methods import METHODS

from .conftest import CLASSES, TINY_KWARGS, TINY_SIZE, TINY_VIT, assert_gradients_reach_only_trainable

EXPECTED_TRAINABLE = {
    "linear": set(),
    "vpt-shallow": {"prompts"},
    "vpt-deep": {"prompts"},
    "lore-no-kp": {"lin", "generator", "global_prompts"},
    "lore": {"lin", "generator", "global_prompts", "kla"},
}


def make(method, backbone):
    return lorevit.create_model(method, CLASSES, backbone=backbone, knowledge="st:minilm")


@pytest.mark.parametrize("method", list(EXPECTED_TRAINABLE))
def test_trainable_sets_and_gradients(method, tiny_backbone):
    model = make(method, tiny_backbone)
    trainable = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("method.")}
    assert trainable == EXPECTED_TRAINABLE[method]
    assert all(p.requires_grad for p in model.head.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert model.head.weight.abs().sum() == 0  # zero-initialised: step 0 trains only the head ...
    torch.nn.init.normal_(model.head.weight, std=0.1)  # ... so give it weights, as after a first step
    model.train()
    out = model(torch.randn(4, 3, TINY_SIZE, TINY_SIZE))
    labels = torch.tensor([0, 1, 2, 0])
    wrong = (out.logits.argmax(-1) + 1) % 3  # a wrong B-B prediction for every image: both L_kp terms live
    model.loss(out, labels, wrong)["loss"].backward()
    assert_gradients_reach_only_trainable(model)


def test_vpt_deep_shapes(tiny_backbone):
    model = lorevit.create_model("vpt-deep", CLASSES, backbone=tiny_backbone, vpt_prompts=10)
    assert model.method.prompts.tokens.shape == (tiny_backbone.depth, 10, tiny_backbone.dim)
    shallow = lorevit.create_model("vpt-shallow", CLASSES, backbone=tiny_backbone, vpt_prompts=10)
    assert shallow.method.prompts.tokens.shape == (1, 10, tiny_backbone.dim)


def test_lore_prompts_are_global_then_local(tiny_backbone):
    model = make("lore", tiny_backbone)
    prompting = model.method(tiny_backbone.embed_patches(torch.randn(2, 3, TINY_SIZE, TINY_SIZE)))
    assert prompting.prompts.shape == (2, tiny_backbone.depth, 8 + 2, tiny_backbone.dim)
    torch.testing.assert_close(prompting.prompts[0, :, :8], model.method.global_prompts.tokens)
    assert not torch.allclose(prompting.prompts[0, :, 8:], prompting.prompts[1, :, 8:])  # per-image prompts


def test_lore_kp_cost_does_not_depend_on_class_count(tiny_backbone):
    model = make("lore", tiny_backbone)
    model.method.set_knowledge(torch.randn(1000, model.method.kla.to_q.in_features))
    out = model(torch.randn(2, 3, TINY_SIZE, TINY_SIZE))
    labels = torch.tensor([3, 999])
    assert torch.isfinite(model.method.extra_loss(out.aux, labels, torch.tensor([5, 999])))


def test_lore_predicts_the_same_in_train_and_eval_mode(tiny_backbone):
    """Eval mode takes the pooled LIN path (no Ê kept); prompts and logits must not change."""
    model = make("lore", tiny_backbone)
    torch.nn.init.normal_(model.head.weight)
    torch.nn.init.normal_(model.method.lin.w2.weight)
    images = torch.randn(3, 3, TINY_SIZE, TINY_SIZE)
    trained = model.train()(images)
    assert trained.aux["e_hat"].shape == (3, tiny_backbone.num_patches, tiny_backbone.dim)
    served = model.eval()(images)
    assert "e_hat" not in served.aux
    torch.testing.assert_close(served.logits, trained.logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="training-mode forward"):
        model.method.extra_loss(served.aux, torch.tensor([0, 1, 2]), torch.tensor([0, 0, 0]))


def test_inference_does_not_touch_kla(tiny_backbone):
    model = make("lore", tiny_backbone).eval()
    calls = []
    model.method.kla.register_forward_hook(lambda *a: calls.append(1))
    model(torch.randn(2, 3, TINY_SIZE, TINY_SIZE))
    assert calls == []


def test_adapter_roundtrip_gives_identical_logits(tmp_path, tiny_backbone):
    cfg = Config(method="lore", backbone=TINY_VIT, weights="random", backbone_kwargs=TINY_KWARGS, img_size=TINY_SIZE)
    model = make("lore", tiny_backbone)
    for p in model.trainable_parameters():  # move away from the initialisation
        p.data.add_(torch.randn_like(p) * 0.01)
    model.train()(torch.randn(8, 3, TINY_SIZE, TINY_SIZE))  # update BN running statistics
    model.eval()
    path = save_adapter(model, cfg, tmp_path)
    x = torch.randn(3, 3, TINY_SIZE, TINY_SIZE)
    loaded, loaded_cfg = load_adapter(tmp_path, backbone=tiny_backbone)
    torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=0)
    assert loaded.classnames == CLASSES and loaded_cfg == cfg
    # only trained state is saved: far smaller than the ViT
    n_saved = sum(t.numel() for t in __import__("safetensors.torch", fromlist=["load_file"]).load_file(path).values())
    assert n_saved < sum(p.numel() for p in tiny_backbone.parameters())
    assert not any(k.startswith("backbone") for k in __import__("safetensors.torch", fromlist=["load_file"]).load_file(path))


def test_adapter_for_another_backbone_is_refused(tmp_path, tiny_backbone):
    cfg = Config(method="vpt-deep", backbone=TINY_VIT, weights="random", backbone_kwargs=TINY_KWARGS, img_size=TINY_SIZE)
    save_adapter(lorevit.create_model("vpt-deep", CLASSES, backbone=tiny_backbone), cfg, tmp_path)
    other = create_backbone(TINY_VIT, "random", TINY_SIZE, **{**TINY_KWARGS, "embed_dim": 48})
    with pytest.raises(AdapterError, match="trained on"):
        load_adapter(tmp_path, backbone=other)


def test_bad_adapter_files(tmp_path):
    with pytest.raises(AdapterError, match="no adapter"):
        load_adapter(tmp_path)
    (tmp_path / "adapter.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AdapterError, match="not a readable"):
        load_adapter(tmp_path)


def test_every_method_is_registered():
    assert set(METHODS) == {"linear", "vpt-shallow", "vpt-deep", "lore-no-kp", "lore", "zero-shot",
                            "lora", "adaptformer", "adapter", "ssf", "bitfit", "full",
                            "coop", "cocoop", "prograd", "clip-adapter", "maple", "clip-lora"}


def test_constant_tables_are_no_buffers_ddp_would_broadcast(tiny_backbone):
    """DDP broadcasts every registered buffer from rank 0 at every step: the class text features and the
    per-image negatives never change, so they are plain tensors that still follow .to()."""
    from lorevit.training.module import LitClassifier

    model = make("lore", tiny_backbone)
    queries = model.method.class_queries
    assert queries.numel() > 0 and all(b is not queries for b in model.buffers())
    model.to(torch.float64)
    assert model.method.class_queries.dtype == torch.float64
    lit = LitClassifier(model, Config(), negatives=torch.tensor([2, 0, 1]))
    assert all(b is not lit.negatives for b in lit.buffers())
    assert lit.negatives[torch.tensor([2, 0])].tolist() == [1, 2]
