"""The public code's options (issue 11 §3): ``white_box: public`` and ``head: clip``.

Shapes of every public module, one KLA row against hand numbers, which parameters train and that
gradients reach all of them and never the ViT, the CLIP head's scaling, the per-epoch schedule, an
adapter round trip, and the ablation's side-by-side variants. A tiny random CLIP-style timm tower
(``vit_base_patch16_clip_quickgelu_224`` with tiny kwargs: pre-norm ``ln_pre``, projection ``head``).
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file

import lorevit
from lorevit.adapters.format import save_adapter
from lorevit.factory import load_adapter
from lorevit.backbone import create_backbone
from lorevit.config import Config
from lorevit.errors import ConfigError
from lorevit.heads import CLIP_INIT_LOGIT_SCALE, ClipHead
from lorevit.white_box import (PublicKnowledgeLocalityAttention, PublicLocalityInteraction, PublicPromptGenerator,
                               knn_graph)
from lorevit.white_box.public import dilated_knn_graph, grid_scale, rescale_rows

from .conftest import CLASSES, TINY_KWARGS, TINY_SIZE, TINY_VIT, assert_gradients_reach_only_trainable, tiny_config

TINY_CLIP = "vit_base_patch16_clip_quickgelu_224"
CLIP_WIDTH = 16  # the tiny tower's joint embedding width (CLIP ViT-B/16: 512)
CLIP_KWARGS = {**TINY_KWARGS, "num_classes": CLIP_WIDTH}


@pytest.fixture
def clip_backbone():
    return create_backbone(TINY_CLIP, "random", TINY_SIZE, **CLIP_KWARGS)


def images(n=4):
    return torch.randn(n, 3, TINY_SIZE, TINY_SIZE)


# ----------------------------------------------------------------------------- modules: shapes


def test_public_lin_is_one_vig_block_of_the_same_shape():
    torch.manual_seed(0)
    lin = PublicLocalityInteraction(32, k=3)
    e0 = torch.randn(2, 10, 32)
    assert lin(e0).shape == (2, 10, 32)
    torch.testing.assert_close(lin(e0, pooled=True), lin(e0).mean(dim=1))
    names = {n for n, _ in lin.named_children()}
    assert names == {"grapher", "ffn"}
    g = lin.grapher
    assert (g.fc1[0].in_channels, g.fc1[0].out_channels) == (32, 32)
    assert (g.graph_conv.conv.in_channels, g.graph_conv.conv.out_channels, g.graph_conv.conv.groups) == (64, 64, 4)
    assert (g.fc2[0].in_channels, g.fc2[0].out_channels) == (64, 32)
    assert (lin.ffn.fc1[0].out_channels, lin.ffn.fc2[0].out_channels) == (128, 32)
    assert isinstance(g.graph_conv.act, torch.nn.GELU) and isinstance(lin.ffn.act, torch.nn.GELU)


def test_dilated_knn_takes_every_dilation_th_neighbour():
    tokens = torch.randn(1, 12, 5)
    torch.testing.assert_close(dilated_knn_graph(tokens, 3, 1), knn_graph(tokens, 3))
    torch.testing.assert_close(dilated_knn_graph(tokens, 3, 2), knn_graph(tokens, 6)[..., ::2])


def test_public_pg_shapes_and_batch_of_one():
    pg = PublicPromptGenerator(32, depth=3, n_local=2, rank=8)
    latent, prompts = pg(torch.randn(4, 10, 32))
    assert latent.shape == (4, 32) and prompts.shape == (4, 3, 2, 32)
    assert isinstance(pg.psi2[-1], torch.nn.Dropout) and pg.psi2[-1].p == 0.1
    for layer in (pg.psi1[0], pg.psi1[3], pg.psi2[0][0], pg.psi2[0][3]):
        assert layer.bias.abs().sum() == 0  # Kaiming-normal weights, zero bias
    pg.train()
    assert pg(torch.randn(1, 32))[1].shape == (1, 3, 2, 32)  # one image trains: BN falls back to running stats


def test_public_kla_has_no_mlp_nor_batchnorm():
    kla = PublicKnowledgeLocalityAttention(32, 12, top_n=3)
    assert {n for n, _ in kla.named_parameters()} == {"to_k.weight", "to_v.weight", "proj.weight", "proj.bias"}
    prototypes, weights = kla(torch.randn(2, 10, 32), torch.randn(5, 12))
    assert prototypes.shape == (2, 5, 32) and weights.shape == (2, 5, 10)
    prototypes, weights = kla(torch.randn(2, 10, 32), torch.randn(2, 2, 12))  # per-image queries
    assert prototypes.shape == (2, 2, 32) and weights.shape == (2, 2, 10)
    assert grid_scale(196) == pytest.approx(math.sqrt(14))


def test_public_kla_row_by_hand():
    """M = 4 patches, d_q = d = 2, N = 2; W_k = W_v = proj = identity."""
    kla = PublicKnowledgeLocalityAttention(2, 2, top_n=2)
    with torch.no_grad():
        for layer in (kla.to_k, kla.to_v, kla.proj):
            layer.weight.copy_(torch.eye(2))
        kla.proj.bias.zero_()
    e_hat = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]])  # 1, 4, 2
    q = torch.tensor([[3.0, 4.0]])  # normalised: (0.6, 0.8)
    prototypes, weights = kla(e_hat, q)
    # scores q·k × √(grid side 2) = [0.6, 0.8, 1.4, −0.6]·√2; top-2 keeps patches 2 and 1, the others → 0
    kept = [0.0, 0.8 * math.sqrt(2), 1.4 * math.sqrt(2), 0.0]
    norm = math.sqrt(sum(v * v for v in kept))
    row = [v * 4 / norm for v in kept]  # rescaled to L2 norm M = 4
    z = sum(math.exp(v) for v in row)
    expected = [math.exp(v) / z for v in row]
    torch.testing.assert_close(weights[0, 0], torch.tensor(expected))
    a = [sum(w * e for w, e in zip(expected, column)) for column in zip(*e_hat[0].tolist())]
    torch.testing.assert_close(prototypes[0, 0], torch.tensor(a))
    torch.testing.assert_close(rescale_rows(torch.tensor([[3.0, 4.0]])), torch.tensor([[1.2, 1.6]]))


# ----------------------------------------------------------------------------- in the model


@pytest.mark.parametrize("method,head", [("lore", "linear"), ("lore", "clip"), ("lore-no-kp", "clip")])
def test_public_trainable_sets_and_gradients(method, head, clip_backbone):
    model = lorevit.create_model(method, CLASSES, backbone=clip_backbone, knowledge="st:minilm",
                                 white_box="public", head=head)
    assert isinstance(model.method.lin, PublicLocalityInteraction)
    assert isinstance(model.method.generator, PublicPromptGenerator)
    if method == "lore":
        assert isinstance(model.method.kla, PublicKnowledgeLocalityAttention)
    trainable = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("method.")}
    assert trainable == {"lin", "generator", "global_prompts"} | ({"kla"} if method == "lore" else set())
    assert all(p.requires_grad for p in model.head.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    classifier = model.head.classifier if head == "clip" else model.head
    torch.nn.init.normal_(classifier.weight, std=0.1)  # as after a first step (zero-initialised)
    model.train()
    out = model(images())
    labels = torch.tensor([0, 1, 2, 0])
    model.loss(out, labels, (labels + 1) % 3)["loss"].backward()  # wrong B-B labels: both L_kp terms live
    assert_gradients_reach_only_trainable(model)


def test_public_prompts_of_block_0_pass_the_pre_norm(clip_backbone):
    model = lorevit.create_model("lore-no-kp", CLASSES, backbone=clip_backbone, white_box="public").eval()
    norm_pre = clip_backbone.vit.norm_pre
    assert isinstance(norm_pre, torch.nn.LayerNorm)  # CLIP's ln_pre
    prompts = model.method(clip_backbone.embed_patches(images(2))).prompts  # B, L, 8 + 2, d
    tokens = model.method.global_prompts.tokens  # L, 8, d
    torch.testing.assert_close(prompts[0, 0, :8], norm_pre(tokens[0]))
    torch.testing.assert_close(prompts[0, 1:, :8], tokens[1:])
    assert not any(k.startswith("_norm_pre") or "norm_pre" in k for k in model.method.state_dict())
    assert tokens.std().item() == pytest.approx(0.02, rel=0.25)  # N(0, 0.02)
    paper = lorevit.create_model("lore-no-kp", CLASSES, backbone=clip_backbone).eval()
    prompts = paper.method(clip_backbone.embed_patches(images(2))).prompts
    torch.testing.assert_close(prompts[0, :, :8], paper.method.global_prompts.tokens)  # the paper: no pre-norm


# ----------------------------------------------------------------------------- head: clip


def test_clip_head_shapes_and_scaling(clip_backbone):
    model = lorevit.create_model("linear", CLASSES, backbone=clip_backbone, head="clip").eval()
    head = model.head
    assert isinstance(head, ClipHead) and head.logit_scale.item() == pytest.approx(CLIP_INIT_LOGIT_SCALE)
    assert set(head.state_dict()) == {"logit_scale", "classifier.weight", "classifier.bias"}  # no projection
    assert head.classifier.in_features == CLIP_WIDTH and head.classifier.out_features == len(CLASSES)
    torch.nn.init.normal_(head.classifier.weight)
    torch.nn.init.normal_(head.classifier.bias)
    x = images(3)
    out = model(x)
    assert out.logits.shape == (3, len(CLASSES))
    cls = clip_backbone.vit.forward_head(clip_backbone.vit.forward_features(x), pre_logits=True)  # after ln_post
    torch.testing.assert_close(out.features, cls)
    projected = cls @ clip_backbone.vit.head.weight.T + clip_backbone.vit.head.bias  # CLIP's projection
    scaled = (1 / 0.07) * projected / projected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(out.logits, scaled @ head.classifier.weight.T + head.classifier.bias)
    torch.testing.assert_close(head.embed(cls).norm(dim=-1), torch.full((3,), 1 / 0.07))


def test_clip_head_on_a_non_clip_backbone_is_one_config_error(tiny_backbone):
    with pytest.raises(ConfigError, match="head: clip"):
        lorevit.create_model("linear", CLASSES, backbone=tiny_backbone, head="clip")
    no_projection = create_backbone(TINY_CLIP, "random", TINY_SIZE, **{**TINY_KWARGS, "num_classes": 0})
    with pytest.raises(ConfigError, match="projection"):
        lorevit.create_model("linear", CLASSES, backbone=no_projection, head="clip")


def test_cli_head_clip_on_a_non_clip_backbone_exits_2_writing_nothing(tmp_path, color_folder, capsys):
    from lorevit.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs", json.dumps(TINY_KWARGS),
               "--img-size", str(TINY_SIZE), "--dataset", "imagefolder", "--data-root", str(color_folder),
               "--shots", "2", "--method", "linear", "--head", "clip", "--accelerator", "cpu", "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("lorevit: error: head: clip") and TINY_VIT in err[0]
    assert not out.exists() or not any(out.iterdir())


# ----------------------------------------------------------------------------- training, adapters, ablation


def test_public_adapter_round_trip_gives_identical_logits(tmp_path, clip_backbone):
    cfg = Config(method="lore", backbone=TINY_CLIP, weights="random", backbone_kwargs=CLIP_KWARGS,
                 img_size=TINY_SIZE, white_box="public", head="clip")
    model = lorevit.create_model("lore", CLASSES, backbone=clip_backbone, knowledge=cfg.knowledge,
                                 white_box="public", head="clip")
    for p in model.trainable_parameters():  # away from the initialisation
        p.data.add_(torch.randn_like(p) * 0.05)
    model.head.logit_scale.fill_(4.0)  # as read from a CLIP checkpoint
    model.train()(images(8))  # BN running statistics move
    model.eval()
    save_adapter(model, cfg, tmp_path)
    loaded, loaded_cfg = load_adapter(tmp_path, backbone=clip_backbone)
    assert loaded_cfg.white_box == "public" and loaded_cfg.head == "clip"
    assert isinstance(loaded.method.lin, PublicLocalityInteraction) and isinstance(loaded.head, ClipHead)
    assert loaded.head.logit_scale.item() == 4.0
    x = images(3)
    torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=0)


def test_adapters_saved_before_the_keys_load_as_paper_and_linear(tmp_path, tiny_backbone):
    cfg = Config(method="lore-no-kp", backbone=TINY_VIT, weights="random", backbone_kwargs=TINY_KWARGS,
                 img_size=TINY_SIZE)
    path = save_adapter(lorevit.create_model("lore-no-kp", CLASSES, backbone=tiny_backbone), cfg, tmp_path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    old = yaml.safe_load(metadata["config"])
    del old["white_box"], old["head"]
    metadata["config"] = yaml.safe_dump(old, sort_keys=False)
    save_file(load_file(path), str(path), metadata=metadata)
    loaded, loaded_cfg = load_adapter(tmp_path, backbone=tiny_backbone)
    assert (loaded_cfg.white_box, loaded_cfg.head) == ("paper", "linear")
    assert type(loaded.method.lin).__name__ == "LocalityInteraction" and isinstance(loaded.head, torch.nn.Linear)


def test_train_public_white_box_steps_the_cosine_once_per_epoch(tmp_path, color_folder):
    from lorevit.training.run import train

    cfg = tiny_config(tmp_path / "run", color_folder, backbone=TINY_CLIP, backbone_kwargs=CLIP_KWARGS,
                      white_box="public", head="clip", epochs=2, shots=4, batch_size=4, test_subset=6)
    metrics = train(cfg)
    lrs = [row["lr"] for row in metrics["history"]]  # after each epoch's scheduler step: the next epoch's lr
    assert lrs == pytest.approx([(cfg.lr + cfg.lr_min) / 2, cfg.lr_min])
    loaded, loaded_cfg = load_adapter(tmp_path / "run")
    assert isinstance(loaded.method.kla, PublicKnowledgeLocalityAttention) and isinstance(loaded.head, ClipHead)
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["white_box"] == "public"


@pytest.mark.parametrize("white_box,interval,total", [("paper", "step", 40), ("public", "epoch", 4)])
def test_cosine_schedule_per_step_or_per_epoch(white_box, interval, total, tiny_backbone):
    import types

    from lorevit.training.module import cosine_factor, LitClassifier

    cfg = Config(white_box=white_box)
    lit = LitClassifier(lorevit.create_model("linear", CLASSES, backbone=tiny_backbone), cfg)
    lit._trainer = types.SimpleNamespace(max_epochs=4, estimated_stepping_batches=40)  # 4 epochs of 10 steps
    scheduler = lit.configure_optimizers()["lr_scheduler"]
    assert scheduler["interval"] == interval
    for _ in range(2):
        scheduler["scheduler"].step()
    lr = scheduler["scheduler"].optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(cfg.lr * cosine_factor(2, total, cfg.lr, cfg.lr_min))


def test_bench_ablation_compares_the_white_boxes(tmp_path, color_folder, capsys):
    from lorevit.cli import main

    out = tmp_path / "ablation"
    args = ["bench", "ablation", "--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs",
            json.dumps(TINY_KWARGS), "--img-size", str(TINY_SIZE), "--dataset", "imagefolder", "--data-root",
            str(color_folder), "--methods", "linear,lore", "--white-box", "paper,public", "--shots", "2",
            "--seeds", "0", "--epochs", "1", "--batch-size", "8", "--test-subset", "9", "--accelerator", "cpu",
            "--output", str(out)]
    assert main(args) == 0
    report = json.loads((out / "ablation.json").read_text())
    assert report["setup"]["white_boxes"] == ["paper", "public"]
    assert set(report["results"]) == {"linear", "lore", "lore@public"}  # the baseline once, LORE per variant
    runs = {key: out / "runs" / key / "2shot" / "seed0" for key in report["results"]}
    configs = {key: yaml.safe_load((path / "config.yaml").read_text()) for key, path in runs.items()}
    assert (configs["lore"]["white_box"], configs["lore@public"]["white_box"]) == ("paper", "public")
    indices = [json.loads((runs[key] / "indices.json").read_text())["train"] for key in ("lore", "lore@public")]
    assert indices[0] == indices[1]  # same images
    md = (out / "ablation.md").read_text()
    assert "| LORE [paper W-B] |" in md and "| LORE [public W-B] |" in md and "| B-B (linear probe) |" in md
    capsys.readouterr()
    assert main([*args[:-2], "--white-box", "paper,nope", "--output", str(tmp_path / "bad")]) == 2
    assert "--white-box" in capsys.readouterr().err
