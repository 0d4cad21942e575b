"""``lorevit report RUN_DIR... [--output DIR]``: one table over many runs (issue 12 §3).

Every folder holding ``metrics.json`` + ``config.yaml`` (what ``lorevit train`` writes) is a run;
arguments may be run folders, parent folders (searched below) and globs. Runs are grouped by
method, dataset, shots (``full`` / ``e2h N`` for the other protocols), backbone, and — when a
run uses a non-default one — ``white_box`` and ``head``; runs of one group that differ only in their seed
are aggregated (mean ± sample std over seeds). A config key other than those that differs *within*
such a group (``epochs``, ``lr``, ...) becomes one more grouping column, so runs with different
settings are never merged silently. Keys that cannot change a result (``IGNORED_KEYS``: seed,
output, progress, workers, loggers, ...) are left out of that comparison.

    lorevit report runs/                         # every run below runs/
    lorevit report 'runs/lore-*' runs/vpt --output reports/fmnist
        → prints the Markdown table; --output writes report.md, report.csv, report.png

A run's ``env.json`` (lorevit.training.envinfo) is read when present: a group whose runs come from
different lorevit or torch versions, or different git commits, gets a note.

This module imports no torch: ``lorevit report`` answers at once.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import io
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lorevit.config import REPORT_IGNORED_KEYS
from lorevit.errors import UserError

# Config keys that never change what is trained or measured: not compared between runs of a group.
IGNORED_KEYS = REPORT_IGNORED_KEYS  # from the config keys' tags: the seed, and keys that cannot change a result
# The grouping columns taken from each config (shots is derived from protocol, shots and stage_shots).
BASE_COLUMNS = ("method", "dataset", "shots", "backbone")
OPTIONAL_COLUMNS = ("white_box", "head")  # shown when some run has a value other than Config's default
_SHOT_KEYS = ("protocol", "shots", "stage_shots")


class ReportError(UserError, ValueError):
    """The runs asked for cannot be reported (none found, an unreadable file)."""


@dataclass
class Run:
    path: Path
    config: dict  # config.yaml, with Config's defaults for keys older runs lack
    metrics: dict
    env: dict | None = None


@dataclass
class Row:
    """One line of the report: a group of runs that differ only in their seed."""
    columns: dict  # grouping column → display value
    runs: list = field(default_factory=list)
    note: str = ""

    def stats(self, key: str) -> dict | None:
        values = [round(float(r.metrics[key]), 4) for r in self.runs if r.metrics.get(key) is not None]
        return seed_stats(values) if values else None

    @property
    def seeds(self) -> list:
        return sorted(r.config.get("seed") for r in self.runs)

    @property
    def train_s(self) -> float | None:
        times = [float(r.metrics["train_s"]) for r in self.runs if r.metrics.get("train_s") is not None]
        return statistics.fmean(times) if times else None


def seed_stats(values) -> dict:
    """Mean and sample standard deviation (n − 1) over seeds, rounded to 4 decimals; std 0.0 for one seed.

    Shared with ``lorevit bench ablation``'s table.
    """
    values = list(values)
    return {"mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}


# ----------------------------------------------------------------------------- finding and reading runs


def _config_defaults() -> dict:
    from lorevit.config import Config

    defaults = {}
    for f in dataclasses.fields(Config):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            defaults[f.name] = f.default_factory()  # type: ignore[misc]
    return defaults


def expand(arguments) -> list[tuple[Path, bool]]:
    """(path, came from a glob) for the arguments: globs expanded here too (a quoted glob works), ``~`` expanded."""
    paths = []
    for arg in arguments:
        arg = os.path.expanduser(str(arg))
        if glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise ReportError(f"{arg!r} matches nothing; check the pattern")
            paths += [(Path(m), True) for m in matches]
        elif not os.path.exists(arg):
            raise ReportError(f"{arg}: no such file or folder; give run folders, their parent folders or globs")
        else:
            paths.append((Path(arg), False))
    return paths


def find_runs(arguments) -> tuple[list[Path], list[str]]:
    """Run folders (holding metrics.json + config.yaml) at or below the arguments, and notes on folders skipped."""
    found, notes, seen = [], [], set()

    def visit(folder: Path) -> None:
        key = folder.resolve()
        if key in seen:
            return
        seen.add(key)
        has_metrics, has_config = (folder / "metrics.json").is_file(), (folder / "config.yaml").is_file()
        if has_metrics and has_config:
            found.append(folder)
            return
        if has_config:  # a run started but not finished: no results yet
            notes.append(f"skipped {folder}: no metrics.json (unfinished run)")
            return
        if has_metrics:
            notes.append(f"skipped {folder}: metrics.json without config.yaml (not a lorevit train run)")
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError as err:
            notes.append(f"skipped {folder}: cannot list it ({err.strerror or err})")
            return
        for child in children:
            visit(child)

    for path, globbed in expand(arguments):
        if path.is_file():
            if path.name not in ("metrics.json", "config.yaml"):
                if globbed:  # 'runs/*' also matches files beside the runs: not an error
                    continue
                raise ReportError(f"{path} is a file; give run folders (holding metrics.json and config.yaml), "
                                  "their parent folders or globs")
            path = path.parent
        visit(path)
    return found, notes


def _read(path: Path, kind: str):
    try:
        text = path.read_text()
        return json.loads(text) if kind == "json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ReportError(f"cannot read {path} ({reason}); fix or remove that run") from None


def load_run(folder: Path, defaults: dict | None = None) -> Run:
    metrics = _read(folder / "metrics.json", "json")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test_top1"), (int, float)):
        raise ReportError(f"{folder / 'metrics.json'} has no numeric test_top1; it is not a finished lorevit run's "
                          "metrics — fix or remove that run")
    raw = _read(folder / "config.yaml", "yaml")
    if not isinstance(raw, dict) or "method" not in raw:
        raise ReportError(f"{folder / 'config.yaml'} is not a lorevit config (no method key); fix or remove that run")
    env = None
    if (folder / "env.json").is_file():
        try:
            env = json.loads((folder / "env.json").read_text())
        except (OSError, ValueError):
            env = None  # env.json is informative only
    config = {**(_config_defaults() if defaults is None else defaults), **raw}
    return Run(folder, config, metrics, env)


def load_runs(arguments) -> tuple[list[Run], list[str]]:
    folders, notes = find_runs(arguments)
    if not folders:
        detail = f" ({len(notes)} folder(s) skipped: {notes[0]}{' ...' if len(notes) > 1 else ''})" if notes else ""
        raise ReportError(f"no finished runs (folders with metrics.json and config.yaml) in {' '.join(map(str, arguments))}"
                          f"{detail}")
    defaults = _config_defaults()
    return [load_run(f, defaults) for f in folders], notes


# ----------------------------------------------------------------------------- grouping


def shots_label(config: dict) -> str:
    """The shots column: k for few-shot, ``full``, or ``e2h N`` (N per easy-to-hard stage)."""
    protocol = config.get("protocol", "few-shot")
    if protocol == "few-shot":
        return str(config.get("shots"))
    if protocol == "easy-to-hard":
        return f"e2h {config.get('stage_shots')}"
    return str(protocol)


def _value(value) -> str:
    """A config value as one short, comparable text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


def base_key(run: Run, optional: tuple[str, ...]) -> tuple:
    return (run.config.get("method"), run.config.get("dataset"), shots_label(run.config), run.config.get("backbone"),
            *(run.config.get(k) for k in optional))


def varying_keys(runs: list[Run], optional: tuple[str, ...]) -> list[str]:
    """Config keys (other than IGNORED_KEYS and the base columns) whose value differs within some base group."""
    fixed = set(IGNORED_KEYS) | set(BASE_COLUMNS) | set(_SHOT_KEYS) | set(optional)
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(base_key(run, optional), []).append(run)
    order = list(dict.fromkeys(k for run in runs for k in run.config))
    varying = set()
    for members in groups.values():
        for key in order:
            if key not in fixed and len({_value(r.config.get(key)) for r in members}) > 1:
                varying.add(key)
    return [k for k in order if k in varying]


def _shots_order(label: str) -> tuple:
    return (0, int(label), "") if label.isdigit() else (1, 0, label)


def group_runs(runs: list[Run]) -> tuple[list[str], list[Row]]:
    """The grouping columns and one Row per group (same config up to the seed and IGNORED_KEYS)."""
    defaults = _config_defaults()
    optional = tuple(k for k in OPTIONAL_COLUMNS if any(r.config.get(k) != defaults.get(k) for r in runs))
    extra = varying_keys(runs, optional)
    columns = [*BASE_COLUMNS, *optional, *extra]
    rows: dict[tuple, Row] = {}
    for run in runs:
        values = dict(zip(columns, (*(str(v) for v in base_key(run, optional)),
                                    *(_value(run.config.get(k)) for k in extra))))
        rows.setdefault(tuple(values.values()), Row(values)).runs.append(run)
    ordered = sorted(rows.values(), key=lambda r: (r.columns["dataset"], r.columns["backbone"],
                                                   _shots_order(r.columns["shots"]), r.columns["method"],
                                                   tuple(r.columns[c] for c in columns[4:])))
    for row in ordered:
        row.note = group_note(row)
    return columns, ordered


def group_note(row: Row) -> str:
    """Differences within a group worth a flag: package versions, git commits (env.json), repeated seeds."""
    notes = []
    envs = [r.env for r in row.runs if r.env]
    for package in ("lorevit", "torch"):
        versions = sorted({str((e.get("versions") or {}).get(package)) for e in envs})
        if len(versions) > 1:
            notes.append(f"mixed {package} versions {', '.join(versions)}")
    commits = sorted({(e.get("git") or {}).get("commit", "")[:8] for e in envs if e.get("git")})
    if len(commits) > 1:
        notes.append(f"mixed git commits {', '.join(commits)}")
    seeds = row.seeds
    repeated = sorted({s for s in seeds if seeds.count(s) > 1}, key=str)
    if repeated:
        notes.append(f"seed(s) {', '.join(map(str, repeated))} repeated")
    for run in row.runs:  # a resume with more epochs: the run followed two cosine plans (issue 25 §4)
        for change in (run.metrics.get("schedule") or {}).get("changes", []):
            notes.append(f"{run.path.name}: resumed with {change['to_epochs']} instead of {change['from_epochs']} "
                         f"epochs at epoch {change['at_epoch']} (step {change['at_step']}); its lr per epoch is in "
                         "metrics.json schedule.lr_per_epoch")
    return "; ".join(notes)


# ----------------------------------------------------------------------------- outputs


def _mean_std(stats: dict | None) -> str:
    return "–" if stats is None else f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s" if value < 600 else f"{value / 60:.1f} min"


def markdown(columns: list[str], rows: list[Row], notes: list[str] = ()) -> str:
    """The report as Markdown: the table, then notes (differences within groups, skipped folders)."""
    with_note = any(r.note for r in rows)
    header = [*columns, "n seeds", "top-1 (%)", "top-5 (%)", "seeds", "train time", *(["note"] if with_note else [])]
    lines = [f"# lorevit report: {sum(len(r.runs) for r in rows)} run(s) in {len(rows)} group(s)", "",
             "| " + " | ".join(header) + " |",
             "|" + "---|" * len(columns) + "---:|---:|---:|---|---:|" + ("---|" if with_note else "")]
    for row in rows:
        cells = [*(row.columns[c].replace("|", "\\|") for c in columns), str(len(row.runs)),
                 _mean_std(row.stats("test_top1")), _mean_std(row.stats("test_top5")),
                 ", ".join(map(str, row.seeds)), _seconds(row.train_s)]
        lines.append("| " + " | ".join(cells + ([row.note] if with_note else [])) + " |")
    lines += ["", "Test accuracy (%): mean ± sample std (n − 1) over seeds (± 0.00 for one seed); "
                  "train time: mean training seconds per run."]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("n_seeds", "top1_mean", "top1_std", "top5_mean", "top5_std", "seeds", "train_s", "note", "runs")


def csv_text(columns: list[str], rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*columns, *CSV_FIELDS])
    for row in rows:
        top1, top5 = row.stats("test_top1"), row.stats("test_top5")
        writer.writerow([*(row.columns[c] for c in columns), len(row.runs),
                         top1["mean"], top1["std"], *((top5["mean"], top5["std"]) if top5 else ("", "")),
                         ";".join(map(str, row.seeds)), "" if row.train_s is None else round(row.train_s, 2),
                         row.note, ";".join(str(r.path) for r in row.runs)])
    return buffer.getvalue()


def figure_png(columns: list[str], rows: list[Row]) -> bytes:
    """Horizontal bars of top-1 (mean, error bar = std over seeds), one per row, coloured by method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [" · ".join(f"{v}-shot" if c == "shots" and v.isdigit() else v for c, v in r.columns.items()) for r in rows]
    means = [r.stats("test_top1")["mean"] for r in rows]
    stds = [r.stats("test_top1")["std"] for r in rows]
    methods = list(dict.fromkeys(r.columns["method"] for r in rows))
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(9.0, 1.2 + 0.38 * len(rows)), dpi=110)
    ys = range(len(rows))[::-1]  # the table's first row at the top
    for y, row, mean, std in zip(ys, rows, means, stds):
        ax.barh(y, mean, xerr=std, capsize=3, height=0.7, error_kw={"elinewidth": 1},
                color=colors(methods.index(row.columns["method"]) % 10))
        ax.annotate(f"{mean:.1f} ± {std:.1f} (n={len(row.runs)})", (mean + std, y), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7)
    ax.set_yticks(list(ys), labels, fontsize=7)
    high = max(m + s for m, s in zip(means, stds))
    ax.set_xlim(0, min(100.0, math.ceil(high / 10) * 10 + 15) if high > 0 else 1)
    ax.set_xlabel("test top-1 (%), mean ± std over seeds")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors(i % 10)) for i in range(len(methods))]
    ax.legend(handles, methods, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def write_report(output: str | Path, columns: list[str], rows: list[Row], notes: list[str] = ()) -> list[Path]:
    """report.md, report.csv and report.png in ``output``; all three are built before any is written (atomically)."""
    from lorevit.utils.io import atomic_write, write_text

    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--output {out} is a file; give a folder for report.md, report.csv and report.png")
    md, table, png = markdown(columns, rows, notes), csv_text(columns, rows), figure_png(columns, rows)
    try:
        return [write_text(out / "report.md", md), write_text(out / "report.csv", table),
                atomic_write(out / "report.png", lambda tmp: tmp.write_bytes(png))]
    except OSError as err:
        raise ReportError(f"cannot write the report into {out} ({err.strerror or err}); choose another --output") from None


def report(arguments, output: str | Path | None = None) -> tuple[str, list[str]]:
    """Markdown of the runs named by ``arguments`` (and the files written with ``output``); notes on skipped folders."""
    runs, notes = load_runs(arguments)
    columns, rows = group_runs(runs)
    if output is not None:
        write_report(output, columns, rows, notes)
    return markdown(columns, rows, notes), notes


# ----------------------------------------------------------------------------- command line


