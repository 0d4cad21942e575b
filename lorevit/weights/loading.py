"""Reading state-dict files safely and loading them strictly into models."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from lorevit.weights.errors import WeightsError

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_CONTAINER_KEYS = ("state_dict", "model", "module")


def _unwrap(obj: Any, path: Path) -> dict[str, Tensor]:
    """Unwrap ``{"state_dict": ...}`` / ``{"model": ...}`` containers down to a flat state dict."""
    for _ in range(3):  # e.g. {"model": {"state_dict": {...}}}; never loop forever
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(
            f"{path}: does not hold a state dict (got {type(obj).__name__}"
            f"{' (empty)' if isinstance(obj, Mapping) else ''}); expected a mapping of parameter "
            "names to tensors, optionally under a 'state_dict' or 'model' key"
        )
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise WeightsError(
            f"{path}: not a plain state dict: {len(bad)} entries are not tensors "
            f"(e.g. {', '.join(map(repr, bad[:3]))}); save it with torch.save(model.state_dict(), path)"
        )
    sd = {str(k): v for k, v in obj.items()}
    # DataParallel / DistributedDataParallel checkpoints: strip a "module." prefix on every key.
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors`` or ``.pt``/``.pth``/``.bin``/``.ckpt`` (on the CPU).

    Torch files are read with ``weights_only=True`` (no arbitrary unpickling). A
    ``{"state_dict": ...}`` or ``{"model": ...}`` container is unwrapped.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if not path.is_file():
        raise WeightsError(f"weights path is not a file: {path}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except Exception as exc:  # SafetensorError, OSError, ...
            raise WeightsError(
                f"{path}: cannot read as safetensors ({type(exc).__name__}: {exc}); the file is "
                "corrupt or truncated: delete it and convert/download it again"
            ) from exc
    elif suffix in TORCH_SUFFIXES:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, ...
            hint = (
                "the file is corrupt or truncated, or it pickles objects other than tensors "
                "(only weights_only loading is allowed): re-save it with "
                "torch.save(model.state_dict(), path) or convert it to .safetensors"
            )
            raise WeightsError(f"{path}: cannot read as a torch file ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); {hint}") from exc
    else:
        raise WeightsError(
            f"{path}: unsupported weights file type {suffix or '(no suffix)'!r}; use "
            f"{', '.join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)}"
        )
    return _unwrap(obj, path)


def _pos_embed_prefix_tokens(model: nn.Module) -> int:
    """How many prefix-token positions (CLS, registers) ``model.pos_embed`` holds."""
    if getattr(model, "no_embed_class", False):
        return 0
    return int(getattr(model, "num_prefix_tokens", 1))


def _grid_of(model: nn.Module, n_patch_positions: int) -> tuple[int, int]:
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if grid is not None and int(grid[0]) * int(grid[1]) == n_patch_positions:
        return int(grid[0]), int(grid[1])
    side = math.isqrt(n_patch_positions)
    if side * side != n_patch_positions:
        raise WeightsError(f"cannot infer the patch grid of {type(model).__name__} "
                           f"({n_patch_positions} positions)")
    return side, side


def resample_pos_embed_for(model: nn.Module, pos_embed: Tensor) -> Tensor:
    """Resample a (square-grid) ``pos_embed`` to ``model``'s grid with timm, keeping prefix tokens.

    Plain bicubic, no antialias: what DINOv2 / HF ``interpolate_pos_encoding`` do at run time.
    """
    from timm.layers import resample_abs_pos_embed

    target = model.state_dict()["pos_embed"]
    prefix = _pos_embed_prefix_tokens(model)
    old_n = pos_embed.shape[1] - prefix
    old_side = math.isqrt(old_n)
    if old_n <= 0 or old_side * old_side != old_n or pos_embed.shape[-1] != target.shape[-1]:
        raise WeightsError(
            f"cannot resample pos_embed {tuple(pos_embed.shape)} to {tuple(target.shape)}: "
            f"expected [1, {prefix} + side², {target.shape[-1]}]"
        )
    new_grid = _grid_of(model, target.shape[1] - prefix)
    out = resample_abs_pos_embed(
        pos_embed.float(), new_size=list(new_grid), old_size=[old_side, old_side],
        num_prefix_tokens=prefix, interpolation="bicubic", antialias=False,
    )
    return out.to(target.dtype)


def _examples(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


HEAD_PREFIX = "head."  # timm's classifier: lorevit replaces it, so a file's head (or its absence) never matters


def _mismatch(own: Mapping[str, Tensor], sd: Mapping[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape-mismatched) keys of ``sd`` against ``own``, the classifier head left out."""
    body = [k for k in own if not k.startswith(HEAD_PREFIX)]
    missing = sorted(k for k in body if k not in sd)
    unexpected = sorted(k for k in sd if k not in own and not k.startswith(HEAD_PREFIX))
    shapes = sorted(k for k in body if k in sd and tuple(sd[k].shape) != tuple(own[k].shape))
    return missing, unexpected, shapes


def family_filter(model: nn.Module, state_dict: dict[str, Tensor]) -> dict[str, Tensor] | None:
    """``state_dict`` through timm's ``checkpoint_filter_fn`` of ``model``'s family (the module that defines its
    class): raw DINO/DINOv2/MAE/open_clip/original-ViT keys → timm's. None when the family has none or it fails.
    Position embeddings are resampled as lorevit's own path does (bicubic, no antialias)."""
    import inspect
    import sys

    family = sys.modules.get(type(model).__module__)  # already imported: it defines the model's class
    filter_fn = getattr(family, "checkpoint_filter_fn", None)
    if filter_fn is None:
        return None
    options = {"interpolation": "bicubic", "antialias": False}
    accepted = inspect.signature(filter_fn).parameters
    try:
        out = filter_fn(dict(state_dict), model, **{k: v for k, v in options.items() if k in accepted})
    except Exception:  # noqa: BLE001 (a foreign layout the filter does not know: the strict report follows)
        return None
    return dict(out) if isinstance(out, Mapping) else None


def _settle_head(own: Mapping[str, Tensor], sd: dict[str, Tensor], source: str, notes: list[str]) -> None:
    """The file's classifier head: kept when it fits the model's, else dropped (the model keeps its own)."""
    file_head = {k: v for k, v in sd.items() if k.startswith(HEAD_PREFIX)}
    own_head = {k: v for k, v in own.items() if k.startswith(HEAD_PREFIX)}
    fits = file_head.keys() == own_head.keys() and all(tuple(v.shape) == tuple(own_head[k].shape)
                                                       for k, v in file_head.items())
    if fits:
        return
    for key in file_head:
        del sd[key]
    sd.update(own_head)  # the model's own (replaced by lorevit's head anyway)
    if not file_head:
        notes.append(f"{source}: the file has no classifier head (a backbone export); the model's is kept — "
                     "lorevit replaces the head anyway")
    else:
        sizes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(file_head.items()))
        notes.append(f"{source}: the file's classifier head ({sizes}) does not fit the model's and was dropped — "
                     "lorevit replaces the head anyway")


def load_into_model(model: nn.Module, state_dict: Mapping[str, Tensor], source: str) -> list[str]:
    """Load ``state_dict`` into ``model`` strictly, except for the classifier head.

    A file without a classifier head (every DINO/DINOv2/MAE/CLIP-visual export) or with one of another size
    is accepted: the file's head is dropped with a note (a :class:`WeightsNote` warning; lorevit replaces the
    head anyway). A raw checkpoint whose keys do not fit goes through timm's ``checkpoint_filter_fn`` for the
    model's family first. If the only other difference is the shape of ``pos_embed`` it is resampled to the
    model's grid (timm ``resample_abs_pos_embed``). Any other mismatch raises :class:`WeightsError` naming
    ``source`` and listing missing / unexpected keys and shape mismatches.
    Returns a list of the adjustments made (empty when the dict fit as is).
    """
    import warnings

    from lorevit.weights.errors import WeightsNote

    own = model.state_dict()
    sd = dict(state_dict)
    notes: list[str] = []
    missing, unexpected, shapes = _mismatch(own, sd)
    if missing or unexpected:  # raw keys of another layout: timm's own conversion for the family
        converted = family_filter(model, sd)
        if converted is not None and sum(map(len, _mismatch(own, converted))) < len(missing) + len(unexpected) + len(shapes):
            sd = converted
            missing, unexpected, shapes = _mismatch(own, sd)
            notes.append(f"{source}: keys converted by timm's checkpoint_filter_fn for {type(model).__name__}")
    _settle_head(own, sd, source, notes)
    if not missing and not unexpected and shapes == ["pos_embed"]:
        old = tuple(sd["pos_embed"].shape)
        sd["pos_embed"] = resample_pos_embed_for(model, sd["pos_embed"])
        notes.append(f"resampled pos_embed {old} -> {tuple(sd['pos_embed'].shape)}")
        shapes = []
    if missing or unexpected or shapes:
        parts = [f"{source}: weights do not fit {type(model).__name__}"]
        if missing:
            parts.append(f"{len(missing)} missing keys ({_examples(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_examples(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (" + "; ".join(
                f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in shapes[:5])
                + (", ..." if len(shapes) > 5 else "") + ")")
        hint = _prefix_hint(missing, unexpected)
        if hint:
            parts.append(hint)
        parts.append("check that the weights belong to this architecture")
        raise WeightsError("; ".join(parts))
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:  # dtype/other surprises the checks above did not catch
        raise WeightsError(f"{source}: {exc}") from exc
    for note in notes:
        if not note.startswith("resampled"):
            warnings.warn(note, WeightsNote, stacklevel=2)
    return notes


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str | None:
    """Spot a systematic key prefix (e.g. 'backbone.' or 'model.') between file and model."""
    if not missing or not unexpected:
        return None
    for key in unexpected:
        for m in missing:
            if key.endswith("." + m):
                prefix = key[: -len(m)]
                return f"hint: the file's keys seem to carry a {prefix!r} prefix"
            if m.endswith("." + key):
                prefix = m[: -len(key)]
                return f"hint: the model's keys carry a {prefix!r} prefix the file lacks"
    return None
