"""Image retrieval on Revisited Oxford5k / Paris6k (TASKS_SPEC §1): reader, evaluator, ``lorevit retrieval``.

- :func:`compute_map` / :func:`compute_ap`: the official revisitop evaluator, exact semantics;
- :func:`protocol_gnd` / :func:`protocols`: the Easy / Medium / Hard ground truths;
- :func:`read_dataset`: ``<data_root>/<name>/{gnd_<name>.pkl, jpg/}`` through a restricted unpickler;
- :func:`run_retrieval`: features → one matrix product → ranks → E/M/H mAP and mP@k;
- :mod:`lorevit.tasks.standins.retrieval`: offline class-level and mini instance-level sets in the official layout;
- :mod:`.bench`: the retrieval columns of ``lorevit bench tasks``.
"""
from lorevit.tasks.retrieval.dataset import RetrievalDataset, crop_box, load_image, read_dataset, validate_gnd
from lorevit.tasks.retrieval.evaluate import KAPPAS, PROTOCOLS, compute_ap, compute_map, evaluate, protocol_gnd, protocols, random_map, rank

__all__ = ["KAPPAS", "PROTOCOLS", "RetrievalDataset", "compute_ap", "compute_map", "crop_box", "evaluate",
           "load_image", "protocol_gnd", "protocols", "random_map", "rank", "read_dataset", "run_retrieval",
           "validate_gnd"]


def __getattr__(name):  # run_retrieval imports torch: only on use, so `lorevit --help` stays fast
    if name == "run_retrieval":
        from lorevit.tasks.retrieval.run import run_retrieval

        return run_retrieval
    raise AttributeError(name)
