"""``lorevit bench complexity``: the cost of each method on one backbone, side by side (paper Table 7).

For ``linear`` (the plain Black Box), ``vpt-deep``, ``lore-no-kp`` and ``lore`` (the default rows), or any
registered method, ``NAME+merged`` for a mergeable one, and the variants of ``bench.defaults.COST_VARIANTS``
(``--methods all``: every vision baseline of issue 19 beside LORE) on the same frozen ViT, image size and batch
(each row on its own copy of the ViT: methods of kind 2 change it), with ratios to the plain ViT (``linear``).
The CLIP baselines of issue 20 (``coop``, ..., ``clip-lora``, ``clip-lora+merged``) need a CLIP backbone and
``--knowledge clip:auto`` (its own text tower); a method that encodes its class prompts in every forward counts that
text tower over all classes in its per-image GFLOPs (one image), a merged CLIP-LoRA has constant text features.
Such a row also gets ``gflops_in_batch`` (GFLOPs per image counted on the whole batch: CoOp's prompts are encoded once
per batch, CoCoOp's once per image, BASELINES_CLIP §3). ``NAME@C`` builds a row with C classes instead of
``--num-classes`` (``cocoop@100``, ``cocoop@1000``: CoCoOp's text cost grows as B·C); ``--methods clip`` is
``bench.defaults.CLIP_COST_ROWS``. Trainable counts on ViT-B/16 (BASELINES_CLIP §2–§7): CoOp 8,192, CoCoOp 35,360,
ProGrad 8,192, CLIP-Adapter 131,072, MaPLe 3,555,072, CLIP-LoRA 184,320.

- trainable parameters (count and percent of all parameters);
- forward GFLOPs per image at inference, counted by ``torch.utils.flop_counter.FlopCounterMode``
  (2 FLOPs per multiply-add of matmuls, convolutions and attention; element-wise ops, top-k and
  gathers are not counted; CPU's fused attention kernel is given the same formula as the GPU ones);
- inference throughput in images/s: a batch forward under ``torch.inference_mode``, after warm-up,
  median over repeats;
- training step time for one batch: forward + loss (L_task + λ L_kp for LORE, the model's own
  prediction as p) + backward + SGD step, median over repeats;
- peak memory of a training step *above the resident model*: on CUDA
  ``torch.cuda.max_memory_allocated`` minus the memory allocated before the step; on CPU the peak
  resident-set size during the step (``/proc/self/statm`` sampled every millisecond, after
  ``malloc_trim``) minus the resident size before it — ``resource.getrusage`` is the fallback where
  ``/proc`` is missing. Also ``saved_activations_mb``: the bytes autograd keeps for the backward
  pass (exact and machine independent).

The methods' timing repeats are interleaved (A B C D A B C D ...) so that drift of a shared machine
hits them all equally. ``class_scaling`` times LORE's training step with 10 and with 1,000 classes
(random class features of the knowledge width: text features are constant and cached; KLA runs
only for the true and the predicted class of each image).
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import resource
import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils import flop_counter

from lorevit.backbone import PromptedViT, create_backbone
from lorevit.config import Config, OFFLINE_BACKBONE, OFFLINE_KNOWLEDGE, OFFLINE_WEIGHTS
from lorevit.errors import ConfigError
from lorevit.utils.device import resolve_device
from lorevit.utils.io import write_json, write_text
from lorevit.factory import create_model
from lorevit.model import PromptedClassifier
from lorevit.bench.defaults import ALL_COST_ROWS, CLIP_COST_ROWS, COST_METHODS as METHODS, cost_row, row_classes

LABELS = {"linear": "B-B (linear head)", "vpt-deep": "B-B + VPT-deep", "lore-no-kp": "LORE w/o L_kp", "lore": "LORE",
          "vpt-shallow": "B-B + VPT-shallow", "lore-public": "LORE (public code's White Box)", "lora": "LoRA r8 qkv",
          "lora+merged": "LoRA r8 qkv, merged", "lora-qv": "LoRA r8 q,v", "adaptformer": "AdaptFormer k64",
          "adaptformer-k8": "AdaptFormer k8", "adapter": "Houlsby adapter k8", "adapter-pfeiffer": "Pfeiffer adapter k8",
          "ssf": "SSF", "ssf+merged": "SSF, merged", "bitfit": "BitFit", "full": "full fine-tuning",
          # issue 20: the CLIP baselines (a CLIP backbone and --knowledge clip:auto)
          "coop": "CoOp M16", "cocoop": "CoCoOp", "prograd": "ProGrad", "clip-adapter": "CLIP-Adapter",
          "maple": "MaPLe", "clip-lora": "CLIP-LoRA r2 q,k,v, both towers", "clip-lora+merged": "CLIP-LoRA, merged"}


def row_label(row: str, classes: int | None = None) -> str:
    """``CoCoOp, 1,000 classes`` for a row ``cocoop@1000``; the plain label otherwise."""
    name, sep, _ = row.partition("@")
    return f"{LABELS.get(name, name)}, {classes:,} classes" if sep and classes else LABELS.get(row, row)

# Targets of the issue, as (name, numerator, denominator, metric, bound, higher_is_better).
TARGETS = (
    ("infer_throughput_lore_vs_vpt", "lore", "vpt-deep", "infer_img_per_s", 0.90, True),
    ("gflops_lore_vs_blackbox", "lore", "linear", "gflops", 1.05, False),
    ("train_step_lore_vs_vpt", "lore", "vpt-deep", "train_step_s", 1.5, False),
    ("infer_throughput_lora_merged_vs_blackbox", "lora+merged", "linear", "infer_img_per_s", 0.97, True),  # issue 19
    ("infer_throughput_ssf_merged_vs_blackbox", "ssf+merged", "linear", "infer_img_per_s", 0.97, True),
)
RATIO_METRICS = ("gflops", "infer_img_per_s", "train_step_s", "peak_mem_mb")  # reported as ratios to the plain ViT
CLASS_SCALING_BOUND = 1.15


@dataclass
class ComplexitySettings:
    backbone: str = OFFLINE_BACKBONE
    weights: str | None = OFFLINE_WEIGHTS
    backbone_kwargs: dict = field(default_factory=dict)
    knowledge: str = OFFLINE_KNOWLEDGE
    img_size: int = 112
    batch_size: int = 32
    num_classes: int = 10
    methods: Sequence[str] = METHODS
    warmup: int = 1
    infer_repeats: int = 5
    train_repeats: int = 3
    flops_sizes: Sequence[int] = (224,)  # extra GFLOPs-only counts at these sizes (random weights)
    scaling_classes: tuple[int, int] = (10, 1000)
    threads: int | None = None
    device: str = "auto"
    memory: bool = True
    profile: bool = False
    arch: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=dict)  # method → its options over the row's (``{maple: {depth: 2}}``)
    seed: int = 0


# ----------------------------------------------------------------------------- measurements


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


def _flop_mapping() -> dict:
    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:  # FlopCounterMode has formulas for the GPU kernels only
        mapping[op] = _cpu_sdpa_flops
    return mapping


def count_gflops(model: PromptedClassifier, images: torch.Tensor) -> float:
    """Inference forward GFLOPs per image (FlopCounterMode, 2 FLOPs per multiply-add).

    Counted with autograd on (FlopCounterMode's module tracker fails under no_grad); the forward
    ops, hence the count, are the same as at inference. A warm-up forward first builds what a
    served model computes once, not per image (LIN's folded W_mix·W1).
    """
    model.eval()
    with torch.no_grad():
        model(images)
    with flop_counter.FlopCounterMode(display=False, custom_mapping=_flop_mapping()) as counter:
        model(images)
    return counter.get_total_flops() / images.shape[0] / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_infer_step(model: PromptedClassifier, images: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.eval()
        with torch.inference_mode():
            model(images)
    return step


def make_train_step(model: PromptedClassifier, images: torch.Tensor, labels: torch.Tensor,
                    cfg: Config | None = None) -> Callable[[], None]:
    """forward + loss + backward + SGD step, with ``LitClassifier``'s optimizer settings (``cfg``: the defaults)."""
    cfg = cfg or Config()
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    kp_weight = cfg.kp_weight

    def step() -> None:
        model.train()
        out = model(images)
        loss = model.loss(out, labels, kp_weight=kp_weight)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def interleaved_times(steps: dict[str, Callable[[], None]], repeats: int, warmup: int,
                      device: torch.device, progress: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of every step, repeats interleaved A B C D A B C D ... after warm-up rounds."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
        if progress:
            progress(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{n} {t[-1]:.3f}s" for n, t in times.items()))
    return times


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _PeakRSS:
    """Peak resident-set size while the context is open (sampled every ``interval`` seconds)."""

    def __init__(self, interval: float = 0.001):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes() or 0)
            time.sleep(self.interval)

    def __enter__(self) -> "_PeakRSS":
        self.peak = _rss_bytes() or 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes() or 0)


def peak_step_memory_mb(step: Callable[[], None], device: torch.device) -> tuple[float, str]:
    """Peak memory of one call of ``step`` above what was allocated before it, in MB, and how."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20, "cuda.max_memory_allocated - allocated before"
    _malloc_trim()
    before = _rss_bytes()
    if before is not None:
        with _PeakRSS() as peak:
            step()
        return max(0, peak.peak - before) / 2**20, "peak RSS (/proc/self/statm, 1 ms samples) - RSS before"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if platform.system() == "Darwin" else 1024  # bytes on macOS, KiB on Linux
    return (after - before) * scale / 2**20, "ru_maxrss delta (lower bound: 0 unless a new process peak)"


def saved_activations_mb(model: PromptedClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Bytes autograd saves for the backward pass of one training forward + loss (distinct storages)."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(Exception):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    model.train()
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(images)
        loss = model.loss(out, labels)["loss"]
    del loss, out
    params = {p.untyped_storage().data_ptr() for p in model.parameters() if id(p) in frozen or p.requires_grad}
    return sum(n for ptr, n in storages.items() if ptr not in params) / 2**20


def profile_steps(steps: dict[str, Callable[[], None]], path: Path, rows: int = 25) -> Path:
    """torch.profiler tables (self CPU/CUDA time per op) of each step, for targets that were missed."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    sections = []
    for name, step in steps.items():
        step()
        with profile(activities=activities, record_shapes=False) as prof:
            step()
        key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        sections.append(f"## {name}\n\n" + prof.key_averages().table(sort_by=key, row_limit=rows))
    return write_text(path, "\n\n".join(sections) + "\n")


# ----------------------------------------------------------------------------- the benchmark


def _knowledge_width(settings: ComplexitySettings) -> int:
    from lorevit.knowledge import knowledge_dim

    return knowledge_dim(settings.knowledge)


def check_rows(rows: Sequence[str]) -> list[str]:
    """The rows to measure (``all``: ALL_COST_ROWS, ``clip``: CLIP_COST_ROWS); an unknown method, ``+merged`` of a
    method that cannot merge, a method that trains nothing or a bad ``@C`` class count is one ConfigError."""
    from lorevit.methods import METHODS as REGISTERED

    named = {"all": ALL_COST_ROWS, "clip": CLIP_COST_ROWS}
    rows = [r for row in rows for r in named.get(row, (row,))]
    for row in rows:
        if row_classes(row, 1) is None:
            raise ConfigError(f"bench complexity: {row!r}: the class count after @ must be a positive integer "
                              "(e.g. cocoop@1000)")
        method, _, merged = cost_row(row)
        if method not in REGISTERED:
            raise ConfigError(f"bench complexity: {row!r} is not a method; use registered methods "
                              f"({', '.join(REGISTERED)}), NAME+merged for a mergeable one, or all")
        if merged and not REGISTERED[method].mergeable:
            raise ConfigError(f"bench complexity: {row!r}: method {method!r} cannot be merged")
        if not REGISTERED[method].trains:
            raise ConfigError(f"bench complexity: {row!r} trains nothing (no training step to time)")
    return rows


def _build(row: str, backbone: PromptedViT, classes: int, knowledge_width: int, settings, device) -> PromptedClassifier:
    """The classifier of a row on its own copy of ``backbone`` (methods of kind 2 change the ViT they get)."""
    import copy

    method, options, merged = cost_row(row)
    options = {**options, **(settings.method_options.get(method) or {})}
    names = [f"class {i:04d}" for i in range(classes)]
    generator = torch.Generator().manual_seed(settings.seed)
    features = F.normalize(torch.randn(classes, knowledge_width, generator=generator), dim=-1)
    model = create_model(method, names, backbone=copy.deepcopy(backbone), knowledge=settings.knowledge,
                         knowledge_features=features, method_options=options or None, **settings.arch)
    if merged:
        model.merge()  # a plain ViT again: its cost is what a merged adapter costs at inference
    return model.to(device)


def _text_side(model: PromptedClassifier) -> bool:
    """A method that runs the CLIP text tower inside its forward (issue 20's kind 3 with learned text inputs)."""
    from lorevit.methods.clip_text import TextSideMethod

    return (isinstance(model.method, TextSideMethod) and model.method.encodes_prompts
            and getattr(model.method, "merged_text", None) is None)


def _ratio(a: float, b: float) -> float | None:
    return None if not b else a / b


def run_complexity(settings: ComplexitySettings, out_dir: str | Path,
                   progress: Callable[[str], None] | None = print) -> dict:
    """Measure every method, write ``complexity.json`` and ``complexity.md``; returns the JSON dict."""
    from lorevit.knowledge import resolve_knowledge

    say = progress or (lambda _msg: None)
    rows = check_rows(settings.methods)
    wrong = [k for k, v in settings.method_options.items()
             if not isinstance(v, dict) or k not in {cost_row(r)[0] for r in rows}]
    if wrong:
        raise ConfigError(f"bench complexity --method-options: {wrong} — give a mapping per measured method, like "
                          "'{maple: {depth: 2}}'")
    # a CLIP method's rows need the backbone's own text tower (clip:auto → clip:<model>[@<tag>])
    settings = replace(settings, knowledge=resolve_knowledge(settings.knowledge, settings.backbone, settings.weights))
    for key in ("img_size", "batch_size", "num_classes", "infer_repeats", "train_repeats"):
        if getattr(settings, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer")
    out = Path(out_dir)
    device = resolve_device(settings.device)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    backbone = create_backbone(settings.backbone, settings.weights, settings.img_size, **settings.backbone_kwargs)
    width = _knowledge_width(settings)
    B, size = settings.batch_size, settings.img_size
    generator = torch.Generator().manual_seed(settings.seed)
    images = torch.randn(B, 3, size, size, generator=generator).to(device)
    labels = torch.randint(0, settings.num_classes, (B,), generator=generator).to(device)

    classes = {m: row_classes(m, settings.num_classes) for m in rows}  # NAME@C: C classes, else --num-classes
    models = {m: _build(m, backbone, classes[m], width, settings, device) for m in rows}
    results: dict[str, dict] = {}
    for name, model in models.items():
        trainable, total = model.parameter_counts()
        results[name] = {"trainable_params": trainable, "trainable_pct": round(100.0 * trainable / total, 4),
                         "num_classes": classes[name], "gflops": round(count_gflops(model, images[:1]), 4)}
        if _text_side(model) and B > 1:  # the text tower's cost: once per batch (CoOp) or per image (CoCoOp: B·C)
            results[name]["gflops_in_batch"] = round(count_gflops(model, images), 4)
        say(f"{name}: {trainable:,} trainable ({results[name]['trainable_pct']:.2f}%), "
            f"{results[name]['gflops']:.3f} GFLOPs/image")

    say(f"inference: batch {B} at {size}px, {settings.warmup} warm-up + {settings.infer_repeats} interleaved repeats")
    infer = interleaved_times({m: make_infer_step(model, images) for m, model in models.items()},
                              settings.infer_repeats, settings.warmup, device, say)
    # a row with nothing left to train (a merged CLIP-LoRA: its head has no parameters) has no training step
    train_steps = {m: make_train_step(model, images, labels % classes[m]) for m, model in models.items()
                   if model.trainable_parameters()}
    say(f"training step: batch {B}, {settings.warmup} warm-up + {settings.train_repeats} interleaved repeats")
    train = interleaved_times(train_steps, settings.train_repeats, settings.warmup, device, say)
    memory_how = "not measured (--no-memory)"
    for name, model in models.items():
        results[name]["infer_img_per_s"] = round(B / statistics.median(infer[name]), 3)
        results[name]["train_step_s"] = round(statistics.median(train[name]), 4) if name in train else float("nan")
        results[name]["infer_batch_s"] = [round(t, 4) for t in infer[name]]
        results[name]["train_step_runs_s"] = [round(t, 4) for t in train.get(name, [])]
        if settings.memory and name in train_steps:
            mb, memory_how = peak_step_memory_mb(train_steps[name], device)
            results[name]["peak_mem_mb"] = round(mb, 1)
            results[name]["saved_activations_mb"] = round(saved_activations_mb(model, images, labels % classes[name]), 1)
        else:
            results[name]["peak_mem_mb"] = float("nan")

    scaling = {}
    if "lore" in rows:
        few, many = settings.scaling_classes
        say(f"class scaling: LORE training step with {few} and {many} classes")
        scaled = {c: _build("lore", backbone, c, width, settings, device) for c in (few, many)}
        steps = {}
        for c, model in scaled.items():
            c_labels = torch.randint(0, c, (B,), generator=generator).to(device)
            steps[c] = make_train_step(model, images, c_labels)
        times = interleaved_times({str(c): s for c, s in steps.items()}, settings.train_repeats, settings.warmup, device)
        scaling = {f"train_step_s_{c}": round(statistics.median(times[str(c)]), 4) for c in (few, many)}
        scaling["classes"] = [few, many]
        scaling["runs_s"] = {str(c): [round(t, 4) for t in times[str(c)]] for c in (few, many)}

    if "linear" in results:  # ratios to the plain ViT (the linear probe: the frozen ViT + a head)
        for name, r in results.items():
            r["vs_plain_vit"] = {k: round(r[k] / results["linear"][k], 4) for k in RATIO_METRICS
                                 if results["linear"].get(k) and r.get(k) == r.get(k)}
    runs = {m: {"infer_img_per_s": [B / t for t in infer[m]], "train_step_s": train.get(m, [])} for m in models}
    targets = {}
    for name, num, den, metric, bound, higher in TARGETS:
        if num in results and den in results:
            ratio = _ratio(results[num][metric], results[den][metric])
            ok = ratio is not None and (ratio >= bound if higher else ratio <= bound)
            targets[name] = {"ratio": round(ratio, 4) if ratio is not None else None,
                             "target": f"{'>=' if higher else '<='} {bound}", "pass": bool(ok)}
            if metric in runs[num]:  # same-repeat ratios: the drift-robust view of the same numbers
                targets[name]["paired_ratio_median"] = round(statistics.median(
                    a / b for a, b in zip(runs[num][metric], runs[den][metric])), 4)
    if scaling:
        few, many = scaling["classes"]
        ratio = _ratio(scaling[f"train_step_s_{many}"], scaling[f"train_step_s_{few}"])
        scaling["ratio"] = round(ratio, 4)
        targets[f"train_step_{many}_vs_{few}_classes"] = {"ratio": round(ratio, 4), "target": f"<= {CLASS_SCALING_BOUND}",
                                                          "pass": bool(ratio <= CLASS_SCALING_BOUND)}
        # the schema's fixed keys, whatever the class counts were
        scaling.setdefault("train_step_s_10", scaling[f"train_step_s_{few}"])
        scaling.setdefault("train_step_s_1000", scaling[f"train_step_s_{many}"])

    flops_at = {}
    for extra in settings.flops_sizes or ():
        if int(extra) == size:
            continue
        other = create_backbone(settings.backbone, "random", int(extra), **settings.backbone_kwargs)
        x = torch.randn(1, 3, int(extra), int(extra))
        counts = {m: round(count_gflops(_build(m, other, classes[m], width, settings, torch.device("cpu")), x), 4)
                  for m in rows}
        entry = {"num_patches": other.num_patches, "gflops": counts}
        if "lore" in counts and "linear" in counts:
            entry["lore_vs_blackbox"] = round(counts["lore"] / counts["linear"], 4)
        flops_at[str(int(extra))] = entry
        say(f"GFLOPs at {extra}px ({other.num_patches} patches): {counts}")
        del other

    report = {
        "setup": {
            "backbone": settings.backbone, "weights": settings.weights, "backbone_kwargs": settings.backbone_kwargs,
            "img_size": size, "batch_size": B, "num_patches": backbone.num_patches, "depth": backbone.depth,
            "dim": backbone.dim, "knowledge": settings.knowledge, "knowledge_dim": width,
            "num_classes": settings.num_classes, "threads": torch.get_num_threads(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
            or platform.machine(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "warmup": settings.warmup, "infer_repeats": settings.infer_repeats,
            "train_repeats": settings.train_repeats, "timing": "median; methods interleaved per repeat",
            "flops": "torch.utils.flop_counter.FlopCounterMode, inference forward of one image, 2 FLOPs/MAC "
                     "(matmul, conv, attention)",
            "train_step": "forward + loss + backward + SGD(momentum 0.9, wd 1e-3) step; random images",
            "peak_mem": memory_how + " during one training step (activations, gradients, optimizer state, "
                        "temporaries; not the weights)",
            "arch": settings.arch, "method_options": settings.method_options,
        },
        "methods": results,
        "class_scaling": scaling,
        "targets": targets,
        "gflops_at_other_sizes": flops_at,
    }
    if settings.profile or any(not t["pass"] for t in targets.values()):
        steps = {f"{m} inference": make_infer_step(models[m], images) for m in ("vpt-deep", "lore") if m in models}
        steps.update({f"{m} train step": train_steps[m] for m in ("vpt-deep", "lore") if m in train_steps})
        if steps:
            say("profiling (a target was missed or --profile)")
            report["profile"] = str(profile_steps(steps, out / "complexity_profile.txt"))
    if "profile" not in report:
        (out / "complexity_profile.txt").unlink(missing_ok=True)  # an earlier run's, no longer true
    write_json(out / "complexity.json", report)
    write_text(out / "complexity.md", complexity_markdown(report))
    return report


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return format(value, spec)


def complexity_markdown(report: dict) -> str:
    s = report["setup"]
    lines = [
        "# Cost of the methods (paper Table 7)", "",
        f"Backbone `{s['backbone']}` ({s['weights']}), {s['img_size']} px ({s['num_patches']} patches), "
        f"batch {s['batch_size']}, {s['num_classes']} classes, device {s['device']} ({s['device_name']}), "
        f"{s['threads']} threads, torch {s['torch']}. Medians of {s['infer_repeats']} inference / "
        f"{s['train_repeats']} training repeats, methods interleaved.", "",
        "| method | trainable params | trainable % | GFLOPs / image | inference img/s | train step (s) | peak mem (MB) "
        "| GFLOPs × | img/s × | step × | mem × |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["methods"].items():
        ratio = r.get("vs_plain_vit") or {}
        lines.append(f"| {row_label(name, r.get('num_classes'))} (`{name}`) | {r['trainable_params']:,} | {r['trainable_pct']:.2f} | "
                     f"{_fmt(r['gflops'], '.3f')} | {_fmt(r['infer_img_per_s'], '.1f')} | "
                     f"{_fmt(r['train_step_s'], '.3f')} | {_fmt(r.get('peak_mem_mb'), '.0f')} | "
                     + " | ".join(_fmt(ratio.get(k), '.3f') for k in RATIO_METRICS) + " |")
    lines += ["", "× : ratio to the plain ViT (`linear`: the frozen ViT + a linear head), measured in the same run. "
                  "Trainable parameters include the head."]
    in_batch = {name: r for name, r in report["methods"].items() if "gflops_in_batch" in r}
    if in_batch:
        lines += ["", f"Text-side rows: GFLOPs/image above count one image, so the class prompts' text tower (C "
                      f"sequences) is all in it; per image in a batch of {s['batch_size']} (counted on the batch): "
                      + "; ".join(f"`{n}` {r['gflops_in_batch']:.3f} ({r['num_classes']:,} classes)"
                                  for n, r in in_batch.items())
                      + ". CoOp, ProGrad, MaPLe and CLIP-LoRA encode the C prompts once per batch; CoCoOp once per "
                        "image (B·C sequences, BASELINES_CLIP §3), so its cost per image does not fall with the batch "
                        "and grows with C."]
    scaling = report.get("class_scaling") or {}
    if scaling:
        few, many = scaling["classes"]
        lines += ["", f"LORE training step with {few} classes: {scaling[f'train_step_s_{few}']:.3f} s; "
                      f"with {many} classes: {scaling[f'train_step_s_{many}']:.3f} s (ratio {scaling['ratio']:.3f})."]
    lines += ["", "| target | ratio of medians | same-repeat ratio (median) | bound | result |",
              "|---|---:|---:|---:|---|"]
    for name, t in report["targets"].items():
        lines.append(f"| {name} | {_fmt(t['ratio'], '.3f')} | {_fmt(t.get('paired_ratio_median'), '.3f')} | "
                     f"{t['target']} | {'pass' if t['pass'] else 'FAIL'} |")
    for extra, entry in (report.get("gflops_at_other_sizes") or {}).items():
        counts = ", ".join(f"{m} {v:.2f}" for m, v in entry["gflops"].items())
        lines += ["", f"GFLOPs/image at {extra} px ({entry['num_patches']} patches, count only): {counts}"
                      + (f"; LORE / Black Box {entry['lore_vs_blackbox']:.3f}." if "lore_vs_blackbox" in entry else ".")]
    lines += ["", "Paper (RTX 3090, CLIP ViT-B/16, 224 px): B-B 45.2 GFLOPs, 106.1 img/s; B-B + VPT 0.2 % "
                  "trainable, 47.0 GFLOPs, 95.5 img/s; LORE 5.7 % trainable, 48.9 GFLOPs, 74.4 img/s.", "",
              f"FLOPs: {s['flops']}. Peak memory: {s['peak_mem']}. Training step: {s['train_step']}."]
    if "profile" in report:
        lines += ["", f"Profile of the missed targets: `{Path(report['profile']).name}`."]
    return "\n".join(lines) + "\n"
