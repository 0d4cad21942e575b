"""Shared fixtures: a tiny random ViT and a tiny generated ImageFolder dataset on disk."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:  # the fuzz suite's Hypothesis profiles (ci, nightly), registered before --hypothesis-profile is read
    import tests.reliability.fuzz  # noqa: F401
except ImportError:  # hypothesis not installed (it is in the dev extra): the fuzz suite is skipped
    pass

TINY_VIT = "vit_tiny_patch16_224"
TINY_KWARGS = {"patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}
TINY_SIZE = 32
CLASSES = ["red square", "green square", "blue square"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Caches (text features, zero-shot labels) go to a per-session temp dir; converted
    offline weights are shared with the user's cache so the real-asset tests stay fast."""
    home = os.environ.get("LOREVIT_TEST_HOME") or str(tmp_path_factory.getbasetemp() / "lorevit-home")
    monkeypatch.setenv("LOREVIT_HOME", home)
    torch.manual_seed(0)


@pytest.fixture
def tiny_backbone():
    from lorevit.backbone import create_backbone

    torch.manual_seed(0)
    return create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS)


def write_color_folder(root, per_class=(12, 6), size=TINY_SIZE, seed=0):
    """ImageFolder tree root/{train,test}/<class>/*.png: noisy images whose dominant colour is the class."""
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "test"), per_class):
        for c, name in enumerate(CLASSES):
            folder = root / split / name.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 90, size=(size, size, 3))
                pixels[..., c] += 150
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.png")
    (root / "classnames.txt").write_text("".join(f"{n.replace(' ', '_')} {n}\n" for n in CLASSES))
    return root


@pytest.fixture
def color_folder(tmp_path):
    return write_color_folder(tmp_path / "colors")


def assert_gradients_reach_only_trainable(model) -> None:
    """After a backward pass: every trainable parameter got a non-zero gradient, no frozen one got any."""
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
        else:
            assert p.grad is None, f"gradient reached frozen {name}"


def tiny_config(output, data_root, **changes):
    from lorevit.config import Config

    values = dict(backbone=TINY_VIT, weights="random", backbone_kwargs=TINY_KWARGS, img_size=TINY_SIZE,
                  dataset="imagefolder", data_root=str(data_root), shots=8, epochs=2, batch_size=8,
                  output=str(output), progress=False, knowledge="st:minilm", accelerator="cpu", weight_decay=1e-3)
    values.update(changes)
    return Config(**values)


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory):
    """A LORE adapter trained for one epoch on generated colour images (tiny random ViT): its prompts are real.
    Shared by the session's tests that need a trained adapter (tasks, predict); none of them writes into it."""
    from lorevit.training.run import train

    root = tmp_path_factory.mktemp("adapter")
    data = write_color_folder(root / "colors", per_class=(4, 2))
    train(tiny_config(root / "run", data, epochs=1, shots=4, batch_size=4))
    return root / "run"


# issue 20: a tiny random CLIP — timm's CLIP image tower with tiny shapes, and the open_clip text tower of an open_clip
# model config (knowledge: clip:<path>.json) whose vision part has the same shapes (checked by check_text_tower)
TINY_CLIP_VIT = "vit_base_patch16_clip_quickgelu_224"
TINY_CLIP_KWARGS = {"patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2, "num_classes": 64}
TINY_CLIP_CONFIG = {"embed_dim": 64, "quick_gelu": True,
                    "vision_cfg": {"image_size": TINY_SIZE, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
                    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """The knowledge spec of the tiny random CLIP text tower (an open_clip model config file)."""
    import json

    path = tmp_path_factory.mktemp("clip") / "lorevit-tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    return f"clip:{path}"
