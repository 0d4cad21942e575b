"""``lorevit bench locality``: argument parsing only; the work is :func:`lorevit.bench.locality.run_locality`.

    lorevit bench locality --adapter runs/lore [--adapter runs/vpt ...] [--dataset fashion-mnist | davis |
                           video-standins | spair | imagefolder ...] [--data-root DIR] [--limit 500] --output OUT
"""
from __future__ import annotations

from pathlib import Path

from lorevit.adapters.paths import check_adapter_reference


def cmd_locality(args) -> int:
    from lorevit.errors import ConfigError

    if args.limit < 0:
        raise ConfigError("--limit must be a positive integer (0: every image)")
    for adapter in args.adapter:
        check_adapter_reference(adapter)
    from lorevit.bench.locality import LocalitySettings, run_locality

    settings = LocalitySettings(adapters=list(args.adapter), dataset=args.dataset, data_root=args.data_root,
                                split=args.split, limit=args.limit or None, seed=args.seed, batch_size=args.batch_size,
                                resamples=args.resamples, device=args.device, standins_root=args.standins,
                                weights=getattr(args, "backbone_weights", "unset"), strict=getattr(args, "strict", False))
    run_locality(settings, args.output, progress=print)
    print(f"\nlocality written to {args.output}/locality.{{json,md,png}}\n")
    print(Path(args.output, "locality.md").read_text())
    return 0


def register_locality(sub) -> None:
    from lorevit.cli.options import add_adapter_options

    p = sub.add_parser("locality", help="share of attention inside the object mask and pointing game: B-B vs adapters "
                                        "→ locality.{json,md,png}",
                       description="For images with object masks: the last-block CLS attention of the Black Box and of "
                                   "each adapter (and LORE's KLA attention), scored against the mask, with 95 % "
                                   "bootstrap intervals, the chance level and the paired difference adapter − B-B.")
    p.add_argument("--adapter", action="append", required=True, help="a run's output directory (repeatable: one row each)")
    p.add_argument("--dataset", default=None,
                   help="fashion-mnist (threshold masks) | davis (--data-root: a DAVIS-2017 folder) | video-standins | "
                        "spair (--data-root: the folder of SPair-71k/, box masks) | "
                        "a dataset with a masks/ folder in its root (default: the first adapter's)")
    p.add_argument("--data-root", "--data_root", dest="data_root", default=None)
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--limit", type=int, default=500, help="images (frames) scored, a seeded subset (default 500; 0: all)")
    p.add_argument("--seed", type=int, default=0, help="which images, and the bootstrap's draws")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap draws (default 2000)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=50)
    p.add_argument("--device", default="cpu", help="cpu (default) | auto | cuda[:i]")
    p.add_argument("--standins", default=None, help="where video-standins are built (default: lorevit's stand-ins folder)")
    p.add_argument("--output", default="benchmarks/locality", help="directory (default benchmarks/locality)")
    add_adapter_options(p)
    p.set_defaults(func=cmd_locality)
