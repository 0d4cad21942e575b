"""``maple``: MaPLe — multi-modal prompts, the vision prompts coupled to the language prompts, in the first J blocks
of both frozen CLIP towers (BASELINES_CLIP.md §6; muzairkhattak/multimodal-prompt-learning:trainers/maple.py,
clip/model.py ``ResidualAttentionBlock_MaPLe``, ``VisionTransformer_MaPLe``).

Language: ``ctx`` (n_ctx, w) in the slots after SOS of ``[SOS] ctx "of a" {class} . [EOS]`` (initialised from the
first n_ctx tokens of ``ctx_init`` "a photo of a", whose other words stay fixed text; positional embeddings as any
token); before text block i = 1…J−1 positions 1…n_ctx of every class sequence are replaced by ``P_i`` (n_ctx, w;
N(0, 0.02), shared by the classes, no positional embedding). Vision: ``V_0 = F_0(ctx)``, ``V_i = F_i(P_i)``, each
``F_i = Linear(w → d)`` with bias (one per depth); ``V_0`` is appended after the patch tokens before ``ln_pre``,
``V_i`` replaces the last n_ctx tokens before image block i, and after block J−1 the prompts are ordinary tokens
carried through the remaining blocks (:meth:`lorevit.backbone.PromptedViT.forward_tokens` ``appended``). Trains
``ctx``, ``P_1…P_{J−1}``, ``F_0…F_{J−1}`` (3,555,072 parameters on ViT-B/16 at J = 9); both towers frozen.
``depth`` 0 is "no prompts anywhere" (zero-shot CLIP with the tokenised ``ctx_init {class}.``, nothing trains).

Recipe ``vit_b16_c2_ep5_batch4_2ctx``: SGD lr 0.0035, batch 4, 5 epochs, Dassl's warm-up (1 epoch, constant 1e-5)
and per-epoch cosine. Cross-dataset / domain generalisation (``…_cross_datasets``): lr 0.0026, 2 epochs, J = 3
(:data:`CROSS_DATASET_RECIPE`, :data:`CROSS_DATASET_OPTIONS`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lorevit.backbone import PromptedViT
from lorevit.errors import ConfigError
from lorevit.methods.base import MethodContext, Prompting
from lorevit.methods.clip_text import ClassPrompts, TextSideMethod, check_context
from lorevit.methods.coop import coop_family_recipe


def maple_recipe(epochs: int = 5, lr: float = 0.0035) -> dict[str, Any]:
    """MaPLe's configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml: Dassl's SGD and schedule (§0), batch 4."""
    return coop_family_recipe(epochs, batch_size=4, lr=lr)


# configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml (§6): ImageNet 16 shots, then the targets
CROSS_DATASET_RECIPE = maple_recipe(epochs=2, lr=0.0026)
CROSS_DATASET_OPTIONS = {"depth": 3}


@dataclass
class MaPLeOptions:
    depth: int = field(default=9, metadata={"help": "J, the blocks of both towers whose inputs get prompts (0: none)"})
    n_ctx: int = field(default=2, metadata={"help": "prompt tokens per block and tower"})
    ctx_init: str = field(default="a photo of a", metadata={
        "help": "the prompt text before the class name; its first n_ctx tokens initialise ctx, the rest stay fixed"})

    def __post_init__(self) -> None:
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0 (J, the prompted blocks; 0: no prompts), got {self.depth}")
        check_context(self.n_ctx, self.ctx_init, keep_rest=True)


def check_depth(depth: int, image_blocks: int, text_blocks: int, method: str = "maple") -> None:
    """J ≤ the blocks of each tower (§6: prompts enter the inputs of blocks 0…J−1 of both); one ConfigError."""
    for tower, blocks in (("image", image_blocks), ("text", text_blocks)):
        if depth > blocks:
            raise ConfigError(f"method {method}: depth {depth} exceeds the {blocks} blocks of the {tower} tower; set "
                              f"method_options depth to at most {min(image_blocks, text_blocks)}")


class MaPLe(TextSideMethod):
    """§6: the coupled prompts; ``forward`` gives the vision prompts, ``logits`` runs the prompted text tower."""

    recipe = maple_recipe()

    def __init__(self, backbone: PromptedViT, options: MaPLeOptions | None = None, context: MethodContext | None = None):
        super().__init__(backbone, options, context)
        o = self.options
        tower = self.tower.module
        check_depth(o.depth, backbone.depth, tower.num_blocks, self.name)
        self.trains = o.depth > 0
        self.prompts = ClassPrompts(tower, context.classnames, o.n_ctx, o.ctx_init, "end", keep_rest=True)
        if o.depth == 0:  # no prompts anywhere: the tokenised prompts as they are
            self.ctx = self.deep_text = None
            self.couplings = nn.ModuleList()
            return
        ctx = torch.empty(o.n_ctx, tower.width).normal_(std=0.02)
        if self.prompts.init_len:
            ctx[o.n_ctx - self.prompts.init_len:] = self.prompts.init_embedding
        self.ctx = nn.Parameter(ctx)  # n_ctx, w
        self.deep_text = nn.Parameter(torch.empty(o.depth - 1, o.n_ctx, tower.width).normal_(std=0.02))  # P_1…P_{J−1}
        self.couplings = nn.ModuleList(nn.Linear(tower.width, backbone.dim) for _ in range(o.depth))  # F_0…F_{J−1}

    @classmethod
    def check_config(cls, cfg) -> None:
        """A CLIP backbone and its text tower (TextSideMethod's check), and ``depth`` within both towers — from the
        names alone (the image tower built on the meta device, the text tower's open_clip config)."""
        super().check_config(cfg)
        from lorevit.methods.registry import options_from_config

        depth = options_from_config(cfg).depth
        blocks = tower_blocks(cfg)
        if blocks is not None:
            check_depth(depth, *blocks, cls.name)

    def vision_prompts(self) -> torch.Tensor:
        """V (J, n_ctx, d): ``V_0 = F_0(ctx)``, ``V_i = F_i(P_i)`` (§6 Coupling)."""
        text = [self.ctx, *self.deep_text]
        return torch.stack([coupling(p) for coupling, p in zip(self.couplings, text)])

    def forward(self, e0: torch.Tensor) -> Prompting:  # e0: B, M, d
        return Prompting(None, appended=self.vision_prompts() if self.ctx is not None else None)

    def replace_text_prompts(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Before text block i (1…J−1): rows 1…n_ctx of every sequence (B, 77, w) replaced by P_i (§6 Language)."""
        if i >= self.options.depth:
            return x
        n = self.options.n_ctx
        prompts = self.deep_text[i - 1].to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        return torch.cat([x[:, :1], prompts, x[:, 1 + n:]], dim=1)

    def text_features(self) -> torch.Tensor:
        """C, D: the normalised class text features of the prompted text tower."""
        if self.ctx is None:
            return self.encode_prompts(self.prompts, self.tower.module.token_embedding(self.prompts.tokens))
        hook = self.replace_text_prompts if self.options.depth > 1 else None
        return self.encode_prompts(self.prompts, self.prompts.assemble(self.ctx), before_block=hook)

    def logits(self, features: torch.Tensor) -> torch.Tensor:  # B, d → B, C
        return self.logit_scale * self.image_features(features) @ self.text_features().t().to(features.dtype)


def tower_blocks(cfg) -> tuple[int, int] | None:
    """(image blocks, text blocks) of a config's backbone and ``clip:`` knowledge without loading weights; None when
    either cannot be told from the names (building the model then reports what is wrong)."""
    import open_clip
    import timm

    from lorevit.knowledge import register_config_file, resolve_knowledge

    try:
        knowledge = resolve_knowledge(cfg.knowledge, cfg.backbone, cfg.weights)
        text = open_clip.get_model_config(register_config_file(knowledge.removeprefix("clip:").partition("@")[0]))
        kwargs = dict(cfg.backbone_kwargs or {}, **({"img_size": cfg.img_size} if cfg.img_size else {}))
        with torch.device("meta"):
            vit = timm.create_model(cfg.backbone.partition(".")[0], pretrained=False, **kwargs)
        return len(vit.blocks), int(text["text_cfg"]["layers"])
    except Exception:  # noqa: BLE001 — an unknown name is the backbone's / knowledge's own error, reported when built
        return None
