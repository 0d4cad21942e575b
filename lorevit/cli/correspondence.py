"""``lorevit correspondence``: PCK@α on SPair-71k (or its stand-ins) with B-B or an adapter (TASKS_SPEC §2).

    lorevit correspondence --data-root D [--adapter DIR | --backbone NAME --weights W] [--split test]
                           [--category cat ...] [--skip-bad] [--max-pairs N] --output OUT

writes, at the very end only, ``OUT/predictions.json``, ``OUT/correspondence.png`` and
``OUT/correspondence.json`` (PCK in percent at α 0.1, 0.05, 0.15; setup and provenance; pairs/s).
"""
from __future__ import annotations

import argparse


def register(commands) -> None:
    from lorevit.cli.options import add_source_options

    p = commands.add_parser("correspondence", help="SPair-71k point correspondence (PCK@α) with B-B or an adapter",
                            description="Semantic point correspondence by upsampled patch-token cosine "
                                        "(TASKS_SPEC §2): each source keypoint's nearest neighbour over every "
                                        "target pixel, as DIFT's evaluation (not the paper prose's mutual nearest "
                                        "neighbours, which would leave keypoints unscored; docs/correspondence.md). "
                                        "PCK@0.1 (also 0.05, 0.15) per image, per point, per category.")
    p.add_argument("--data-root", "--data_root", dest="data_root", required=True,
                   help="the SPair-71k folder (JPEGImages/, PairAnnotation/, Layout/) or a folder holding SPair-71k/")
    p.add_argument("--split", default="test", help="trn | val | test (default test)")
    p.add_argument("--category", action="append", default=None,
                   help="only these categories (repeat or comma-separate; default all)")
    p.add_argument("--skip-bad", "--skip_bad", dest="skip_bad", action="store_true",
                   help="skip malformed pairs (counted in the results) instead of stopping")
    p.add_argument("--max-pairs", "--max_pairs", dest="max_pairs", type=int, default=None,
                   help="at most N pairs per category, the first in layout order (default: all)")
    p.add_argument("--image-size", "--image_size", dest="image_size", type=int, default=224,
                   help="square input size of the ViT (default 224, the spec's)")
    p.add_argument("--method", choices=("trick", "explicit"), default="trick",
                   help="trick: exact cosine without a C×H×W map (default); explicit: the upsampled-map reference")
    p.add_argument("--figure-pairs", "--figure_pairs", dest="figure_pairs", type=int, default=4,
                   help="pairs drawn in OUT/correspondence.png, spread over the set (0: no figure)")
    p.add_argument("--output", required=True, help="results folder")
    add_source_options(p)
    p.set_defaults(func=cmd_correspondence)


def _categories(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [c for v in values for c in v.replace(" ", "").split(",") if c]


def cmd_correspondence(args: argparse.Namespace) -> int:
    from lorevit.cli.options import extractor_from_args, output_folder
    from lorevit.tasks.correspondence.run import run_correspondence
    from lorevit.tasks.correspondence.spair import read_pairs
    from lorevit.tasks.errors import TaskError

    if args.max_pairs is not None and args.max_pairs < 1:
        raise TaskError(f"--max-pairs must be a positive integer, got {args.max_pairs}")
    if args.image_size < 1:
        raise TaskError(f"--image-size must be a positive integer, got {args.image_size}")
    output = output_folder(args.output, what="predictions.json, correspondence.json and the figure")
    data = read_pairs(args.data_root, args.split, _categories(args.category), skip_bad=args.skip_bad)  # bad input first
    extractor = extractor_from_args(args)
    report = run_correspondence(data, extractor, output, args.image_size, args.method, args.batch_size,
                                args.max_pairs, args.figure_pairs)
    table, identity = report["pck"], report["identity_baseline"]
    p = table["0.1"]
    skipped = f", {len(data.skipped)} bad pair(s) skipped" if data.skipped else ""
    print(f"correspondence [{extractor.label}] {report['pairs']} pairs{skipped}: PCK@0.1 per image {p['per_image']:.2f}, "
          f"per point {p['per_point']:.2f}, category mean {p['category_mean']:.2f} "
          f"(identity {identity['0.1']['per_image']:.2f}); {report['pairs_per_s']:.2f} pairs/s → {output}/correspondence.json")
    return 0


