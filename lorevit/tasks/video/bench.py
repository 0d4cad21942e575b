"""The video columns of ``lorevit bench tasks``: DAVIS-2017 J&F-Mean, J-Mean, F-Mean (percent).

Real DAVIS-2017 val when ``<data-root>/DAVIS`` holds it (every sequence, every frame), else the V1
stand-in (moving cut-outs, :mod:`lorevit.tasks.standins.video`). Rows: B-B, LORE and the "copy first frame" baseline,
all on exactly the same frames. On the stand-in the default is a subsample — the first
``STANDIN_MAX_FRAMES`` frames of each of its 4 sequences — because ViT-S/14 at 480p runs at about
2–3 s a frame on a 2-core CPU (the whole set, 198 frames × 2 sources, would take ~20 min);
``LOREVIT_VIDEO_MAX_FRAMES=0`` lifts it. ``ctx.quick``: 2 sequences × 6 frames, never upscaled
beyond the frames' own short side.
"""
from __future__ import annotations

import os
from pathlib import Path

from lorevit.tasks.bench import BenchContext, TaskResult
from lorevit.tasks.video.davis import Davis
from lorevit.tasks.video.evaluate import evaluate_folder
from lorevit.tasks.video.propagate import PropagationConfig, copy_first_frame
from lorevit.tasks.video.run import run_video

STANDIN_MAX_FRAMES = 20
COLUMNS = ["J&F-Mean", "J-Mean", "F-Mean"]
BASELINE = "copy first frame"


def _dataset(ctx: BenchContext) -> tuple[Path, str, str]:
    if ctx.data_root is not None and (ctx.data_root / "DAVIS" / "ImageSets" / "2017" / "val.txt").is_file():
        return ctx.data_root / "DAVIS", "davis2017-val", "real"
    from lorevit.tasks.standins.video import build

    root = ctx.standins_root / "video"
    build(root, say=ctx.say)
    return root / "DAVIS", "standin-davis-cutouts", "stand-in"


def _limits(ctx: BenchContext, kind: str, davis: Davis) -> tuple[list[str] | None, int | None]:
    names = davis.names("val")
    if ctx.quick:
        return names[:2], 6
    if kind == "real":
        return None, None
    raw = os.environ.get("LOREVIT_VIDEO_MAX_FRAMES")
    limit = STANDIN_MAX_FRAMES if raw is None else int(raw)
    return None, (limit or None)


def _quick_short_side(sequences) -> int:
    """Quick runs never upscale: the protocol's 480, or the frames' own short side when smaller (tiny fixtures)."""
    from PIL import Image

    with Image.open(sequences[0].frames[0]) as image:
        return min(480, min(image.size))


def _percent(scores: dict) -> dict:
    return {k: 100 * scores[k] for k in COLUMNS}


def bench(ctx: BenchContext) -> list[TaskResult]:
    davis_root, dataset, kind = _dataset(ctx)
    davis = Davis(davis_root, need_frames=True)
    sequences, max_frames = _limits(ctx, kind, davis)
    chosen = davis.sequences("val", sequences, max_frames)
    work = ctx.work_dir / "video" / dataset
    cfg = PropagationConfig(short_side=_quick_short_side(chosen)) if ctx.quick else PropagationConfig()
    rows, throughput, timings, figures = {}, {}, {}, {}
    for name, extractor in ctx.extractors.items():
        ctx.say(f"[video] {dataset}: {name}, {len(chosen)} sequence(s), {sum(len(s) for s in chosen)} frames")
        report = run_video(davis_root, extractor, work / name, "val", [s.name for s in chosen], max_frames, cfg,
                           batch_size=4, progress=True, figure=True)
        rows[name] = _percent(report["scores"])
        throughput[name] = report["timing"]["frames_per_s"]
        timings[name] = report["timing"]
        figures[name] = report["figures"]
    copy_first_frame(chosen, work / "copy-first")
    rows[BASELINE] = _percent(evaluate_folder(davis_root, work / "copy-first", "val", [s.name for s in chosen], max_frames))
    shares = {n: f"{100 * t['share_features']:.0f} % ViT / {100 * t['share_propagation']:.0f} % propagation"
              for n, t in timings.items()}
    notes = (f"DINO label propagation (first + 7 last frames, 12-patch neighbourhood, top-5, τ 0.1, 480p), "
             f"official DAVIS-2017 scoring; {len(chosen)} sequences"
             + (f", first {max_frames} frames each" if max_frames else "") + "; time split: "
             + "; ".join(f"{n} {s}" for n, s in shares.items()))
    if kind == "stand-in":
        notes += ". Stand-in: real textures moving along known paths, not comparable to DAVIS."
    details = {"sequences": [s.name for s in chosen], "max_frames": max_frames, "protocol": cfg.__dict__,
               "timing": timings, "figures": figures, "work_dir": str(work)}
    return [TaskResult("video", dataset, kind, list(COLUMNS), rows, "percent", throughput, "frames/s", notes, details)]
