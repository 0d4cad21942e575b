"""``lorevit export``: an adapter and its frozen ViT as one ONNX file, or merged as a plain timm ViT (``--merge
--format timm``), checked against PyTorch."""
from __future__ import annotations

import json

from lorevit.adapters.paths import check_adapter_reference
from lorevit.tools.export import DEFAULT_OPSET, FORMATS, TOLERANCE, ExportError  # torch-free constants


def cmd_export(args) -> int:
    check_adapter_reference(args.adapter)
    if args.format not in FORMATS:
        raise ExportError(f"--format {args.format!r} is not supported; choose one of: {', '.join(FORMATS)}")
    if args.format == "timm":
        if not args.merge:
            raise ExportError("--format timm writes a plain timm ViT: add --merge (for lora, ssf, bitfit, full, linear)")
        from lorevit.tools.export import export_timm

        result = export_timm(args.adapter, args.output, tolerance=args.tolerance)
        call = {k: v for k, v in result.create_model.items() if k != "model_name"}
        print(f"merged {args.adapter} (max |merged - unmerged| {result.merge_max_abs_diff:.2e}) into a plain timm ViT: "
              f"{result.path} ({result.size_bytes / 1e6:.1f} MB); timm's logits from it vs lorevit's: max |difference| "
              f"{result.max_abs_diff:.2e} (tolerance {args.tolerance:.0e}); report {result.report}")
        print(f"load it: timm.create_model({result.create_model['model_name']!r}, "
              + ", ".join(f"{k}={v!r}" for k, v in call.items()) + ")")
        return 0
    from lorevit.tools.export import export_onnx

    result = export_onnx(args.adapter, args.output, opset=args.opset, tolerance=args.tolerance, merge=args.merge)
    meta = result.metadata
    classes = len(json.loads(meta["classnames"]))
    print(f"exported {meta['method']} adapter {args.adapter} ({meta['backbone']}, {meta['img_size']} px, {classes} "
          f"classes) to {result.path} ({result.size_bytes / 1e6:.1f} MB, opset {result.opset}, dynamic batch) "
          f"in {result.seconds:.1f} s")
    print(f"onnxruntime vs PyTorch logits at batch {' and '.join(map(str, result.check_batch_sizes))}: "
          f"max |difference| {result.max_abs_diff:.2e} (tolerance {result.tolerance:.0e}); report {result.report}")
    return 0


def register(commands) -> None:
    """``lorevit export``."""
    export = commands.add_parser("export", help="an adapter + its frozen ViT as one ONNX file (or --merge --format timm: a plain timm ViT), checked")
    export.add_argument("--adapter", required=True, help="a run's output directory, a hub-style folder, an adapter file or a Hub repo id")
    export.add_argument("--format", default="onnx", metavar="FORMAT",
                        help=f"one of: {', '.join(FORMATS)} (default onnx; timm: a merged plain timm ViT as safetensors)")
    export.add_argument("--merge", action="store_true",
                        help="fold the method into the ViT's weights first (lora, ssf, bitfit, full, linear): zero "
                             "inference overhead; a method that cannot merge is an error")
    export.add_argument("--output", required=True, help="the file to write, e.g. model.onnx (+ a sidecar .onnx.json)")
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    export.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"largest allowed |logits difference| vs PyTorch (default {TOLERANCE:g})")
    export.set_defaults(func=cmd_export)
