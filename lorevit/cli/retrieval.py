"""``lorevit retrieval``: Revisited Oxford5k / Paris6k (or a stand-in in their layout) → ``OUT/retrieval.json``.

    lorevit retrieval --dataset roxford5k --data-root D [--adapter DIR | --backbone NAME --weights W]
                      [--imsize 224] [--crop-queries] [--multiscale] --output OUT
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lorevit.tasks.errors import TaskError


def register(commands) -> None:
    from lorevit.cli.options import add_source_options

    p = commands.add_parser(
        "retrieval", help="image retrieval on Revisited Oxford/Paris (mAP Easy/Medium/Hard) → OUT/retrieval.json",
        description="Rank the database of <data-root>/<dataset>/ (gnd_<dataset>.pkl + jpg/) for every query by the "
                    "cosine of CLS features (B-B, or an adapter's), and score it with the official revisitop "
                    "evaluator (mAP and mP@1/5/10 for the Easy, Medium and Hard protocols, as fractions).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", required=True,
                   help="roxford5k, rparis6k, or any folder name laid out the same way (e.g. a stand-in)")
    p.add_argument("--data-root", "--data_root", dest="data_root", required=True,
                   help="folder holding <dataset>/gnd_<dataset>.pkl and <dataset>/jpg/")
    p.add_argument("--output", required=True, help="results folder (retrieval.json is written there)")
    p.add_argument("--imsize", type=int, default=224,
                   help="longer side of the PIL thumbnail (aspect kept, never upsampled); 0 = full resolution")
    p.add_argument("--crop-queries", "--crop_queries", dest="crop_queries", action="store_true",
                   help="official protocol: crop each query to its bbx before resizing (default: DINO's, no crop)")
    p.add_argument("--multiscale", action="store_true", help="average the CLS over scales 1, 1/√2, 1/2 (DINO)")
    p.add_argument("--allow-numpy-pickle", dest="allow_numpy", action="store_true", default=True,
                   help="kept for old scripts: numpy arrays in the gnd pickle are always accepted now (numpy's "
                        "array reconstructors only, as for CIFAR; no other global ever)")
    add_source_options(p)
    p.set_defaults(func=cmd_retrieval)


def cmd_retrieval(args) -> int:
    from lorevit.utils.io import write_json
    from lorevit.cli.options import extractor_from_args, output_folder
    from lorevit.tasks.retrieval.dataset import read_dataset
    from lorevit.tasks.retrieval.run import retrieval_setup, run_retrieval

    if not args.dataset or any(c in args.dataset for c in "/\\") or args.dataset in (".", ".."):
        raise TaskError(f"--dataset {args.dataset!r} must be a folder name under --data-root, e.g. roxford5k")
    if args.imsize < 0:
        raise TaskError(f"--imsize must be ≥ 0 (0 = full resolution), got {args.imsize}")
    output = output_folder(args.output, what="retrieval.json")
    dataset = read_dataset(args.data_root, args.dataset, allow_numpy=args.allow_numpy)  # all checks first
    extractor = extractor_from_args(args)
    imsize = args.imsize or None
    result = run_retrieval(extractor, dataset, imsize, args.crop_queries, args.multiscale, args.batch_size)
    result["setup"] = retrieval_setup(extractor, args.dataset, args.data_root, imsize, args.crop_queries,
                                      args.multiscale, args.batch_size)
    write_json(output / "retrieval.json", result)
    print(summary(result, output / "retrieval.json"))
    return 0


def summary(result: dict, path) -> str:
    m = {k: "—" if v is None else f"{v:.3f}" for k, v in result["mAP"].items()}
    label = result.get("setup", {}).get("features", "")
    return (f"retrieval {result['dataset']} {label}: mAP E {m['easy']} M {m['medium']} H {m['hard']} "
            f"({result['n_queries']} queries, {result['n_db']} database images, {result['images_per_s']:.1f} img/s) → {path}")
