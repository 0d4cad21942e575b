"""``lorevit export``: a trained adapter and its frozen ViT as one ONNX file for deployment (issue 12 §2).

    lorevit export --adapter runs/demo --format onnx --output lore.onnx [--opset 17] [--tolerance 1e-4]

The file holds the whole inference graph — patch embedding → LIN → PG → prompted ViT → head —
with one input ``images`` (batch, 3, S, S): RGB in [0, 1] resized to S = the adapter's img_size
(shorter side, bicubic, then centre crop) and normalised by the backbone's mean and std, and one
output ``logits`` (batch, C). The batch axis is dynamic; the image size is the adapter's.
Its ``metadata_props`` carry the class names (JSON list, in logit order) and the adapter's
provenance (method, backbone, weights, img_size, mean, std, sha256 of the adapter file, ...).

Before anything is written the exported graph is run with onnxruntime on a seeded batch of 3
images and on its first image alone (the export itself traces batch 1), and its logits are
compared with PyTorch's: the largest absolute difference is printed, stored in the metadata and
in a sidecar ``FILE.onnx.json``; above ``--tolerance`` the export fails and writes nothing.

The graph is traced by torch's TorchScript-based exporter (``dynamo=False``): the torch.export-based
one needs the ``onnxscript`` package. LIN's k-nearest-neighbour graph exports as ONNX ``TopK``
(opset ≥ 10) and the fused attention as plain ops (opset ≥ 14); the default opset is 17 (one
``LayerNormalization`` node per norm). While tracing, LIN records its W_mix·W1 fold as graph ops on
the weights instead of reading its eager-mode cache (see ``LocalityInteraction._folded_mix_w1``).
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lorevit.errors import UserError
from lorevit.utils.io import atomic_write, file_sha256, write_json

FORMATS = ("onnx", "timm")  # timm: a merged adapter as a plain timm ViT's safetensors (issue 19 §1)
FORMAT_TAG = "lorevit.onnx/1"
DEFAULT_OPSET = 17
MIN_OPSET = 14  # scaled_dot_product_attention
TOLERANCE = 1e-4
MERGE_TOLERANCE = 1e-4  # merged vs unmerged logits in fp32 (BASELINES_VISION.md §A1 invariant 2)
TIMM_FORMAT_TAG = "lorevit.timm/1"
CHECK_BATCH = 3  # the check's batch; its first image alone is checked too (batch 1)
INPUT, OUTPUT = "images", "logits"


class ExportError(UserError, ValueError):
    """An export that cannot be made or does not match PyTorch; the message says why and what to do."""


@dataclass
class ExportResult:
    path: Path  # the .onnx file
    report: Path  # the sidecar JSON
    max_abs_diff: float  # onnxruntime vs PyTorch logits, over the checked batch sizes
    tolerance: float
    check_batch_sizes: list[int]
    opset: int
    size_bytes: int
    seconds: float  # export + check
    metadata: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path), "report": str(self.report)}


def require_onnx():
    """(onnx, onnxruntime), or one ExportError naming the install command."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ExportError(f"exporting to ONNX needs the `{err.name or 'onnx'}` package: "
                          "pip install 'lorevit[onnx]' (or pip install onnx onnxruntime)") from err
    return onnx, onnxruntime


def logits_module(model):
    """The classifier as a module from images (B, 3, S, S) to logits (B, C): what the file computes."""
    from torch import nn

    class Logits(nn.Module):
        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        def forward(self, images):  # B, 3, S, S → B, C
            return self.classifier(images).logits

    return Logits(model).eval()


def onnx_metadata(model, cfg, adapter_file: Path, opset: int) -> dict[str, str]:
    """What a deployment needs beside the graph: class names, preprocessing and provenance (all strings)."""
    import torch

    from lorevit.adapters.format import backbone_fingerprint, weights_label
    from lorevit.version import __version__

    from lorevit.data.transforms import eval_transform_description

    data = model.backbone.data_config
    steps = eval_transform_description(cfg.img_size, cfg.transforms)  # the run's own eval transform
    return {
        "format": FORMAT_TAG,
        "classnames": json.dumps(model.classnames),
        "method": cfg.method,
        "backbone": model.backbone.name,
        # the weights by name or base name and by fingerprint: no machine path in a file that is shipped (issue 25 §4)
        "weights": json.dumps(None if model.backbone.weights is None else weights_label(model.backbone.weights)),
        "weights_sha256": backbone_fingerprint(model.backbone),
        "img_size": str(cfg.img_size),
        "mean": json.dumps([float(v) for v in data["mean"]]),
        "std": json.dumps([float(v) for v in data["std"]]),
        "preprocess": f"RGB in [0, 1]; resize {steps['resize']}; crop {steps['crop']}; (x - mean) / std; layout "
                      "NCHW float32",
        "transforms": cfg.transforms,
        "input": f"{INPUT}: float32 (batch, 3, {cfg.img_size}, {cfg.img_size})",
        "output": f"{OUTPUT}: float32 (batch, {model.num_classes}), in the order of classnames",
        "knowledge": cfg.knowledge or "",
        "dataset": cfg.dataset,
        "adapter_sha256": file_sha256(adapter_file),
        "lorevit_version": __version__,
        "torch_version": torch.__version__,
        "opset": str(opset),
    }


def trace_to_onnx(model, img_size: int, opset: int) -> bytes:
    """The serialised ONNX model of ``model`` (images → logits), traced at batch 1 with a dynamic batch axis."""
    import torch

    example = torch.randn(1, 3, img_size, img_size, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # Expected: the legacy exporter's deprecation note, and tracer notes about shapes that are
        # fixed by the image size (token count, blocks); the batch stays dynamic, and the check proves it.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(logits_module(model), (example,), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT], output_names=[OUTPUT], do_constant_folding=True,
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    return buffer.getvalue()


def with_metadata(model_bytes: bytes, metadata: dict[str, str]) -> bytes:
    onnx, _ = require_onnx()
    proto = onnx.load_from_string(model_bytes)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = "lorevit: images -> logits; see metadata_props for classnames and preprocessing"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def compare_with_torch(model_bytes: bytes, model, img_size: int, batch: int = CHECK_BATCH,
                       seed: int = 0) -> tuple[float, list[int]]:
    """Largest |logits_onnxruntime − logits_torch| on a seeded batch of ``batch`` images and on its
    first image alone; returns (difference, batch sizes checked)."""
    import numpy as np
    import torch

    _, ort = require_onnx()
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    images = torch.randn(batch, 3, img_size, img_size, generator=torch.Generator().manual_seed(seed))  # B, 3, S, S
    with torch.no_grad():
        expected = model(images).logits.numpy()  # B, C
    sizes = sorted({1, batch})
    worst = 0.0
    for size in sizes:
        got = session.run([OUTPUT], {INPUT: images[:size].numpy()})[0]  # size, C
        if got.shape != expected[:size].shape:
            raise ExportError(f"the exported graph gives logits of shape {got.shape} for a batch of {size}, "
                              f"expected {expected[:size].shape}")
        worst = max(worst, float(np.abs(got - expected[:size]).max()))
    return worst, sizes


def check_batch(img_size: int, batch: int = CHECK_BATCH, seed: int = 0):
    import torch

    return torch.randn(batch, 3, img_size, img_size, generator=torch.Generator().manual_seed(seed))  # B, 3, S, S


def merged_model(model, img_size: int, tolerance: float = MERGE_TOLERANCE) -> float:
    """Fold ``model``'s method into its ViT (``model.merge()``, in place) and return the largest |logits
    difference| merged vs unmerged on a seeded batch; a method that cannot merge is its MergeError (one line),
    a difference above ``tolerance`` an ExportError. Nothing is written either way."""
    import torch

    images = check_batch(img_size)
    with torch.no_grad():
        before = model(images).logits
        model.merge()
        difference = float((model(images).logits - before).abs().max())
    if not difference <= tolerance:
        raise ExportError(f"the merged model's logits differ from the unmerged ones by {difference:.3g} > "
                          f"{tolerance:g}; nothing was written")
    return difference


def export_onnx(adapter: str | Path, output: str | Path, opset: int = DEFAULT_OPSET,
                tolerance: float = TOLERANCE, merge: bool = False) -> ExportResult:
    """Export ``adapter`` (a run directory or its adapter.safetensors) to ``output`` (.onnx), checked
    against PyTorch with onnxruntime; writes ``output`` and ``output + '.json'`` or nothing at all.
    ``merge``: fold the method into the ViT's weights first (lora, ssf, bitfit, ...): the graph is the plain ViT's."""
    require_onnx()
    from lorevit.adapters.hub import locate_adapter
    from lorevit.factory import load_adapter

    output = Path(output)
    if output.is_dir():
        raise ExportError(f"--output {output} is a directory; give a file name such as {output / 'model.onnx'}")
    if not MIN_OPSET <= opset <= _max_opset():
        raise ExportError(f"--opset {opset} is not supported: use {MIN_OPSET}..{_max_opset()} (default {DEFAULT_OPSET})")
    if not tolerance > 0:
        raise ExportError(f"--tolerance must be positive, got {tolerance}")
    start = time.perf_counter()
    model, cfg = load_adapter(adapter)
    adapter_file = locate_adapter(adapter)  # a run dir, a hub-style folder, a file or a Hub repo id
    metadata = onnx_metadata(model, cfg, adapter_file, opset)
    if merge:
        metadata.update(merged="true", merge_max_abs_diff_logits=f"{merged_model(model, cfg.img_size):.6g}")
    graph = trace_to_onnx(model, cfg.img_size, opset)
    difference, sizes = compare_with_torch(graph, model, cfg.img_size)
    if not difference <= tolerance:
        raise ExportError(f"onnxruntime's logits differ from PyTorch's by {difference:.3g} > tolerance {tolerance:g} "
                          f"(opset {opset}); nothing was written. Try another --opset, or --tolerance if acceptable")
    metadata.update(max_abs_diff_logits=f"{difference:.6g}", checked_batch_sizes=json.dumps(sizes))
    graph = with_metadata(graph, metadata)
    atomic_write(output, lambda tmp: tmp.write_bytes(graph))
    result = ExportResult(output, output.with_name(output.name + ".json"), difference, tolerance, sizes, opset,
                          len(graph), time.perf_counter() - start, metadata)
    write_json(result.report, {**result.to_dict(), "adapter": str(adapter)})
    return result


@dataclass
class TimmExportResult:
    path: Path  # the .safetensors file: a plain timm ViT's state dict, the task head as its ``head``
    report: Path  # the sidecar JSON: how to load it, the checks
    create_model: dict  # the keyword arguments of timm.create_model that load it
    max_abs_diff: float  # timm (loaded from the file) vs the merged lorevit model
    merge_max_abs_diff: float  # merged vs unmerged lorevit model
    size_bytes: int
    seconds: float

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path), "report": str(self.report)}


def timm_state_dict(model, images) -> dict:
    """The merged model as one timm ViT's state dict: the ViT's own tensors, its ``head`` the task head
    (``head.weight`` (C, d), ``head.bias`` (C)). Only a linear task head and no prompt tokens fit timm's ViT."""
    import torch
    from torch import nn

    with torch.no_grad():
        prompts = model.method(model.backbone.embed_patches(images)).prompts
    if not isinstance(model.head, nn.Linear) or prompts is not None:
        raise ExportError(f"--format timm needs a linear task head and no prompt tokens; method {model.method.name!r} "
                          f"with head {type(model.head).__name__} has no plain timm form: use --format onnx")
    if not isinstance(getattr(model.backbone.vit, "head", None), (nn.Linear, nn.Identity)):
        raise ExportError("--format timm: this ViT's head is not a classifier timm would replace; use --format onnx")
    state = {k: v for k, v in model.backbone.vit.state_dict().items() if not k.startswith("head.")}
    state.update({f"head.{k}": v for k, v in model.head.state_dict().items()})
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def timm_arguments(model, cfg, file: Path) -> dict:
    """What ``timm.create_model`` needs to load the file as this classifier (JSON-able)."""
    name = model.backbone.name
    return {"model_name": name, "pretrained": True,
            "pretrained_cfg_overlay": {"file": str(file), "num_classes": model.num_classes},
            "num_classes": model.num_classes, "img_size": cfg.img_size, **(cfg.backbone_kwargs or {})}


def export_timm(adapter: str | Path, output: str | Path, tolerance: float = TOLERANCE) -> TimmExportResult:
    """Merge ``adapter``'s method into its ViT and write the plain timm ViT (+ the task head as ``head``) to
    ``output`` (.safetensors), which ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(
    file=output, num_classes=C), num_classes=C, img_size=S)`` loads. Before it is written the file is loaded that
    way and its logits compared with lorevit's (≤ ``tolerance``); writes ``output`` + ``output.json`` or nothing."""
    import timm
    import torch
    from safetensors.torch import save_file

    from lorevit.factory import load_adapter

    output = Path(output)
    if output.is_dir():
        raise ExportError(f"--output {output} is a directory; give a file name such as {output / 'model.safetensors'}")
    if output.suffix != ".safetensors":
        raise ExportError(f"--output {output}: --format timm writes safetensors; name it {output.stem}.safetensors")
    if not tolerance > 0:
        raise ExportError(f"--tolerance must be positive, got {tolerance}")
    start = time.perf_counter()
    model, cfg = load_adapter(adapter)
    model = model.float().eval()
    merge_difference = merged_model(model, cfg.img_size)
    images = check_batch(cfg.img_size)
    state = timm_state_dict(model, images)
    with torch.no_grad():
        expected = model(images).logits
    metadata = {"format": TIMM_FORMAT_TAG, "classnames": json.dumps(model.classnames), "method": cfg.method,
                "backbone": model.backbone.name, "img_size": str(cfg.img_size),
                # what rebuilds the classifier from the file alone (read_timm_export; lorevit app --adapter FILE)
                "backbone_kwargs": json.dumps(cfg.backbone_kwargs or {}), "transforms": cfg.transforms}

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.stem}.", suffix=".safetensors")  # timm reads
    os.close(fd)  # safetensors by the file name's suffix
    tmp = Path(name)
    try:
        save_file(state, str(tmp), metadata=metadata)
        loaded = timm.create_model(**timm_arguments(model, cfg, tmp)).eval()
        with torch.no_grad():
            difference = float((loaded(images) - expected).abs().max())
        if not difference <= tolerance:
            raise ExportError(f"timm's logits from the exported file differ from lorevit's by {difference:.3g} > "
                              f"{tolerance:g}; nothing was written")
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    arguments = timm_arguments(model, cfg, output)
    result = TimmExportResult(output, output.with_name(output.name + ".json"), arguments, difference, merge_difference,
                              output.stat().st_size, time.perf_counter() - start)
    write_json(result.report, {**result.to_dict(), "adapter": str(adapter), "classnames": model.classnames})
    return result


@dataclass
class TimmExport:
    """A merged timm export read back (:func:`read_timm_export`): what rebuilds its classifier, no adapter needed."""

    path: Path  # the .safetensors file
    method: str  # the method that was merged (lora, ssf, bitfit, full, linear)
    backbone: str  # the timm name
    img_size: int
    classnames: list[str]  # in logit order
    backbone_kwargs: dict  # timm.create_model's extra keyword arguments (depth, ... for a small ViT)
    transforms: str  # the run's eval-transform preset

    def vit(self, dynamic_img_size: bool = False):
        """The merged ViT as a frozen :class:`~lorevit.backbone.PromptedViT` (its ``head`` holds the task head);
        ``dynamic_img_size``: built for any input size (the position embeddings resampled per input)."""
        from lorevit.backbone import create_backbone
        from lorevit.weights.errors import WeightsError

        extra = {"dynamic_img_size": True} if dynamic_img_size else {}
        try:
            return create_backbone(self.backbone, str(self.path), self.img_size, num_classes=len(self.classnames),
                                   **self.backbone_kwargs, **extra)
        except WeightsError as err:
            raise ExportError(f"{err}; the merged export {self.path} does not fit {self.backbone} with "
                              f"{self.backbone_kwargs or 'no extra arguments'}: keep its {self.path.name}.json beside "
                              "it, or export it again with this lorevit") from None

    def classifier(self):
        """The merged model as a lorevit classifier: method ``linear`` (nothing trains, nothing prompts) on the merged
        ViT, the task head from the file — the logits timm's ``create_model`` gives for the file."""
        import torch

        from lorevit.factory import create_model

        backbone = self.vit()
        model = create_model("linear", self.classnames, backbone=backbone, knowledge=None, with_knowledge=False,
                             img_size=self.img_size)
        head = backbone.vit.head
        if not hasattr(head, "weight") or tuple(head.weight.shape) != tuple(model.head.weight.shape):
            raise ExportError(f"{self.path}: its head does not fit a linear classifier over {backbone.name}'s features")
        with torch.no_grad():
            model.head.weight.copy_(head.weight)
            model.head.bias.copy_(head.bias)
        return model.eval()


def timm_export_file(path: str | Path) -> Path | None:
    """The merged timm export at ``path`` (``--merge --format timm``): the file itself, or the one such file in a
    folder; None when ``path`` is no such file (an adapter, a run folder, a Hub repo id, ...). Several such files in
    one folder are an ExportError naming them."""
    path = Path(path)
    if path.is_file():
        return path if _is_timm_export(path) else None
    if not path.is_dir():
        return None
    found = sorted(f for f in path.glob("*.safetensors") if _is_timm_export(f))
    if len(found) > 1:
        raise ExportError(f"{path} holds {len(found)} merged timm exports ({', '.join(f.name for f in found)}); "
                          "pass one of the files")
    return found[0] if found else None


def _is_timm_export(file: Path) -> bool:
    from safetensors import SafetensorError, safe_open

    if file.suffix != ".safetensors":
        return False
    try:
        with safe_open(str(file), framework="pt") as f:
            return (f.metadata() or {}).get("format") == TIMM_FORMAT_TAG
    except (SafetensorError, OSError, ValueError):
        return False


def read_timm_export(path: str | Path) -> TimmExport:
    """A merged timm export's description from its metadata (files written before the metadata held
    ``backbone_kwargs`` and ``transforms``: from the sidecar ``FILE.json``, else none and ``default``)."""
    from safetensors import safe_open

    file = timm_export_file(path)
    if file is None:
        raise ExportError(f"{path} is not a merged timm export (lorevit export --merge --format timm writes one)")
    with safe_open(str(file), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        classnames = json.loads(meta["classnames"])
        img_size = int(meta["img_size"])
        kwargs = json.loads(meta["backbone_kwargs"]) if "backbone_kwargs" in meta else None
        method, backbone = meta["method"], meta["backbone"]
    except (KeyError, ValueError) as err:
        raise ExportError(f"{file}: the metadata of this merged export is damaged ({type(err).__name__}: {err}); "
                          "export it again") from None
    if kwargs is None:  # an export of an earlier lorevit: its sidecar holds timm.create_model's arguments
        sidecar = file.with_name(file.name + ".json")
        try:
            arguments = json.loads(sidecar.read_text()).get("create_model", {})
        except (OSError, ValueError, AttributeError):
            arguments = {}
        kwargs = {k: v for k, v in arguments.items()
                  if k not in ("model_name", "pretrained", "pretrained_cfg_overlay", "num_classes", "img_size")}
    if not isinstance(classnames, list) or not isinstance(kwargs, dict):
        raise ExportError(f"{file}: the metadata of this merged export is damaged; export it again")
    return TimmExport(file, method, backbone, img_size, [str(c) for c in classnames], kwargs,
                      meta.get("transforms") or "default")


def _max_opset() -> int:
    from torch.onnx import _constants

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))


