"""``lorevit report``: one table over many runs (mean ± std over seeds) as Markdown, CSV and a figure."""
from __future__ import annotations

import sys


def cmd_report(args) -> int:
    from lorevit.tools.report import report

    text, notes = report(args.runs, args.output)
    for note in notes:
        print(f"lorevit: note: {note}", file=sys.stderr)
    print(text, end="")
    if args.output:
        print(f"\nreport written to {args.output}/report.{{md,csv,png}}")
    return 0


def register(commands) -> None:
    """``lorevit report``."""
    parser = commands.add_parser(
        "report", help="one table over many runs: mean ± std over seeds, as Markdown, CSV and a bar figure",
        description="Group finished runs by method, dataset, shots and backbone (and any other config key that "
                    "differs between them, e.g. epochs or lr), aggregate over seeds (mean ± sample std), and print "
                    "the Markdown table. A run is a folder holding metrics.json and config.yaml; folders without "
                    "metrics.json (unfinished runs) are skipped with a note.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders, parent folders (every folder with metrics.json + config.yaml below them "
                             "is a run) and globs (quoted globs work: 'runs/lore-*')")
    parser.add_argument("--output", metavar="DIR", help="also write report.md, report.csv and report.png (bars: "
                                                        "top-1 mean, error bars: std over seeds) into DIR")
    parser.set_defaults(func=cmd_report)
