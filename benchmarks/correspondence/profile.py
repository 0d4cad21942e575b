"""The exact trick against the explicit C×H×W upsampling: agreement, time and peak memory (TASKS_SPEC §2).

    python benchmarks/correspondence/profile.py --data-root D [--adapter DIR] [--max-pairs N] --output FILE.json

Tokens are extracted once; then each method matches every pair in a fresh process (spawned), so
its peak resident memory above the loaded tokens and a warm-up (VmHWM − VmRSS, reset first) is its own. Agreement: the
largest |cos_trick − cos_explicit| over every pair's full N × H × W maps, and the share of identical
argmax pixels (different ones can only be exact ties in the explicit map: checked).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lorevit.tasks.correspondence.protocol import IMAGE_SIZE, load_image
from lorevit.tasks.correspondence.matching import METHODS, argmax_xy, match
from lorevit.tasks.correspondence.metrics import pck


def _tokens(pairs, extractor, image_size: int) -> dict:
    images = list(dict.fromkeys(path for p in pairs for path in (p.src_image, p.trg_image)))
    out = extractor.extract((load_image(i, image_size, extractor.mean, extractor.std) for i in images), keep="patches")
    return {str(k): v for k, v in zip(images, out.items)}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> int:
    """Reset this process's peak RSS (VmHWM; Linux ≥ 4.0) and return the current RSS in KiB.

    ``ru_maxrss`` would not do: it survives fork + exec, so a spawned child starts with its parent's peak."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def peak_rss() -> int:
    return _status_kib("VmHWM")


def _child(method: str, token_file: str, pairs, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    tokens = torch.load(token_file)
    p = pairs[0]  # warm-up on a small target: kernels and allocator ready before the baseline
    match(tokens[str(p.src_image)], p.src_size, p.src_kps[:1], tokens[str(p.trg_image)], (32, 32), method)
    base = reset_peak_rss()
    start = time.perf_counter()
    preds = [match(tokens[str(p.src_image)], p.src_size, p.src_kps, tokens[str(p.trg_image)], p.trg_size, method)
             for p in pairs]
    seconds = time.perf_counter() - start
    queue.put({"seconds": seconds, "peak_extra_mib": (peak_rss() - base) / 1024, "preds": [p.tolist() for p in preds]})


def run_isolated(method: str, token_file: str, pairs, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(method, token_file, pairs, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


@torch.no_grad()
def agreement(pairs, tokens: dict) -> dict:
    """Max |Δcos| between the two methods' full maps; argmax agreement (ties allowed)."""
    worst, same, total, tie_ok = 0.0, 0, 0, True
    for p in pairs:
        args = (tokens[str(p.src_image)], p.src_size, p.src_kps, tokens[str(p.trg_image)], p.trg_size)
        a, b = METHODS["trick"](*args), METHODS["explicit"](*args)
        worst = max(worst, float((a - b).abs().max()))
        pa, pb = argmax_xy(a), argmax_xy(b)
        same += int((pa == pb).all(axis=1).sum())
        total += len(pa)
        n = torch.arange(len(pa))
        at_trick = b[n, torch.as_tensor(pa[:, 1]), torch.as_tensor(pa[:, 0])]
        tie_ok &= bool(((b.flatten(1).max(dim=1).values - at_trick) <= 1e-5).all())
        del a, b
    return {"max_abs_cos_diff": worst, "same_argmax": same, "keypoints": total,
            "different_argmax_are_ties_within_1e-5": tie_ok}


def compare(pairs, extractor, image_size: int = IMAGE_SIZE) -> dict:
    tokens = _tokens(pairs, extractor, image_size)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        token_file = str(Path(tmp) / "tokens.pt")
        torch.save(tokens, token_file)
        runs = {m: run_isolated(m, token_file, pairs, threads) for m in ("trick", "explicit")}
    same_preds = all(np.array_equal(a, b) for a, b in zip(runs["trick"]["preds"], runs["explicit"]["preds"]))
    sizes = [p.trg_size for p in pairs]
    gts, sides, cats = [p.trg_kps for p in pairs], [p.bbox_side for p in pairs], [p.category for p in pairs]
    scores = {m: round(pck([np.array(x) for x in r["preds"]], gts, sides, cats)["per_image"], 4) for m, r in runs.items()}
    return {"pairs": len(pairs), "keypoints": int(sum(len(p.src_kps) for p in pairs)), "threads": threads,
            "feature_dim": extractor.dim, "target_pixels_max": int(max(h * w for h, w in sizes)),
            "target_pixels_mean": float(np.mean([h * w for h, w in sizes])),
            "methods": {m: {"seconds": round(r["seconds"], 3), "pairs_per_s": round(len(pairs) / r["seconds"], 3),
                            "peak_extra_mib": round(r["peak_extra_mib"], 1)} for m, r in runs.items()},
            "identical_predictions": same_preds, "pck@0.1_per_image": scores,
            "agreement": agreement(pairs, tokens)}


def main(argv=None) -> int:
    from lorevit.utils.io import write_json
    from lorevit.cli.options import add_source_options, extractor_from_args
    from lorevit.tasks.correspondence.spair import limit_per_category
    from lorevit.tasks.correspondence.spair import read_pairs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-pairs", type=int, default=None)
    parser.add_argument("--output", required=True)
    add_source_options(parser)
    args = parser.parse_args(argv)
    pairs = limit_per_category(read_pairs(args.data_root, args.split).pairs, args.max_pairs)
    report = compare(pairs, extractor_from_args(args))
    write_json(args.output, report)
    m = report["methods"]
    print(f"trick {m['trick']['seconds']:.2f} s, +{m['trick']['peak_extra_mib']:.0f} MiB; explicit "
          f"{m['explicit']['seconds']:.2f} s, +{m['explicit']['peak_extra_mib']:.0f} MiB; max |Δcos| "
          f"{report['agreement']['max_abs_cos_diff']:.2e}; identical predictions: {report['identical_predictions']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
