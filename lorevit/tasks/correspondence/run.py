"""``lorevit correspondence`` as one call: the protocol over a SPair-71k split with one feature source, its
identity baseline, and the files (``correspondence.json``, ``predictions.json``, ``correspondence.png``)."""
from __future__ import annotations

from pathlib import Path

from lorevit.tasks.correspondence.figure import render_pairs, spread
from lorevit.tasks.correspondence.protocol import IMAGE_SIZE, evaluate, evaluate_identity
from lorevit.tasks.correspondence.spair import PairSet, limit_per_category
from lorevit.tasks.features import FeatureExtractor, setup_record
from lorevit.utils.io import atomic_write, write_json


def run_correspondence(data: PairSet, extractor: FeatureExtractor, output: str | Path, image_size: int = IMAGE_SIZE,
                       method: str = "trick", batch_size: int = 16, max_pairs: int | None = None,
                       figure_pairs: int = 4) -> dict:
    """PCK@α of ``extractor`` on ``data``'s pairs (at most ``max_pairs`` per category) beside the identity
    baseline; writes the files into ``output`` once everything is computed and returns the report."""
    pairs = limit_per_category(data.pairs, max_pairs)
    result = evaluate(pairs, extractor, image_size, method, batch_size, progress="correspondence")
    table, identity = result.table(), evaluate_identity(pairs).table()
    output = Path(output)
    report = {
        "pck": table,
        "identity_baseline": {a: {k: v[k] for k in ("per_image", "per_point", "category_mean")} for a, v in identity.items()},
        "pairs": len(pairs), "points": table["0.1"]["points"],
        "skipped": {"count": len(data.skipped), "pairs": data.skipped},
        "pairs_per_s": round(result.pairs_per_s, 3), "seconds": round(result.seconds, 2),
        "feature_seconds": round(result.feature_seconds, 2),
        "data": {"root": str(data.root), "split": data.split, "categories": sorted({p.category for p in pairs}),
                 "max_pairs_per_category": max_pairs},
        "setup": setup_record(extractor, task="correspondence", image_size=image_size, resize="anisotropic bicubic",
                              features="last-block patch tokens after the final norm",
                              upsampling="bilinear, align_corners=False, to the original (H, W)",
                              matching="argmax cosine over every target pixel (source vector at integer [y, x])",
                              method=method, threshold="alpha * max(x2-x1, y2-y1) of the target bbox, <=",
                              direction="source -> target", scale="percent"),
    }
    figure = None
    if figure_pairs > 0:  # rendered in memory first: nothing is written before everything is computed
        shown = spread(len(pairs), figure_pairs)
        figure = render_pairs([pairs[i] for i in shown], [result.preds[i] for i in shown],
                              title=f"{extractor.label}: PCK@0.1 source → target")
    write_json(output / "predictions.json", result.predictions())
    if figure is not None:
        atomic_write(output / "correspondence.png", lambda tmp: tmp.write_bytes(figure))
    write_json(output / "correspondence.json", report)
    return report
