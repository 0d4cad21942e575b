"""``lorevit bench tasks``: the paper's "other tasks" table, B-B and LORE side by side.

For every task (retrieval, correspondence, video) and every dataset available — the real one when
``--data-root`` holds it in its official layout, the stand-ins built from real images otherwise —
both feature sources run on the same data, and the trivial baseline of each task is an extra row.
Writes ``tasks.json`` and ``tasks.md`` (rows B-B, LORE, baselines; columns per task and metric),
plus the feature-extraction throughput of B-B and LORE measured side by side in one run.

The tasks are one explicit table (:data:`TASK_BENCHES`, :data:`TASK_STANDINS`): a task plugs in with a
``bench(ctx) -> list[TaskResult]`` (:mod:`lorevit.tasks.bench`) and a stand-in ``build(root, say)``.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from lorevit.tasks import TASKS
from lorevit.tasks.bench import BenchContext, TaskResult
from lorevit.tasks.correspondence import bench as correspondence_bench
from lorevit.tasks.errors import TaskError
from lorevit.tasks.features import FeatureExtractor
from lorevit.tasks.retrieval import bench as retrieval_bench
from lorevit.tasks.standins import correspondence as correspondence_standins
from lorevit.tasks.standins import retrieval as retrieval_standins
from lorevit.tasks.standins import video as video_standins
from lorevit.tasks.video import bench as video_bench
from lorevit.utils.io import write_json, write_text

TASK_BENCHES = {"retrieval": retrieval_bench.bench, "correspondence": correspondence_bench.bench,
                "video": video_bench.bench}
TASK_STANDINS = {"retrieval": retrieval_standins.build, "correspondence": correspondence_standins.build,
                 "video": video_standins.build}


THROUGHPUT_TARGET = 0.85  # LORE feature extraction ≥ 0.85 × B-B's images/s (issue target)


def build_standins(root: Path, tasks=TASKS, say: Callable[[str], None] = print) -> dict[str, list[str]]:
    """Build (or find, they are cached) every task's stand-in datasets under ``root``."""
    built = {}
    for task in tasks:
        built[task] = TASK_STANDINS[task](root / task, say=say)
    return built


@torch.no_grad()
def extraction_throughput(extractors: dict[str, FeatureExtractor], size: int = 224, batch: int = 8,
                          repeats: int = 5, seed: int = 0) -> dict:
    """images/s of each extractor on the same batch, repeats interleaved; medians and their ratio."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=generator)
    times: dict[str, list[float]] = {name: [] for name in extractors}
    for name, extractor in extractors.items():  # warm-up
        extractor(images.to(extractor.device))
    for _ in range(repeats):
        for name, extractor in extractors.items():
            x = images.to(extractor.device)
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            extractor(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    result = {"img_size": size, "batch": batch, "repeats": repeats,
              "images_per_s": {n: round(batch / statistics.median(t), 2) for n, t in times.items()}}
    names = list(extractors)
    if len(names) == 2:
        a, b = names
        same_repeat = [ta / tb for ta, tb in zip(times[a], times[b])]  # images/s of b relative to a
        result["ratio"] = {"name": f"{b} / {a}", "of_medians": round(statistics.median(times[a]) / statistics.median(times[b]), 3),
                           "same_repeat_median": round(statistics.median(same_repeat), 3),
                           "target": f">= {THROUGHPUT_TARGET}"}
        result["ratio"]["result"] = "pass" if result["ratio"]["of_medians"] >= THROUGHPUT_TARGET else "fail"
    return result


def _fmt(value, scale: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.2f}" if scale == "percent" else f"{value:.3f}"


def markdown(results: list[TaskResult], throughput: dict, setup: dict) -> str:
    """The paper's layout: one row per feature source (then baselines), one column per dataset × metric."""
    columns = [(r, c) for r in results for c in r.columns]
    rows: list[str] = []
    for r in results:
        for row in r.rows:
            if row not in rows:
                rows.append(row)
    head = "| features | " + " | ".join(f"{r.dataset} {c}" for r, c in columns) + " |"
    lines = [head, "|---|" + "---:|" * len(columns)]
    for row in rows:
        cells = [_fmt(r.rows.get(row, {}).get(c), r.scale) for r, c in columns]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    kinds = ", ".join(f"{r.dataset} ({r.task}, {r.kind}, {'mAP as fractions' if r.scale == 'fraction' else 'percent'})"
                      for r in results)
    out = ["# Other tasks: B-B vs LORE", "", f"Adapter: `{setup.get('adapter')}`; backbone `{setup.get('backbone')}`.",
           "", *lines, "", f"Datasets: {kinds}.", ""]
    speed = [r for r in results if r.throughput]
    if speed:
        out += ["| task | dataset | " + " | ".join(f"{n}" for n in throughput.get("images_per_s", {})) + " | unit |",
                "|---|---|" + "---:|" * len(throughput.get("images_per_s", {})) + "---|"]
        for r in speed:
            out.append(f"| {r.task} | {r.dataset} | " + " | ".join(
                _fmt(r.throughput.get(n), "percent") for n in throughput.get("images_per_s", {})) + f" | {r.unit} |")
        out.append("")
    if throughput:
        ips = throughput["images_per_s"]
        line = (f"Feature extraction at {throughput['img_size']} px, batch {throughput['batch']}, median of "
                f"{throughput['repeats']} interleaved repeats: " + ", ".join(f"{n} {v:.1f} img/s" for n, v in ips.items()))
        if "ratio" in throughput:
            q = throughput["ratio"]
            line += f"; {q['name']} = {q['of_medians']:.3f} (target {q['target']}: {q['result']})"
        out += [line + ".", "", "Per-task rates come from separate passes and move with the machine's load; the "
                "interleaved feature-extraction ratio above is the fair comparison.", ""]
    for r in results:
        if r.notes:
            out.append(f"- **{r.task} / {r.dataset}**: {r.notes}")
    return "\n".join(out).rstrip() + "\n"


def run_tasks_bench(ctx: BenchContext, output: Path, tasks=TASKS, throughput: bool = True) -> dict:
    """Run every available task on B-B and LORE; write ``tasks.json`` and ``tasks.md`` at the end only."""
    results: list[TaskResult] = []
    for task in tasks:
        ctx.say(f"[{task}] running")
        results.extend(TASK_BENCHES[task](ctx))
    if not results:
        raise TaskError("no task could be benchmarked")
    speed = extraction_throughput(ctx.extractors, repeats=2 if ctx.quick else 5) if throughput else {}
    first = next(iter(ctx.extractors.values()))
    lore = ctx.extractors.get("LORE")
    setup = {"adapter": (lore.provenance.get("adapter") if lore is not None else None),
             "adapter_provenance": lore.provenance if lore is not None else None,
             "backbone": first.provenance.get("backbone"), "weights": first.provenance.get("weights"),
             "quick": ctx.quick, "data_root": str(ctx.data_root) if ctx.data_root else None,
             "torch_threads": torch.get_num_threads(), "device": str(first.device)}
    report = {"setup": setup, "results": [asdict(r) for r in results], "feature_throughput": speed}
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "tasks.json", json.loads(json.dumps(report, default=str)))
    write_text(output / "tasks.md", markdown(results, speed, setup))
    return report
