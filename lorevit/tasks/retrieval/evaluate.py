"""The Revisited Oxford/Paris evaluator: AP, mAP, mP@k and the Easy/Medium/Hard protocols (TASKS_SPEC §1).

Pure functions of arrays, with exactly the semantics of the official ``python/evaluate.py``
(filipradenovic/revisitop) and ``example_evaluate.py``:

- ``ranks`` is (n_db, n_q): column ``i`` lists query ``i``'s database ids, best first;
- AP is the trapezoid rule over the positives' zero-based positions (a first positive at
  position r > 0 gets precision 0 on its left edge);
- junk images are removed by shifting each positive up by the number of junk ranked before it;
- a query with no positive gets AP = NaN (and P@k = NaN) and is left out of every mean;
- mP@k uses the official quirk: with 1-based positions, ``kq = min(max(pos), k)`` and
  ``P = #(pos <= kq) / kq``, so the denominator shrinks when every positive lies before k.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

KAPPAS = (1, 5, 10)
PROTOCOLS = ("easy", "medium", "hard")


def compute_ap(positions: np.ndarray, nres: int) -> float:
    """Trapezoid AP of sorted zero-based positive ``positions`` (after the junk fix), ``nres`` positives in all.

    Positives missing from a truncated ranking are simply absent from ``positions``: they add
    nothing but still count in ``nres``.
    """
    pos = np.asarray(positions, dtype=np.float64)  # P
    if nres <= 0:
        return float("nan")
    j = np.arange(len(pos), dtype=np.float64)  # 0, 1, ..., P-1
    p0 = np.where(pos == 0, 1.0, j / np.maximum(pos, 1.0))  # precision just before the j-th positive
    p1 = (j + 1.0) / (pos + 1.0)  # precision at the j-th positive
    return float(np.sum((p0 + p1) / 2.0) / nres)


def _positions(column: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Sorted zero-based positions in ``column`` of the database ids listed in ``ids``."""
    return np.flatnonzero(np.isin(column, ids))


def compute_map(ranks: np.ndarray, gnd: Sequence[Mapping], kappas: Sequence[int] = ()) -> tuple:
    """mAP, per-query AP, mP@k and per-query P@k of ``ranks`` (n_db, n_q) against ``gnd``.

    ``gnd[i]`` holds ``ok`` (positive database ids) and optionally ``junk`` (ids ignored).
    Returns ``(map, aps (n_q,), mpr (len(kappas),), prs (n_q, len(kappas)))``; queries with an
    empty ``ok`` are NaN in ``aps``/``prs`` and excluded from ``map``/``mpr`` (NaN if all are empty).
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] != len(gnd):
        raise ValueError(f"ranks must be (n_db, n_q) with n_q = len(gnd) = {len(gnd)}, got shape {ranks.shape}")
    kappas = np.asarray(list(kappas), dtype=np.int64)  # K
    nq = len(gnd)
    aps = np.full(nq, np.nan)
    prs = np.full((nq, len(kappas)), np.nan)
    for i, query in enumerate(gnd):  # one pass per query over its own column (n_db), vectorised inside
        ok = np.asarray(query["ok"], dtype=np.int64).reshape(-1)
        if ok.size == 0:
            continue
        junk = np.asarray(query.get("junk", ()), dtype=np.int64).reshape(-1)
        pos = _positions(ranks[:, i], ok)  # sorted, zero-based
        if junk.size:
            pos = pos - np.searchsorted(_positions(ranks[:, i], junk), pos)  # junk ranked before each positive
        aps[i] = compute_ap(pos, ok.size)
        if pos.size:
            pos1 = pos + 1  # one-based
            kq = np.minimum(pos1.max(), kappas)  # K: the official quirk
            prs[i] = (pos1[None, :] <= kq[:, None]).sum(axis=1) / kq
        else:  # no positive in a truncated ranking (the official code would fail here): precision 0
            prs[i] = 0.0
    valid = ~np.isnan(aps)
    if not valid.any():
        return float("nan"), aps, np.full(len(kappas), np.nan), prs
    return float(aps[valid].mean()), aps, prs[valid].mean(axis=0), prs


def protocol_gnd(gnd: Sequence[Mapping], protocol: str) -> list[dict]:
    """``ok``/``junk`` of every query under one protocol, from its ``easy``/``hard``/``junk`` lists.

    | protocol | ok          | junk        |
    |----------|-------------|-------------|
    | easy     | easy        | junk + hard |
    | medium   | easy + hard | junk        |
    | hard     | hard        | junk + easy |
    """
    parts = {"easy": (("easy",), ("junk", "hard")),
             "medium": (("easy", "hard"), ("junk",)),
             "hard": (("hard",), ("junk", "easy"))}
    if protocol not in parts:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    ok_keys, junk_keys = parts[protocol]

    def join(query, keys):
        return np.concatenate([np.asarray(query[k], dtype=np.int64).reshape(-1) for k in keys])

    return [{"ok": join(q, ok_keys), "junk": join(q, junk_keys)} for q in gnd]


def protocols(gnd: Sequence[Mapping]) -> dict[str, list[dict]]:
    """All three protocols: ``{"easy": [...], "medium": [...], "hard": [...]}``."""
    return {p: protocol_gnd(gnd, p) for p in PROTOCOLS}


def evaluate(ranks: np.ndarray, gnd: Sequence[Mapping], kappas: Sequence[int] = KAPPAS) -> dict:
    """Every protocol's mAP and mP@k as fractions (what ``retrieval.json`` stores), plus per-query AP."""
    out: dict = {}
    for name, protocol in protocols(gnd).items():
        m, aps, mpr, _ = compute_map(ranks, protocol, kappas)
        out[name] = {"mAP": m, **{f"mP@{k}": float(v) for k, v in zip(kappas, mpr)},
                     "queries": int(np.sum(~np.isnan(aps))), "ap": [None if np.isnan(a) else float(a) for a in aps]}
    return out


def rank(db: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Database ids best-first for every query: (n_db, n_q), from one matrix product.

    ``db`` (n_db, d) and ``queries`` (n_q, d) are L2-normalised here; ties keep database order
    (a stable sort, TASKS_SPEC §5 "Determinism").
    """
    db = _l2(np.asarray(db, dtype=np.float32))  # n_db, d
    queries = _l2(np.asarray(queries, dtype=np.float32))  # n_q, d
    sim = db @ queries.T  # n_db, n_q
    return np.argsort(-sim, axis=0, kind="stable")


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def random_map(gnd: Sequence[Mapping], n_db: int, seeds: Sequence[int] = tuple(range(10)),
               kappas: Sequence[int] = KAPPAS) -> dict:
    """The random-ranking baseline: each protocol's mAP / mP@k averaged over seeded random permutations.

    Every query gets its own uniformly random permutation of the database per seed; the means over
    ``seeds`` estimate the expected value (their standard deviation is kept as ``mAP_std``).
    """
    runs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        ranks = np.argsort(rng.random((n_db, len(gnd))), axis=0)  # n_db, n_q: independent permutations
        runs.append(evaluate(ranks, gnd, kappas))
    out = {}
    for name in PROTOCOLS:
        maps = [r[name]["mAP"] for r in runs]
        out[name] = {"mAP": float(np.mean(maps)), "mAP_std": float(np.std(maps)),
                     **{f"mP@{k}": float(np.mean([r[name][f"mP@{k}"] for r in runs])) for k in kappas},
                     "queries": runs[0][name]["queries"]}
    out["seeds"] = list(seeds)
    return out
