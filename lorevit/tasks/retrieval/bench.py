"""The retrieval columns of ``lorevit bench tasks`` (TASKS_SPEC §1, §4 R1/R2).

For roxford5k and rparis6k under ``ctx.data_root`` when present, else the stand-ins: B-B and LORE
rank the same images (DINO protocol: thumbnail 224, no query crop, CLS, cosine), and the
"random ranking" row is the expected mAP of a uniformly random ranking, estimated as the mean over
10 seeded random permutations per query (:func:`~.evaluate.random_map`). Columns mAP-M and mAP-H
(the paper's); mAP-E and mP@1/5/10 are kept in ``details``.
"""
from __future__ import annotations


from lorevit.tasks.bench import BenchContext, TaskResult
from lorevit.tasks.retrieval.dataset import OFFICIAL, RetrievalDataset, read_dataset
from lorevit.tasks.retrieval.evaluate import random_map
from lorevit.tasks.retrieval.run import run_retrieval

IMSIZE = 224
QUICK_QUERIES, QUICK_DB = 4, 40  # ctx.quick: a tiny slice of every dataset
RANDOM_ROW = "random ranking"


def datasets(ctx: BenchContext) -> list[tuple[RetrievalDataset, str]]:
    """(dataset, "real" | "stand-in"): the real ones found under ctx.data_root, else the stand-ins."""
    found = []
    if ctx.data_root is not None:
        found = [(read_dataset(ctx.data_root, n), "real") for n in OFFICIAL
                 if (ctx.data_root / n / f"gnd_{n}.pkl").is_file()]
    if found:
        return found
    from lorevit.tasks.standins import retrieval as standins

    root = ctx.standins_root / "retrieval"
    return [(read_dataset(root, n), "stand-in") for n in standins.build(root, say=ctx.say)]


def shrink(dataset: RetrievalDataset, n_queries: int, n_db: int) -> RetrievalDataset:
    """The first ``n_queries`` queries against their own positives/junk plus the first other images (≤ n_db in all)."""
    queries = list(range(min(n_queries, len(dataset.qimlist))))
    gnd = [dataset.gnd[i] for i in queries]
    wanted = sorted({i for g in gnd for k in ("easy", "hard", "junk") for i in g[k]})
    taken = set(wanted)
    keep = wanted + [i for i in range(len(dataset.imlist)) if i not in taken]
    keep = sorted(keep[:max(n_db, len(wanted))])
    new_id = {old: new for new, old in enumerate(keep)}
    gnd = [{"bbx": g["bbx"], **{k: [new_id[i] for i in g[k]] for k in ("easy", "hard", "junk")}} for g in gnd]
    return RetrievalDataset(dataset.name, dataset.root, [dataset.imlist[i] for i in keep],
                            [dataset.qimlist[i] for i in queries], gnd)


def bench(ctx: BenchContext) -> list[TaskResult]:
    results = []
    for dataset, kind in datasets(ctx):
        if ctx.quick:
            dataset = shrink(dataset, QUICK_QUERIES, QUICK_DB)
        ctx.say(f"[retrieval] {dataset.name} ({kind}): {len(dataset.qimlist)} queries, {len(dataset.imlist)} database")
        rows, details, throughput = {}, {}, {}
        for label, extractor in ctx.extractors.items():
            out = run_retrieval(extractor, dataset, IMSIZE, crop_queries=False)
            rows[label] = {"mAP-M": out["mAP"]["medium"], "mAP-H": out["mAP"]["hard"], "mAP-E": out["mAP"]["easy"]}
            details[label] = {"mAP": out["mAP"], "mP@k": out["mP@k"], "seconds": out["seconds"],
                              "images_per_s_with_decoding": out["images_per_s_with_decoding"]}
            throughput[label] = round(out["images_per_s"], 2)
        rand = random_map(dataset.gnd, len(dataset.imlist))
        rows[RANDOM_ROW] = {"mAP-M": rand["medium"]["mAP"], "mAP-H": rand["hard"]["mAP"], "mAP-E": rand["easy"]["mAP"]}
        details[RANDOM_ROW] = rand
        details["protocol"] = {"imsize": IMSIZE, "query_mode": "full image, no crop (DINO)", "feature": "CLS",
                               "n_queries": len(dataset.qimlist), "n_db": len(dataset.imlist), "quick": ctx.quick,
                               "random": "mean over 10 seeded uniformly random permutations per query"}
        note = ("real dataset, DINO protocol (thumbnail 224, no crop)" if kind == "real" else _standin_note(dataset.name))
        results.append(TaskResult("retrieval", dataset.name, kind, ["mAP-M", "mAP-H"], rows, "fraction",
                                  throughput, "images/s", note, details))
    return results


def _standin_note(name: str) -> str:
    if "fashion" in name:
        return ("class-level stand-in (R1): Fashion-MNIST test queries vs train database, same class = positive, "
                "hard = rotated/shrunk/tinted; tests the pipeline, not comparable to ROxf/RPar")
    return ("mini instance-level stand-in (R2): 25 real photos, synthetic easy/hard/junk views + 9 real second views; "
            "tests the pipeline at tiny scale, not comparable to ROxf/RPar")


__all__ = ["bench", "datasets", "shrink"]
