"""``lorevit video-seg score`` and ``lorevit video-seg run`` (registered by ``lorevit.cli``).

    lorevit video-seg score --davis-root D --results R [--set val] [--sequences a,b] [--max-frames N]
    lorevit video-seg run --davis-root D [--adapter DIR | --backbone NAME --weights W] --output R
                          [--set val] [--sequences a,b] [--max-frames N] [--normalisation backbone|dino]

``score`` grades any method's ``R/<seq>/<frame>.png`` like the official DAVIS-2017 evaluator and writes
``R/scores.json``, ``R/global_results-<set>.csv`` and ``R/per-sequence_results-<set>.csv`` (always
recomputed). ``run`` propagates frame 0's mask with DINO's label propagation on B-B or adapter
features, then scores, and prints J&F-Mean and the frames/s broken down into feature extraction and
propagation.
"""
from __future__ import annotations

from pathlib import Path

from lorevit.tasks.errors import TaskError


def _names(text: str | None) -> list[str] | None:
    names = [n for n in str(text or "").replace(" ", "").split(",") if n]
    return names or None


def _positive(value: int | None, flag: str) -> int | None:
    if value is not None and value < 3:
        raise TaskError(f"{flag} must be at least 3 (the first and last frames are not scored), got {value}")
    return value


def cmd_score(args) -> int:
    from lorevit.tasks.video.evaluate import score

    scores = score(args.davis_root, args.results, args.set, _names(args.sequences),
                   _positive(args.max_frames, "--max-frames"), progress=True)
    print(f"J&F-Mean {scores['J&F-Mean']:.6f}  J-Mean {scores['J-Mean']:.6f}  J-Recall {scores['J-Recall']:.6f}  "
          f"J-Decay {scores['J-Decay']:.6f}  F-Mean {scores['F-Mean']:.6f}  F-Recall {scores['F-Recall']:.6f}  "
          f"F-Decay {scores['F-Decay']:.6f}")
    print(f"{scores['evaluated']['objects']} objects of {scores['evaluated']['sequences']} sequences; "
          f"written to {Path(args.results) / 'scores.json'} and the two CSVs")
    return 0


def cmd_run(args) -> int:
    from lorevit.cli.options import extractor_from_args, output_folder
    from lorevit.tasks.video.davis import Davis
    from lorevit.tasks.video.propagate import PropagationConfig
    from lorevit.tasks.video.run import describe, run_video

    cfg = PropagationConfig(n_last_frames=args.n_last_frames, size_mask_neighborhood=args.size_mask_neighborhood,
                            topk=args.topk, temperature=args.temperature, short_side=args.short_side,
                            normalisation=args.normalisation)
    output_folder(args.output, what="the predictions, scores.json, the CSVs and run.json")
    Davis(args.davis_root, need_frames=True).sequences(args.set, _names(args.sequences))  # bad input before the model
    extractor = extractor_from_args(args)
    report = run_video(args.davis_root, extractor, args.output, args.set, _names(args.sequences),
                       _positive(args.max_frames, "--max-frames"), cfg, args.batch_size, progress=True,
                       figure=not args.no_figure)
    print(describe(report))
    print(f"predictions, scores.json, the official CSVs and run.json written to {args.output}")
    return 0


def register(commands) -> None:
    from lorevit.cli.options import add_source_options

    video = commands.add_parser("video-seg", help="DAVIS-2017 semi-supervised video segmentation: propagate, score")
    sub = video.add_subparsers(dest="video_command", required=True)

    def common(p):
        p.add_argument("--davis-root", "--davis_root", dest="davis_root", required=True,
                       help="the DAVIS folder (JPEGImages/480p, Annotations/480p, ImageSets/2017)")
        p.add_argument("--set", default="val", help="ImageSets/2017/<set>.txt (default val)")
        p.add_argument("--sequences", default=None, help="comma-separated subset of the set's sequences")
        p.add_argument("--max-frames", "--max_frames", dest="max_frames", type=int, default=None,
                       help="only the first N frames of each sequence (a subsampled run; default all)")

    score = sub.add_parser("score", help="score a results folder like the official davis2017-evaluation",
                           description="J, F (boundary), Mean/Recall/Decay per object and J&F-Mean, exactly as the "
                                       "official semi-supervised evaluator; writes R/scores.json and its two CSVs.")
    common(score)
    score.add_argument("--results", required=True, help="folder of <seq>/<frame>.png indexed predictions")
    score.set_defaults(func=cmd_score)

    run = sub.add_parser("run", help="propagate frame 0's masks with DINO's label propagation, then score",
                         description="DINO's label propagation (7 last frames + first, 12-patch neighbourhood, "
                                     "top-5, τ 0.1, 480p) on B-B or adapter patch tokens; then the official scoring.")
    common(run)
    run.add_argument("--output", required=True, help="results folder (predictions, scores.json, CSVs, run.json, figure)")
    add_source_options(run)
    run.set_defaults(batch_size=4)
    proto = run.add_argument_group("propagation (DINO's defaults)")
    proto.add_argument("--n-last-frames", dest="n_last_frames", type=int, default=7)
    proto.add_argument("--size-mask-neighborhood", dest="size_mask_neighborhood", type=int, default=12)
    proto.add_argument("--topk", type=int, default=5)
    proto.add_argument("--temperature", type=float, default=0.1)
    proto.add_argument("--short-side", dest="short_side", type=int, default=480)
    proto.add_argument("--normalisation", choices=("backbone", "dino"), default="backbone",
                       help="backbone: its own mean/std (default); dino: ImageNet mean, std (0.228, 0.224, 0.225)")
    run.add_argument("--no-figure", action="store_true", help="skip the overlay figure")
    run.set_defaults(func=cmd_run)
