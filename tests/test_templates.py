"""Issue 20 §1: the per-dataset zero-shot templates in the dataset registry — each entry knows CoOp's and ProGrad's
template, ``zero-shot`` and the text-side methods use the dataset's by default (an explicit ``template`` wins), and
the template used is recorded (config.yaml's method_options, metrics.json)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from lorevit.config import Config
from lorevit.data import get_spec, template_for
from lorevit.data.templates import CUSTOM_TEMPLATES, PROGRAD_TEMPLATES
from lorevit.factory import apply_dataset_template, dataset_method_options

# lorevit's name (or an alias) → CoOp's dataset class name (BASELINES_CLIP §1)
COOP_NAMES = {"imagenet": "ImageNet", "caltech101": "Caltech101", "oxford-pets": "OxfordPets",
              "stanford-cars": "StanfordCars", "flowers102": "OxfordFlowers", "food101": "Food101",
              "fgvc-aircraft": "FGVCAircraft", "sun397": "SUN397", "dtd": "DescribableTextures", "eurosat": "EuroSAT",
              "ucf101": "UCF101"}


def test_every_coop_dataset_entry_knows_its_templates():
    for name, coop in COOP_NAMES.items():
        assert get_spec(name).template == CUSTOM_TEMPLATES[coop]
        assert template_for(name) == CUSTOM_TEMPLATES[coop] and template_for(name, "prograd") == PROGRAD_TEMPLATES[coop]
    # by hand, for the ones that differ from the plain prompt (CoOp's zsclip.py, ProGrad's prograd.py)
    assert template_for("pets") == "a photo of a {}, a type of pet."  # an alias
    assert template_for("oxford-pets@base", "prograd") == "a type of pet, a photo of a {}."  # a view
    assert template_for("dtd") == "{} texture." and template_for("dtd", "prograd") == "a texture of {}."
    assert template_for("eurosat", "prograd") == "a centered satellite photo of {}."  # ProGrad keeps CoOp's
    for target in ("imagenet-v2", "imagenet-sketch", "imagenet-a", "imagenet-r"):
        assert template_for(target) == "a photo of a {}."  # ImageNet's
    assert template_for("vtab-dtd") == "a photo of a {}." and template_for("imagefolder") == "a photo of a {}."
    assert template_for("not-a-dataset") == "a photo of a {}."
    with pytest.raises(ValueError, match="template family"):
        template_for("dtd", "clip")


def test_methods_take_the_datasets_template_unless_one_is_given():
    assert dataset_method_options("zero-shot", "food101", {}) == {"template": "a photo of {}, a type of food."}
    assert dataset_method_options("clip-adapter", "dtd", {"alpha": 0.5}) == {"alpha": 0.5, "template": "{} texture."}
    assert dataset_method_options("prograd", "dtd", None)["template"] == "a texture of {}."  # ProGrad's own variant
    assert dataset_method_options("zero-shot", "dtd", {"template": "art of {}."}) == {"template": "art of {}."}
    assert dataset_method_options("coop", "dtd", {}) == {} and dataset_method_options("lore", "dtd", {}) == {}

    cfg = apply_dataset_template(Config(method="clip-adapter", dataset="eurosat"))
    assert cfg.method_options == {"template": "a centered satellite photo of {}."}
    assert "a centered satellite photo of {}." in cfg.to_yaml()  # recorded in config.yaml as any key
    head = apply_dataset_template(Config(method="lore", dataset="oxford-pets", head="text"))
    assert head.text_template == "a photo of a {}, a type of pet." and head.method_options == {}
    given = apply_dataset_template(Config(method="lore", dataset="oxford-pets", head="text", text_template="x {}"))
    assert given.text_template == "x {}"
    assert apply_dataset_template(Config(method="lore", dataset="dtd")) == Config(method="lore", dataset="dtd")


def _eurosat(root, classes=("AnnualCrop", "Forest", "River"), per_class=6):
    """EuroSAT's fallback layout (``2750/<Class>/<Class>_<n>.jpg``, a seeded 70/30 split)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        folder = root / "2750" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 90, (32, 32, 3))
            pixels[..., c] += 150
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}_{i}.jpg")
    return root


@pytest.mark.parametrize("given", [None, "a satellite image of {}."])
def test_zero_shot_run_uses_and_records_the_datasets_template(tiny_clip, tmp_path, given):
    pytest.importorskip("open_clip")
    import torch
    import torch.nn.functional as F

    from lorevit.knowledge import class_features
    from lorevit.training.run import train

    from .conftest import TINY_CLIP_KWARGS, TINY_CLIP_VIT, TINY_SIZE

    cfg = Config(method="zero-shot", backbone=TINY_CLIP_VIT, weights="random", backbone_kwargs=TINY_CLIP_KWARGS,
                 img_size=TINY_SIZE, knowledge=tiny_clip, dataset="eurosat", data_root=str(_eurosat(tmp_path / "es")),
                 shots=2, output=str(tmp_path / "run"), progress=False, accelerator="cpu",
                 method_options={"template": given} if given else {})
    metrics = train(cfg)
    template = given or "a centered satellite photo of {}."
    assert metrics["template"] == template
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert recorded["method_options"] == {"template": template}
    # the classifier is built from that template: the run's model scores as CLIP with those prompts
    from lorevit.factory import create_model

    model = create_model("zero-shot", ["Annual Crop Land", "Forest", "River"], backbone=TINY_CLIP_VIT, weights="random",
                         img_size=TINY_SIZE, backbone_kwargs=TINY_CLIP_KWARGS, knowledge=tiny_clip,
                         method_options=recorded["method_options"])
    images = torch.randn(2, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        image = F.normalize(model.backbone.vit.head(model.backbone(images)), dim=-1)
        text = F.normalize(class_features(tiny_clip, ["Annual Crop Land", "Forest", "River"], template), dim=-1)
        torch.testing.assert_close(model.eval()(images).logits, 100.0 * image @ text.t(), atol=1e-4, rtol=1e-4)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["template"] == template
