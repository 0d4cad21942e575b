"""``lorevit bench inference``: images/s of each method and of the plain ViT, side by side in one run (issue 24).

The table a user reads to choose between LORE, VPT, merged LoRA and the plain model on their hardware: for every
setting (thread count × runtime × dtype × ``torch.compile``) and batch size, each row's inference forward
(``model(images).logits`` under ``torch.inference_mode``, the same call the test phase makes) is timed with the
rows interleaved, their order rotated each repeat (A B C D, B C D A, ...), so that a shared machine's drift hits
them all alike and no row always runs first; reported as images/s and as ratios to the plain ViT (``linear``: the
frozen ViT + a linear head) — the ratio of the medians and the median of the same-repeat ratios (the drift-robust
view).

Rows: any registered method that trains (its default options), ``NAME+merged`` for a mergeable one, the named
variants of ``bench.defaults.COST_VARIANTS``, and ``lore-unshared``: LORE on the plain path, every image's copy
of the global prompts projected (what :class:`lorevit.backbone.SharedPromptKV` saves).

Runtimes: ``eager`` (PyTorch) and ``onnx`` (the graph ``lorevit export`` writes, run by onnxruntime with the
same thread count; its largest logit difference to eager is recorded). Dtypes: ``fp32`` and ``bf16``
(``torch.autocast``, eager only). ``--compile on``: ``torch.compile`` of the eager model (compiled once per row
and dtype, before the warm-up). Weights do not change the speed: ``--weights random`` needs no download.
"""
from __future__ import annotations

import copy
import math
import os
import platform
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from lorevit.backbone import PromptedViT, create_backbone
from lorevit.bench.defaults import COST_VARIANTS, INFERENCE_METHODS, cost_row
from lorevit.config import OFFLINE_BACKBONE, OFFLINE_KNOWLEDGE, OFFLINE_WEIGHTS
from lorevit.errors import ConfigError
from lorevit.factory import create_model
from lorevit.model import PromptedClassifier
from lorevit.utils.allocator import is_tuned
from lorevit.utils.device import resolve_device
from lorevit.utils.io import write_json, write_text

PLAIN = "linear"  # the plain ViT: the frozen ViT + a linear head
UNSHARED = "lore-unshared"  # LORE without the shared prompts' K/V shortcut (the plain path)
RUNTIMES = ("eager", "onnx")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
COMPILE = {"off": False, "on": True}
# Targets of issue 24, as (name, row, reference row, bound, where): ratio of images/s at the given device type.
TARGETS = (
    ("lore_vs_plain_vit_cpu", "lore", PLAIN, 0.95, "cpu"),
    ("lore_vs_plain_vit_gpu", "lore", PLAIN, 0.90, "cuda"),
    ("lore_vs_vpt_deep_gpu", "lore", "vpt-deep", 0.95, "cuda"),
)


@dataclass
class InferenceSettings:
    backbone: str = OFFLINE_BACKBONE
    weights: str | None = OFFLINE_WEIGHTS
    backbone_kwargs: dict = field(default_factory=dict)
    knowledge: str = OFFLINE_KNOWLEDGE  # never loaded: inference does not run KLA
    img_size: int = 112
    batch_sizes: Sequence[int] = (1, 8, 32, 128)
    methods: Sequence[str] = INFERENCE_METHODS
    threads: Sequence[int | None] = (None,)  # None: torch's choice
    runtimes: Sequence[str] = ("eager",)
    dtypes: Sequence[str] = ("fp32",)
    compile: Sequence[str] = ("off",)
    device: str = "auto"
    num_classes: int = 10
    warmup: int = 1
    repeats: int = 5
    min_time: float = 0.2  # seconds per timed measurement: small batches repeat the call until it lasts this long
    seed: int = 0


def check_settings(s: InferenceSettings) -> list[str]:
    """The rows to measure; every bad setting is one ConfigError naming the flag and the fix."""
    from lorevit.methods import METHODS as REGISTERED

    rows = list(dict.fromkeys(s.methods))
    if not rows:
        raise ConfigError("bench inference: --methods is empty; e.g. --methods linear,vpt-deep,lore")
    for row in rows:
        method, _, merged = cost_row("lore" if row == UNSHARED else row)
        if method not in REGISTERED:
            raise ConfigError(f"bench inference: {row!r} is not a method; use registered methods "
                              f"({', '.join(REGISTERED)}), NAME+merged for a mergeable one, a variant "
                              f"({', '.join([*COST_VARIANTS, UNSHARED])})")
        if merged and not REGISTERED[method].mergeable:
            raise ConfigError(f"bench inference: {row!r}: method {method!r} cannot be merged")
        if not REGISTERED[method].trains:
            raise ConfigError(f"bench inference: {row!r} trains nothing here (it needs a CLIP text tower); "
                              "measure the plain ViT with linear")
    for flag, values, allowed in (("runtime", s.runtimes, RUNTIMES), ("dtype", s.dtypes, DTYPES),
                                  ("compile", s.compile, COMPILE)):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise ConfigError(f"bench inference: --{flag} {','.join(map(str, values)) or '(empty)'}: "
                              f"choose from {', '.join(allowed)}")
    if not s.batch_sizes or any(b < 1 for b in s.batch_sizes):
        raise ConfigError("bench inference: --batch-sizes takes positive integers, like 1,8,32,128")
    if any(t is not None and t < 1 for t in s.threads):
        raise ConfigError("bench inference: --threads takes positive integers, like 1,2")
    for key in ("img_size", "num_classes", "repeats"):
        if getattr(s, key) < 1:
            raise ConfigError(f"bench inference: --{key.replace('_', '-')} must be a positive integer")
    if s.warmup < 0 or s.min_time < 0:
        raise ConfigError("bench inference: --warmup and --min-time must be >= 0")
    if "onnx" in s.runtimes:
        from lorevit.tools.export import ExportError, require_onnx

        try:
            require_onnx()
        except ExportError as err:
            raise ConfigError(f"bench inference --runtime onnx: {err}") from None
    return rows


def build_row(row: str, backbone: PromptedViT, settings: InferenceSettings, device: torch.device) -> PromptedClassifier:
    """The classifier of a row on its own copy of ``backbone`` (methods of kind 2 change the ViT they get), with
    trained-looking (non-zero) head and prompts so that every part computes."""
    method, options, merged = cost_row("lore" if row == UNSHARED else row)
    names = [f"class {i:04d}" for i in range(settings.num_classes)]
    model = create_model(method, names, backbone=copy.deepcopy(backbone), knowledge=settings.knowledge,
                         knowledge_width=16, with_knowledge=False, method_options=options or None)
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.02)
    if merged:
        model.merge()  # a plain ViT again: what a merged adapter costs at inference
    if row == UNSHARED:
        model.backbone.share_prompt_kv = False
    return model.to(device).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def eager_forward(model: PromptedClassifier, compiled: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """images → logits; ``compiled``: through ``torch.compile`` (compiled at its first call, once per row)."""
    forward = lambda x: model(x).logits  # noqa: E731
    return torch.compile(forward) if compiled else forward


def eager_step(forward: Callable, images: torch.Tensor, dtype: str) -> Callable[[], None]:
    device_type = images.device.type
    autocast = (lambda: torch.autocast(device_type, dtype=DTYPES[dtype])) if dtype != "fp32" else nullcontext

    def step() -> None:
        with torch.inference_mode(), autocast():
            forward(images)
    return step


def onnx_session(model: PromptedClassifier, img_size: int, threads: int | None, device: torch.device):
    """An onnxruntime session of the graph ``lorevit export`` writes (traced at batch 1, dynamic batch axis)."""
    from lorevit.tools.export import DEFAULT_OPSET, require_onnx, trace_to_onnx

    _, ort = require_onnx()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(trace_to_onnx(model.cpu(), img_size, DEFAULT_OPSET), options, providers=providers)


def onnx_step(session, images: torch.Tensor) -> Callable[[], None]:
    feed = {session.get_inputs()[0].name: images.detach().cpu().numpy()}
    return lambda: session.run(None, feed)


def time_rows(steps: dict[str, Callable[[], None]], repeats: int, warmup: int, min_time: float,
              device: torch.device) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per call of every step, interleaved (the order rotated each repeat), after warm-up; a call shorter
    than ``min_time`` is repeated (the same count for every row: the plain ViT's) so that each measurement lasts
    about ``min_time``."""
    for _ in range(max(1, warmup)):
        for step in steps.values():
            step()
    _sync(device)
    first = next(iter(steps.values()))
    start = time.perf_counter()
    first()
    _sync(device)
    single = max(time.perf_counter() - start, 1e-6)
    calls = max(1, math.ceil(min_time / single))
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(repeats):
        # the order rotates each repeat: a row that always ran first was measured 3–6 % faster than the same
        # computation in second place (2-core VM, batch 32), a bias as large as the differences measured
        for name in names[r % len(names):] + names[:r % len(names)]:
            step = steps[name]
            _sync(device)
            start = time.perf_counter()
            for _ in range(calls):
                step()
            _sync(device)
            times[name].append((time.perf_counter() - start) / calls)
    return times, {name: calls for name in steps}


def _settings_grid(s: InferenceSettings) -> list[dict]:
    grid = []
    for threads in s.threads:
        for runtime in s.runtimes:
            for dtype in s.dtypes if runtime == "eager" else ("fp32",):
                for comp in s.compile if runtime == "eager" else ("off",):
                    grid.append({"threads": threads, "runtime": runtime, "dtype": dtype, "compile": comp})
    return list({tuple(g.values()): g for g in grid}.values())


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run_inference_bench(settings: InferenceSettings, out_dir: str | Path,
                        progress: Callable[[str], None] | None = print) -> dict:
    """Measure every row in every setting; write ``inference.json`` and ``inference.md``; returns the JSON dict."""
    say = progress or (lambda _msg: None)
    rows = check_settings(settings)
    device = resolve_device(settings.device)
    out = Path(out_dir)
    load_before = _load()
    torch.manual_seed(settings.seed)
    backbone = create_backbone(settings.backbone, settings.weights, settings.img_size, **settings.backbone_kwargs)
    default_threads = torch.get_num_threads()
    models = {row: build_row(row, backbone, settings, device) for row in rows}
    generator = torch.Generator().manual_seed(settings.seed)
    size = settings.img_size
    images = {b: torch.randn(b, 3, size, size, generator=generator).to(device) for b in settings.batch_sizes}
    results = []
    try:
        for setting in _settings_grid(settings):
            threads = setting["threads"] or default_threads
            torch.set_num_threads(threads)
            label = f"{setting['runtime']}, {setting['dtype']}, compile {setting['compile']}, {threads} threads"
            sessions, onnx_diff = {}, {}
            if setting["runtime"] == "onnx":
                check = images[min(settings.batch_sizes)]
                for row, model in models.items():
                    sessions[row] = onnx_session(model, size, threads, device)
                    model.to(device)
                    with torch.inference_mode():
                        expected = model(check).logits.float().cpu()
                    got = torch.from_numpy(onnx_step(sessions[row], check)()[0])
                    onnx_diff[row] = float((got - expected).abs().max())
            forwards = {row: eager_forward(model, COMPILE[setting["compile"]]) for row, model in models.items()}
            for B in settings.batch_sizes:
                if setting["runtime"] == "onnx":
                    steps = {row: onnx_step(sessions[row], images[B]) for row in rows}
                else:
                    steps = {row: eager_step(forwards[row], images[B], setting["dtype"]) for row in rows}
                say(f"{label}: batch {B}, {settings.warmup} warm-up + {settings.repeats} interleaved repeats")
                times, calls = time_rows(steps, settings.repeats, settings.warmup, settings.min_time, device)
                entry = {**setting, "threads": threads, "batch_size": B, "device_type": device.type, "calls_per_measurement": calls[rows[0]],
                         "methods": {}}
                for row in rows:
                    median = statistics.median(times[row])
                    entry["methods"][row] = {"img_per_s": round(B / median, 3),
                                             "batch_s": [round(t, 6) for t in times[row]]}
                    if row in onnx_diff:
                        entry["methods"][row]["onnx_max_abs_diff_logits"] = onnx_diff[row]
                if PLAIN in rows:
                    plain = entry["methods"][PLAIN]["img_per_s"]
                    for row in rows:
                        r = entry["methods"][row]
                        r["vs_plain_vit"] = round(r["img_per_s"] / plain, 4)
                        r["vs_plain_vit_paired"] = round(statistics.median(
                            p / t for p, t in zip(times[PLAIN], times[row])), 4)
                say("  " + ", ".join(f"{row} {r['img_per_s']:.1f} img/s" + (f" ({r['vs_plain_vit']:.3f}x)"
                                     if "vs_plain_vit" in r else "") for row, r in entry["methods"].items()))
                results.append(entry)
    finally:
        torch.set_num_threads(default_threads)
    report = {
        "setup": {
            "backbone": settings.backbone, "weights": settings.weights, "backbone_kwargs": settings.backbone_kwargs,
            "img_size": size, "num_patches": backbone.num_patches, "depth": backbone.depth, "dim": backbone.dim,
            "batch_sizes": list(settings.batch_sizes), "methods": rows, "num_classes": settings.num_classes,
            "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "warmup": settings.warmup, "repeats": settings.repeats,
            "min_time_s": settings.min_time, "malloc_tuned": is_tuned(),
            "load_average_before": load_before, "load_average_after": _load(),
            "timing": "model(images).logits under torch.inference_mode; median over repeats, rows interleaved per "
                      "repeat; vs_plain_vit: ratio of medians; vs_plain_vit_paired: median of same-repeat ratios",
        },
        "results": results,
        "targets": targets(results, rows),
    }
    write_json(out / "inference.json", report)
    write_text(out / "inference.md", inference_markdown(report))
    return report


def targets(results: list[dict], rows: Sequence[str]) -> dict:
    """Issue 24's bounds, checked for every eager entry at batch 32 (CPU) / 64 (GPU) that has both rows."""
    found = {}
    for name, row, reference, bound, where in TARGETS:
        for entry in results:
            batch = 32 if where == "cpu" else 64
            if entry["batch_size"] != batch or entry["runtime"] != "eager" or entry.get("device_type") != where:
                continue
            if row not in entry["methods"] or reference not in entry["methods"]:
                continue
            ratio = entry["methods"][row]["img_per_s"] / entry["methods"][reference]["img_per_s"]
            found[f"{name} ({entry['dtype']}, compile {entry['compile']}, {entry['threads']} threads)"] = {
                "ratio": round(ratio, 4), "target": f">= {bound}", "pass": ratio >= bound}
    return found


def inference_markdown(report: dict) -> str:
    s = report["setup"]
    load = s.get("load_average_before")
    lines = ["# Inference throughput: methods vs the plain ViT", "",
             f"Backbone `{s['backbone']}` ({s['weights']}), {s['img_size']} px ({s['num_patches']} patches), device "
             f"{s['device']} ({s['device_name']}, {s['cpu_count']} CPUs), torch {s['torch']}; median of "
             f"{s['repeats']} interleaved repeats" + (f"; load average before/after: {load} / "
                                                      f"{s.get('load_average_after')}" if load else "")
             + ("; freed memory kept for reuse (`lorevit.utils.allocator`)" if s.get("malloc_tuned") else "") + ".", "",
             "Each cell: images/s (× the plain ViT's, ratio of medians; in brackets the median same-repeat ratio)."]
    groups: dict[tuple, list[dict]] = {}
    for entry in report["results"]:
        groups.setdefault((entry["runtime"], entry["dtype"], entry["compile"], entry["threads"]), []).append(entry)
    for (runtime, dtype, comp, threads), entries in groups.items():
        lines += ["", f"## {runtime}, {dtype}, torch.compile {comp}, {threads} threads", "",
                  "| method | " + " | ".join(f"batch {e['batch_size']}" for e in entries) + " |",
                  "|---|" + "---:|" * len(entries)]
        for row in s["methods"]:
            cells = []
            for e in entries:
                r = e["methods"][row]
                cell = f"{r['img_per_s']:.1f}"
                if "vs_plain_vit" in r:
                    cell += f" ({r['vs_plain_vit']:.3f}× [{r['vs_plain_vit_paired']:.3f}])"
                cells.append(cell)
            lines.append(f"| `{row}` | " + " | ".join(cells) + " |")
    if report["targets"]:
        lines += ["", "| target | ratio | bound | result |", "|---|---:|---:|---|"]
        for name, t in report["targets"].items():
            lines.append(f"| {name} | {t['ratio']:.3f} | {t['target']} | {'pass' if t['pass'] else 'FAIL'} |")
    lines += ["", "Paper Table 7 (published; RTX 3090, CLIP ViT-B/16, 224 px): B-B 106.1 img/s, B-B + VPT 95.5 "
                  "(0.90×), LORE 74.4 (0.70×)."]
    return "\n".join(lines) + "\n"
