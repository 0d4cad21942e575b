"""Propagate, score, draw: ``lorevit video-seg run`` as a function (TASKS_SPEC §3)."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from lorevit.utils.io import write_json
from lorevit.tasks.video.davis import Davis
from lorevit.tasks.video.evaluate import evaluate_folder, write_scores
from lorevit.tasks.video.propagate import PropagationConfig, propagate_folder


def run_video(davis_root: str | Path, extractor, output: str | Path, split: str = "val",
              sequences: list[str] | None = None, max_frames: int | None = None,
              cfg: PropagationConfig = PropagationConfig(), batch_size: int = 4, progress: bool = True,
              figure: bool = True, features=None) -> dict:
    """Predictions under ``output/<seq>/``, then ``scores.json`` + the official CSVs, ``run.json`` and a figure.

    ``max_frames``: only the first N frames of each sequence (propagated and scored alike).
    ``features``: a replacement for the extractor's patch features (tests); the extractor still gives
    the patch size and normalisation.
    """
    from lorevit.tasks.features import setup_record

    output = Path(output)
    davis = Davis(davis_root, need_frames=True)
    chosen = davis.sequences(split, sequences, max_frames)
    start = time.perf_counter()
    timing = propagate_folder(chosen, extractor, output, cfg, batch_size, progress, features)
    scores = evaluate_folder(davis_root, output, split, [s.name for s in chosen], max_frames, progress)
    figures = []
    if figure and chosen:
        from lorevit.tasks.video.figure import sequence_figure

        figures.append(str(sequence_figure(chosen[0], output, output / f"figure-{chosen[0].name}.png",
                                           title=f"{chosen[0].name}: {extractor.label} (top: ground truth, bottom: prediction)")))
    record = setup_record(extractor, task="video-seg", set=split, sequences=[s.name for s in chosen],
                          max_frames=max_frames, batch_size=batch_size, **asdict(cfg))
    report = {"setup": record, "timing": timing.summary(), "wall_s": round(time.perf_counter() - start, 2),
              "scores": {k: v for k, v in scores.items() if k != "per_object"}, "figures": figures}
    write_scores(output, scores, split)
    write_json(output / "run.json", report)
    report["per_object"] = scores["per_object"]
    return report


def describe(report: dict) -> str:
    """The lines ``video-seg run`` prints: J&F and the frames/s broken down by stage."""
    s, t = report["scores"], report["timing"]
    frames = max(t["frames"], 1)
    per = {k: 1000 * t[k] / frames for k in ("read", "features", "propagation", "write")}
    return (f"J&F-Mean {100 * s['J&F-Mean']:.2f}  (J-Mean {100 * s['J-Mean']:.2f}, F-Mean {100 * s['F-Mean']:.2f}) "
            f"on {s['evaluated']['sequences']} sequence(s), {s['evaluated']['objects']} object(s)\n"
            f"{t['frames_per_s']} frames/s over {t['frames']} frames: feature extraction {per['features']:.0f} ms/frame "
            f"({100 * t['share_features']:.1f} %), propagation {per['propagation']:.0f} ms/frame "
            f"({100 * t['share_propagation']:.1f} %), reading {per['read']:.0f} ms, writing {per['write']:.0f} ms; "
            f"everything but the ViT {100 * t['share_non_vit']:.1f} % (target ≤ 25 %)")
