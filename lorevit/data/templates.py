"""The per-dataset zero-shot text templates (BASELINES_CLIP §1; issue 20 §1), keyed by CoOp's dataset class names
as the papers' code writes them. Each registry entry (:class:`lorevit.data.registry.DatasetSpec`) takes its own
from here (``template``, ``prograd_template``), and :func:`lorevit.data.registry.template_for` reads them back by
lorevit's dataset name; the text-side methods (``lorevit.methods.clip_text``) import the tables from here."""
from __future__ import annotations

DEFAULT_TEMPLATE = "a photo of a {}."  # CLIP's plain prompt; every dataset without a template of its own

# KaiyangZhou/CoOp:trainers/zsclip.py CUSTOM_TEMPLATES (CoOp's dataset names; same in CLIP-Adapter) — §1
CUSTOM_TEMPLATES = {
    "OxfordPets": "a photo of a {}, a type of pet.", "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.", "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.", "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.", "SUN397": "a photo of a {}.", "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.", "ImageNet": "a photo of a {}.",
}
# BeierZhu/Prompt-align:ProGrad.public/trainers/prograd.py: ProGrad's variants (the others as CUSTOM_TEMPLATES) — §1
PROGRAD_TEMPLATES = {
    **CUSTOM_TEMPLATES, "OxfordPets": "a type of pet, a photo of a {}.", "OxfordFlowers": "a type of flower, a photo of a {}.",
    "FGVCAircraft": "a type of aircraft, a photo of a {}.", "DescribableTextures": "a texture of {}.",
    "Food101": "a type of food, a photo of {}.",
}
TEMPLATE_FAMILIES = ("coop", "prograd")


def coop_templates(coop_name: str) -> dict[str, str]:
    """The registry fields of the CoOp dataset ``coop_name`` (``OxfordPets`` …): ``template`` (CoOp's
    CUSTOM_TEMPLATES entry) and ``prograd_template`` (ProGrad's), for ``register(DatasetSpec(..., **this))``."""
    return {"template": CUSTOM_TEMPLATES[coop_name], "prograd_template": PROGRAD_TEMPLATES[coop_name]}
