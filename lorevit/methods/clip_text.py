"""What the text-side CLIP baselines share (BASELINES_CLIP.md §0–§1; issue 20): the zero-shot templates (the tables
live in :mod:`lorevit.data.templates`, each dataset's own in its registry entry), the CLIP
text tower of the backbone run on token embeddings inside the step, class prompts tokenised once per class list
with learned context slots, and the head that asks its method for the logits.

The tower is :class:`lorevit.knowledge.ClipTextTower` (open_clip's own modules: token embedding, positional
embedding, causal transformer, ``ln_final``, the EOT row, the projection), held outside the method's state
(:class:`~lorevit.methods.base.Frozen`): an adapter stores only the learned tensors, and the prompt buffers
(SOS, class-name and EOS embeddings) are rebuilt from whatever class names the model is built with, so a trained
context can be re-targeted to other classes (base-to-novel, cross-dataset).
"""
from __future__ import annotations

from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.data.templates import CUSTOM_TEMPLATES, DEFAULT_TEMPLATE, PROGRAD_TEMPLATES  # noqa: F401 (re-exported)
from lorevit.errors import ConfigError
from lorevit.methods.base import Frozen, Method, MethodContext


def prompt_names(classnames: Sequence[str]) -> list[str]:
    """Class names as they go into prompts: ``_`` → space (CoOp's datasets, §1)."""
    return [name.replace("_", " ") for name in classnames]


def check_template(template: str) -> str:
    if template.count("{}") != 1:
        raise ValueError(f"template must hold one {{}} for the class name, got {template!r}")
    return template


def check_context(n_ctx: int, ctx_init: str, keep_rest: bool = False) -> None:
    """CoOp-family options: M ≥ 1 learned context vectors, at least as many as ``ctx_init``'s words (``keep_rest``,
    MaPLe: any number; the words past the M slots stay fixed text)."""
    if n_ctx < 1:
        raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
    if len(ctx_init.split()) > n_ctx and not keep_rest:  # each word is at least one token (checked exactly when built)
        raise ValueError(f"ctx_init {ctx_init!r} has more words than n_ctx={n_ctx} slots; set n_ctx to at "
                         f"least {len(ctx_init.split())} or shorten ctx_init")


def clip_tower(context: MethodContext, method: str):
    """The frozen open_clip text tower matching the backbone (``knowledge: clip:auto``); one KnowledgeError
    (a ``lorevit: error:`` line) for a backbone without one or another CLIP's tower."""
    from lorevit.knowledge import ClipTextTower, KnowledgeError, check_text_tower

    try:
        check_text_tower(context.backbone, context.knowledge or "")
    except KnowledgeError as err:
        raise KnowledgeError(f"method {method}: {err}") from None
    tower = context.text_tower()
    if not isinstance(tower, ClipTextTower):
        raise KnowledgeError(f"method {method} needs an open_clip text tower (knowledge: clip:auto)")
    return tower


def clip_image_features(backbone: PromptedViT, features: torch.Tensor) -> torch.Tensor:
    """CLIP's image embedding, not normalised: the frozen projection (timm's ``head``) of ``ln_post(CLS)``: B, d → B, D."""
    return backbone.vit.head(features)


class ClassPrompts(nn.Module):
    """The class prompts ``[SOS] v_1 … v_M [CLASS] . [EOS]`` of CoOp (§2), tokenised once per class list.

    The strings are ``"X X … X {class}."`` with the placeholders where the learned slots go (the last ``k`` of
    them hold ``init_words`` instead, "a photo of a", so that untrained they are the zero-shot prompt); the
    buffers ``prefix`` (C, 1, w: SOS) and ``suffix`` (C, 76−M, w: class tokens, ".", EOS, padding) are the
    frozen token embeddings around the slots, not persistent (rebuilt from the class names, never saved).
    ``position`` end | middle | front puts the class tokens after, between the halves of, or before the context.
    ``keep_rest`` (MaPLe §6, position end): ``init_words`` may have more tokens than the M slots; the first M are
    learned and the rest stay fixed text before the class name ("a photo" | "of a {class}.").
    """

    def __init__(self, tower, classnames: Sequence[str], n_ctx: int, init_words: str = "", position: str = "end",
                 suffix_text: str = ".", keep_rest: bool = False):
        super().__init__()
        if position not in ("end", "middle", "front"):
            raise ValueError(f"class_token_position must be end, middle or front, got {position!r}")
        self.n_ctx, self.position = n_ctx, position
        words = init_words.strip()
        encode = tower.tokenizer.tokenizer.encode if hasattr(tower.tokenizer, "tokenizer") else tower.tokenizer.encode
        self.init_len = len(encode(words)) if words else 0
        self.fixed_len = max(0, self.init_len - n_ctx) if keep_rest else 0  # init tokens after the slots, fixed
        if self.fixed_len and position != "end":
            raise ValueError("ctx_init longer than n_ctx keeps its last words as fixed text: class_token_position end only")
        self.init_len -= self.fixed_len
        if self.init_len > n_ctx:
            raise ValueError(f"ctx_init {init_words!r} is {self.init_len} tokens, more than n_ctx={n_ctx} slots; "
                             f"set n_ctx to at least {self.init_len} or shorten ctx_init")
        names = prompt_names(classnames)
        self.name_lens = [len(encode(name)) for name in names]
        context = " ".join(["X"] * (n_ctx - self.init_len) + ([words] if words else []))
        texts = [f"{context} {name}{suffix_text}".strip() for name in names]
        self.tokens = tower.tokenize(texts)  # input_ids C, 77: the EOT index of every prompt
        length = self.tokens["input_ids"].shape[1]
        longest = max((n for n in self.name_lens), default=0) + n_ctx + self.fixed_len + 2 + len(encode(suffix_text))
        if longest > length:
            raise ValueError(f"a prompt of n_ctx={n_ctx} slots plus the longest class name needs {longest} tokens; the "
                             f"text tower takes {length}: lower n_ctx or shorten the class names")
        with torch.no_grad():
            embedding = tower.token_embedding(self.tokens)  # C, 77, w
        self.register_buffer("prefix", embedding[:, :1].clone(), persistent=False)  # C, 1, w
        self.register_buffer("suffix", embedding[:, 1 + n_ctx:].clone(), persistent=False)  # C, 76 − M, w
        # the init words' embeddings: the last k slots of an initialised context (1, M, w rows)
        self.register_buffer("init_embedding", embedding[0, 1 + n_ctx - self.init_len: 1 + n_ctx].clone(),
                             persistent=False)
        self._ids = self.tokens["input_ids"]

    @property
    def num_classes(self) -> int:
        return self.prefix.shape[0]

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self.tokens = {"input_ids": self._ids.to(self.prefix.device)}
        self._ids = self.tokens["input_ids"]
        return self

    def assemble(self, ctx: torch.Tensor) -> torch.Tensor:
        """The C prompt sequences (C, 77, w) around ``ctx`` (M, w shared, or C, M, w class-specific)."""
        C = self.num_classes
        ctx = ctx.unsqueeze(0).expand(C, -1, -1) if ctx.dim() == 2 else ctx  # C, M, w
        ctx = ctx.to(self.prefix.dtype)
        if self.position == "end":
            return torch.cat([self.prefix, ctx, self.suffix], dim=1)
        rows = []
        half = self.n_ctx // 2
        for i, n in enumerate(self.name_lens):  # CoOp's loop: each class name has its own token count
            name, rest = self.suffix[i: i + 1, :n], self.suffix[i: i + 1, n:]
            if self.position == "middle":
                rows.append(torch.cat([self.prefix[i: i + 1], ctx[i: i + 1, :half], name, ctx[i: i + 1, half:], rest], 1))
            else:
                rows.append(torch.cat([self.prefix[i: i + 1], name, ctx[i: i + 1], rest], dim=1))
        return torch.cat(rows, dim=0)


class TextMethodHead(nn.Module):
    """The task head of a text-side method: the method's ``logits(features)``. It holds the method outside its
    own state (the method's tensors are saved once, under ``method.*``)."""

    def __init__(self, method: "TextSideMethod"):
        super().__init__()
        self._method = (method,)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        return self._method[0].logits(features)


class TextSideMethod(Method):
    """A method whose head scores CLIP image embeddings against class text features (kind 3).

    ``encodes_prompts``: the text tower runs inside every forward (learned prompts or a LoRA'd tower: the C class
    sequences once per batch, CoCoOp's B·C); False where the text features are constants (CLIP-Adapter)."""

    encodes_prompts: ClassVar[bool] = True

    def __init__(self, backbone: PromptedViT, options=None, context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        context = context or MethodContext(backbone)
        if not context.classnames:
            raise ConfigError(f"method {self.name}: needs the class names (they are its prompts)")
        self.tower = Frozen(clip_tower(context, self.name))
        self._backbone = (backbone,)  # the frozen ViT's projection, not this method's
        self.register_buffer("logit_scale", self.tower.module.model.logit_scale.detach().exp().clone(),
                             persistent=False)  # the checkpoint's (OpenAI: 100)

    @classmethod
    def check_config(cls, cfg) -> None:
        """A text-side method needs a CLIP backbone and its own text tower (names only: no weights loaded)."""
        from lorevit.knowledge import KnowledgeError, check_matching_towers

        fix = ("a text-side CLIP method needs a timm CLIP backbone (vit_*_clip_*, e.g. vit_base_patch16_clip_quickgelu_224"
               ".openai) and its own open_clip text tower: set knowledge: clip:auto")
        if not cfg.knowledge.startswith("clip:"):
            raise KnowledgeError(f"method {cls.name}: knowledge {cfg.knowledge!r} is no CLIP text tower; {fix}")
        try:
            if cfg.knowledge != "clip:auto" and not check_matching_towers(cfg.backbone, cfg.weights, cfg.knowledge):
                raise KnowledgeError(f"backbone {cfg.backbone!r} has no CLIP text tower; {fix}")
        except KnowledgeError as err:
            raise KnowledgeError(f"method {cls.name}: {err}") from None

    @property
    def backbone(self) -> PromptedViT:
        return self._backbone[0]

    def build_head(self, context: MethodContext) -> nn.Module:
        return TextMethodHead(self)

    def image_features(self, features: torch.Tensor) -> torch.Tensor:
        """L2-normalised CLIP image embedding: B, d → B, D."""
        return F.normalize(clip_image_features(self.backbone, features), dim=-1)

    def encode_prompts(self, prompts: ClassPrompts, embeddings: torch.Tensor, before_block=None) -> torch.Tensor:
        """Normalised text features (N, D) of assembled prompt sequences (N, 77, w), N a multiple of C;
        ``before_block(i, x)`` changes the input of text block i ≥ 1 (:meth:`ClipTextTower.forward`)."""
        ids = prompts.tokens["input_ids"]
        repeat = embeddings.shape[0] // ids.shape[0]
        return self.tower(embeddings, {"input_ids": ids.repeat(repeat, 1)}, before_block=before_block)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
