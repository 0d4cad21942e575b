"""The correspondence columns of ``lorevit bench tasks``: PCK@0.1 of B-B, LORE and the identity baseline.

Real SPair-71k (test split) when ``ctx.data_root/SPair-71k`` exists, else the stand-ins of
:mod:`lorevit.tasks.standins.correspondence` (C1–C4, built under ``ctx.standins_root/correspondence``). Both feature sources see the
very same pairs. ``ctx.quick``: the first 2 pairs of each category (real SPair: 1).
"""
from __future__ import annotations

from pathlib import Path

from lorevit.tasks.bench import BenchContext, TaskResult
from lorevit.tasks.correspondence.protocol import evaluate, evaluate_identity
from lorevit.tasks.correspondence.figure import draw_pairs, spread
from lorevit.tasks.correspondence.spair import read_pairs

IDENTITY = "identity (same pixel)"


def bench(ctx: BenchContext) -> list[TaskResult]:
    from lorevit.tasks.standins import correspondence as standins
    from lorevit.tasks.correspondence.spair import limit_per_category

    real = ctx.data_root / "SPair-71k" if ctx.data_root is not None else None
    if real is not None and real.is_dir():
        root, kind, dataset, limit = real, "real", "spair71k-test", (1 if ctx.quick else None)
    else:
        root = Path(standins.build(ctx.standins_root / "correspondence", say=ctx.say)[0])
        kind, dataset, limit = "stand-in", "standin-spair-geometric", (2 if ctx.quick else None)
    data = read_pairs(root, "test", skip_bad=True)
    pairs = limit_per_category(data.pairs, limit)
    rows, throughput, details = {}, {}, {"pairs": len(pairs), "skipped": len(data.skipped), "root": str(root),
                                         "per_point": {}, "per_category": {}, "pck@0.05": {}, "pck@0.15": {}}
    for name, extractor in ctx.extractors.items():
        ctx.say(f"[correspondence] {name} on {len(pairs)} {kind} pairs")
        result = evaluate(pairs, extractor, progress=f"correspondence {name}")
        _record(rows, details, name, result.table())
        throughput[name] = round(result.pairs_per_s, 3)
        figure = ctx.work_dir / "correspondence" / f"{name.replace('/', '_')}.png"
        shown = spread(len(pairs), 4)
        draw_pairs([pairs[i] for i in shown], [result.preds[i] for i in shown], figure,
                   title=f"{name}: PCK@0.1 ({dataset})")
    _record(rows, details, IDENTITY, evaluate_identity(pairs).table())
    notes = ("PCK@0.1 per image (%), DIFT protocol: 224² input, last-block tokens upsampled bilinearly to the "
             "original size, argmax cosine; threshold 0.1 × max side of the target box. Identity predicts the "
             "source pixel (centres scaled per axis when sizes differ).")
    if kind == "stand-in":
        notes += (" Stand-ins C1–C4 are geometric (same scene/object): they check the pipeline and geometric "
                  "matching, not semantic intra-class matching; not comparable to the paper.")
    return [TaskResult("correspondence", dataset, kind, ["PCK@0.1"], rows, scale="percent", throughput=throughput,
                       unit="pairs/s", notes=notes, details=details)]


def _record(rows: dict, details: dict, name: str, table: dict) -> None:
    rows[name] = {"PCK@0.1": round(table["0.1"]["per_image"], 2)}
    details["per_point"][name] = round(table["0.1"]["per_point"], 2)
    details["pck@0.05"][name] = round(table["0.05"]["per_image"], 2)
    details["pck@0.15"][name] = round(table["0.15"]["per_image"], 2)
    details["per_category"][name] = {c: round(v["per_image"], 2) for c, v in table["0.1"]["per_category"].items()}
