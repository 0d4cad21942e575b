"""Benchmark (issue 24): the demo adapter's whole test phase, the code before issue 24 vs this tree, same day.

    .venv/bin/python benchmarks/inference/demo_before_after.py [--adapter runs/demo] [--before 697cfcf]
        [--repeats 2] [--output benchmarks/inference]

``lorevit eval --adapter ADAPTER`` (the full test split: 10,000 Fashion-MNIST images for ``make demo``'s adapter)
run by two programs on the same machine, interleaved, the order swapped every repeat:

- ``before``: the lorevit source of commit ``--before`` (default 697cfcf, the last commit before issue 24's work:
  eval batch 128, no shared K/V, no CPU kernels, glibc's allocator), unpacked with ``git archive`` into a
  temporary folder and put first on ``PYTHONPATH``; same Python, same packages.
- ``after``: this tree's ``lorevit`` (``eval_batch_size: auto``, shared K/V, the CPU kernels, freed memory kept).

The adapter is the same file for both: the ``before`` program reads a copy whose recorded config keeps only the
keys its ``Config`` knows and its own default eval batch (it predates ``eval_batch_size: auto``); the weights are
untouched. Each program's ``eval.json`` gives the test phase's seconds (Lightning's test loop: loading, decoding,
the model, the counting — not the start-up) and its accuracies; its ``per_class.json`` the per-class counts, which
must be identical. Writes ``demo_before_after.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from lorevit.adapters.paths import FILENAME as ADAPTER_FILE
from lorevit.utils.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[2]
RUN_FILES = ("config.yaml", "indices.json", "metrics.json", "env.json")  # what eval reads beside the adapter


def unpack_source(rev: str, into: Path) -> Path:
    """The ``lorevit`` package of commit ``rev`` under ``into`` (``git archive``: no worktree left behind)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "lorevit"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def config_keys_and_default_batch(source: Path) -> tuple[set[str], int]:
    """The config keys the ``before`` program knows and its default eval batch (asked in its own process, run in
    ``source``: the working directory comes first on ``sys.path``)."""
    probe = ("import dataclasses, json; from lorevit.config import Config; "
             "print(json.dumps([[f.name for f in dataclasses.fields(Config)], Config().eval_batch_size]))")
    out = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(source)},
                         cwd=source, check=True, capture_output=True, text=True).stdout
    keys, batch = json.loads(out.strip().splitlines()[-1])
    return set(keys), int(batch)


def older_config(text: str, keys: set[str], eval_batch: int) -> str:
    """A config YAML with only the top-level ``keys`` (and the lines below them) and ``eval_batch_size`` set."""
    lines, keep = [], True
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name = line.split(":", 1)[0].strip()
            keep = name in keys
            if name == "eval_batch_size":
                line = f"eval_batch_size: {eval_batch}"
        if keep:
            lines.append(line)
    return "\n".join(lines) + "\n"


def adapter_for_before(adapter: Path, into: Path, keys: set[str], eval_batch: int) -> Path:
    """A copy of the run folder ``adapter`` whose config (config.yaml and the adapter file's metadata) the
    ``before`` program reads; the tensors are copied unchanged."""
    into.mkdir(parents=True)
    for name in RUN_FILES:
        if (adapter / name).is_file():
            text = (adapter / name).read_text()
            (into / name).write_text(older_config(text, keys, eval_batch) if name == "config.yaml" else text)
    with safe_open(str(adapter / ADAPTER_FILE), framework="pt") as f:
        metadata = dict(f.metadata() or {})
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    metadata["config"] = older_config(metadata["config"], keys, eval_batch)
    save_file(tensors, str(into / ADAPTER_FILE), metadata=metadata)
    return into


def evaluate(adapter: Path, output: Path, source: Path | None) -> dict:
    """One ``lorevit eval`` in its own process; its eval.json and per_class.json."""
    env = {**os.environ, **({"PYTHONPATH": str(source)} if source else {})}
    subprocess.run([sys.executable, "-m", "lorevit", "eval", "--adapter", str(adapter), "--output", str(output),
                    "--progress", "false"], env=env, check=True, capture_output=True, cwd=source or ROOT)
    result = json.loads((output / "eval.json").read_text())
    result["per_class"] = json.loads((output / "per_class.json").read_text())
    return result


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (no machine path in a committed report)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_report(report: dict, output: Path) -> None:
    """``demo_before_after.json`` and ``.md`` in ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "demo_before_after.json", report)
    seconds, medians = report["test_s"], report["median_test_s"]
    batches = {"before": str(report["before_eval_batch"]), "after": f"auto ({report['after_eval_batch']})"}
    rows = "\n".join(f"| {v} | {batches[v]} | {', '.join(f'{s:.1f}' for s in seconds[v])} | {medians[v]:.1f} | "
                     f"{medians['before'] / medians[v]:.3f} | {report['test_top1'][v][0]:.2f} |"
                     for v in ("before", "after"))
    write_text(output / "demo_before_after.md",
               f"# The demo adapter's test phase: commit {report['before']} vs this tree (issue 24)\n\n"
               f"`lorevit eval --adapter {report['adapter']}` ({report['images']} test images), each program in its "
               f"own process, {report['repeats']} interleaved repeats (the order swapped each repeat); load average "
               f"after {[round(x, 2) for x in report['load_average_after']]}.\n\n"
               "| program | eval batch | test phase (s) | median (s) | speed-up | top-1 (%) |\n"
               "|---|---|---|---:|---:|---:|\n" + rows + "\n\n"
               f"Paired speed-ups: {', '.join(f'{x:.3f}' for x in report['paired_speedups'])}. Per-class results "
               f"identical in every run: {report['identical_per_class_results']}.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", type=Path, default=ROOT / "runs" / "demo", help="a run folder (make demo's)")
    parser.add_argument("--before", default="697cfcf", help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "inference")
    args = parser.parse_args()
    adapter = args.adapter.resolve()
    if not (adapter / ADAPTER_FILE).is_file():
        print(f"lorevit: error: {args.adapter} holds no {ADAPTER_FILE}: run make demo first", file=sys.stderr)
        sys.exit(2)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = unpack_source(args.before, tmp / "source")
        keys, eval_batch = config_keys_and_default_batch(source)
        old_adapter = adapter_for_before(adapter, tmp / "adapter", keys, eval_batch)
        for repeat in range(args.repeats):
            order = ("before", "after") if repeat % 2 == 0 else ("after", "before")
            for variant in order:
                result = evaluate(old_adapter if variant == "before" else adapter,
                                  tmp / f"eval-{variant}-{repeat}", source if variant == "before" else None)
                runs[variant].append(result)
                print(f"repeat {repeat + 1} {variant}: test {result['test_s']:.1f} s, top-1 {result['test_top1']:.2f}%",
                      flush=True)
    seconds = {v: [r["test_s"] for r in rs] for v, rs in runs.items()}
    medians = {v: statistics.median(s) for v, s in seconds.items()}
    first = runs["before"][0]
    identical = all(r["per_class"] == first["per_class"] and r["test_top1"] == first["test_top1"]
                    and r["test_top5"] == first["test_top5"] for rs in runs.values() for r in rs)
    report = {
        "adapter": shown_path(adapter), "before": args.before, "before_eval_batch": eval_batch,
        "after_eval_batch": runs["after"][0].get("eval_batch_size_used"), "images": first["num_test"],
        "repeats": args.repeats, "test_s": seconds, "median_test_s": medians,
        "speedup": medians["before"] / medians["after"],
        "paired_speedups": [b / a for b, a in zip(seconds["before"], seconds["after"])],
        "test_top1": {v: [r["test_top1"] for r in rs] for v, rs in runs.items()},
        "test_top5": {v: [r["test_top5"] for r in rs] for v, rs in runs.items()},
        "identical_per_class_results": identical, "load_average_after": list(os.getloadavg()),
        "threads": os.environ.get("OMP_NUM_THREADS", "all cores"),
    }
    write_report(report, args.output)
    print(f"speed-up {report['speedup']:.3f} (median test phase {medians['before']:.1f} s -> {medians['after']:.1f} s), "
          f"identical results: {identical}")


if __name__ == "__main__":
    main()
