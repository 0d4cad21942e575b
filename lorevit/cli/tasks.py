"""``lorevit bench tasks`` and ``lorevit standins``: argument parsing only; the work is in
:mod:`lorevit.tasks.bench`, imported when a command runs (``lorevit --help`` never imports torch)."""
from __future__ import annotations

from pathlib import Path

from lorevit.tasks import TASKS


def cmd_bench_tasks(args) -> int:
    from lorevit.utils.paths import sub_dir
    from lorevit.bench.tasks import run_tasks_bench
    from lorevit.tasks.bench import BenchContext, extractors_for
    from lorevit.utils.device import resolve_device
    from lorevit.tasks.errors import TaskError

    from lorevit.cli.options import output_folder

    output = output_folder(args.output, what="tasks.json, tasks.md and work/")
    from lorevit.adapters.paths import adapter_file, looks_like_repo_id

    adapter = Path(args.adapter)
    local = adapter_file(adapter) is not None
    if not local and (adapter.exists() or not looks_like_repo_id(str(args.adapter))):  # a Hub id is tried later
        raise TaskError(f"no adapter at {adapter}: train one first (`make demo` writes runs/demo), pass --adapter DIR "
                        "(a run or a `lorevit hub save` folder) or a Hugging Face Hub repo id org/name")
    tasks = [t for t in str(args.tasks).replace(" ", "").split(",") if t]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise TaskError(f"--tasks: unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    data_root = Path(args.data_root).expanduser() if args.data_root else None
    if data_root is not None and not data_root.is_dir():
        raise TaskError(f"--data-root {data_root} is not a folder")
    standins = Path(args.standins).expanduser() if args.standins else sub_dir("standins")
    weights = args.backbone_weights
    if weights not in ("unset", None):
        from lorevit.config import yaml_value

        weights = yaml_value(weights, "weights")
        weights = None if weights == "hub" else weights
    extractors = extractors_for(args.adapter if not local else adapter, resolve_device(args.device), args.base_size,
                                weights=weights, strict=args.strict)
    ctx = BenchContext(extractors, data_root, standins,
                       output / "work", quick=args.quick)
    run_tasks_bench(ctx, output, tasks)
    print(f"\ntasks written to {output}/tasks.{{json,md}}\n")
    print((output / "tasks.md").read_text())
    return 0


def cmd_standins(args) -> int:
    from lorevit.utils.paths import sub_dir
    from lorevit.bench.tasks import build_standins

    from lorevit.cli.options import output_folder

    root = output_folder(args.output, what="the stand-in datasets") if args.output else sub_dir("standins")
    tasks = [t for t in str(args.tasks).replace(" ", "").split(",") if t]
    built = build_standins(root, tasks)
    for task, names in built.items():
        print(f"{task}: {', '.join(names)} under {root / task}")
    return 0


def register_bench(sub) -> None:
    """``lorevit bench tasks`` (called by lorevit.cli.bench)."""
    p = sub.add_parser("tasks", help="the other tasks (retrieval, correspondence, video): B-B vs LORE → tasks.{json,md}",
                       description="B-B and LORE side by side on every task's real data (--data-root) or its "
                                   "stand-ins built from real images, with the trivial baselines.")
    from lorevit.cli.options import add_adapter_options

    p.add_argument("--adapter", default="runs/demo",
                   help="the LORE adapter: a run, a hub-style folder or a Hub repo id (default runs/demo, from `make demo`)")
    add_adapter_options(p)
    p.add_argument("--data-root", "--data_root", dest="data_root", default=None,
                   help="folder holding real datasets in their official layouts (roxford5k/, rparis6k/, SPair-71k/, DAVIS/)")
    p.add_argument("--standins", default=None, help="stand-in datasets folder (default $LOREVIT_HOME/standins; built if missing)")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    p.add_argument("--quick", action="store_true", help="a small slice of every dataset (smoke test)")
    p.add_argument("--base-size", "--base_size", dest="base_size", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--output", default="benchmarks/tasks")
    p.set_defaults(func=cmd_bench_tasks)


def register(commands) -> None:
    """``lorevit standins``: build the offline stand-in datasets (called by lorevit.cli)."""
    p = commands.add_parser("standins", help="build the offline stand-in datasets of the other tasks (official formats)")
    p.add_argument("--output", default=None, help="folder (default $LOREVIT_HOME/standins)")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    p.set_defaults(func=cmd_standins)
