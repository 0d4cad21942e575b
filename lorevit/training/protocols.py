"""The training protocols around Lightning's fit/test: one fit and test, CLIP zero-shot negatives (cached), and
easy-to-hard stages (resumable: ``stages.json``)."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_only

from lorevit.config import Config
from lorevit.data import easy_indices, few_shot_indices, hard_indices
from lorevit.errors import RunError
from lorevit.knowledge import ZERO_SHOT_TEMPLATE, check_matching_towers, class_features
from lorevit.methods import ZeroShotHead
from lorevit.model import PromptedClassifier
from lorevit.training.datamodule import ClassificationData
from lorevit.training.loaders import test_timing
from lorevit.training.module import LitClassifier
from lorevit.training.passes import one_off_pass, pass_device
from lorevit.training.trainer import make_trainer
from lorevit.utils.io import atomic_write, write_json
from lorevit.utils.paths import sub_dir

log = logging.getLogger(__name__)
def fit_and_test(cfg, model, data, out, *, stage="", epochs=None, lr=None, negatives=None, ckpt_path=None, test=True):
    """Train (unless the method trains nothing), validate on the validation split (if any), then test (unless
    ``test`` is False: model selection must not look at the test split); returns (metrics, history, seconds)."""
    epochs = cfg.epochs if epochs is None else epochs
    lit = LitClassifier(model, cfg, negatives=negatives, lr=lr)
    trainer = make_trainer(cfg, out, epochs, stage)
    start = time.perf_counter()
    if model.method.trains and epochs > 0:
        trainer.fit(lit, train_dataloaders=data.train_dataloader(),
                    val_dataloaders=data.val_dataloader() if cfg.val_every else None, ckpt_path=ckpt_path)
    train_s = time.perf_counter() - start
    results = trainer.validate(lit, dataloaders=data.val_dataloader(), verbose=False)[0] if data.val_indices else {}
    start = time.perf_counter()
    if test:
        results.update(trainer.test(lit, dataloaders=data.test_dataloader(), verbose=False)[0])
    test_s = time.perf_counter() - start
    times = {"train_s": round(train_s, 2), **test_timing(cfg, len(data.test_indices) if test else 0, test_s),
             "world_size": trainer.world_size}
    if cfg.on_nonfinite == "skip":
        times["nonfinite_skipped"] = lit.nonfinite_skipped
    return {k: float(v) for k, v in results.items()}, lit.history, times


def zero_shot_negatives(cfg: Config, model: PromptedClassifier, data: ClassificationData) -> torch.Tensor | None:
    """p of Eq. 10 for CLIP backbones: zero-shot CLIP predictions, computed once and cached.

    None (→ the model's own detached prediction) when the method has no L_kp, the knowledge is
    no CLIP text tower, or the backbone is no CLIP image tower (KLA's queries may come from any
    text encoder). A CLIP backbone with the text tower of another CLIP model or tag is a
    KnowledgeError: its "zero-shot" labels would be meaningless.
    """
    if not model.method.uses_knowledge or not cfg.knowledge.startswith("clip:"):
        return None
    if not check_matching_towers(cfg.backbone, cfg.weights, cfg.knowledge):
        log.warning("no CLIP zero-shot labels for L_kp (%s is no CLIP image tower); using the model's own "
                    "predictions", cfg.backbone)
        return None
    try:
        head = ZeroShotHead(model.backbone, class_features(cfg.knowledge, data.classnames, ZERO_SHOT_TEMPLATE))
    except ValueError as err:  # e.g. a CLIP-named backbone built without its image projection
        log.warning("no CLIP zero-shot labels for L_kp (%s); using the model's own predictions", err)
        return None
    key = hashlib.sha1(json.dumps([cfg.backbone, cfg.weights, cfg.knowledge, cfg.dataset, str(cfg.data_root),
                                   cfg.img_size, data.train_indices]).encode()).hexdigest()[:16]
    path = sub_dir("zero_shot") / f"{key}.pt"
    if path.is_file():
        return _read_zero_shot_cache(path, len(data.train_set))
    table = torch.full((len(data.train_set),), -1, dtype=torch.long)
    index, (labels,) = one_off_pass(torch.nn.ModuleList([model.backbone, head]),
                                    lambda images: head(model.backbone(images)).argmax(-1),
                                    data.plain_train_dataloader(), pass_device(cfg))
    table[index] = labels
    atomic_write(path, lambda tmp: torch.save(table, tmp))  # never half-written for another rank or run
    return table


def _read_zero_shot_cache(path: Path, size: int) -> torch.Tensor:
    """The zero-shot labels an earlier run cached; a truncated or foreign file is named, never half-read."""
    from lorevit.errors import DamagedFileError

    try:
        table = torch.load(path, weights_only=True)
    except Exception as err:  # pickle's, zipfile's and torch's own errors for a damaged file
        raise DamagedFileError(f"the zero-shot label cache {path} is damaged ({type(err).__name__}: "
                               f"{str(err)[:120]}); delete it (it is rebuilt on the next run)") from None
    if not isinstance(table, torch.Tensor) or table.dtype != torch.long or table.shape != (size,):
        raise DamagedFileError(f"the zero-shot label cache {path} does not hold {size} labels; delete it (it is "
                               "rebuilt on the next run)")
    return table


STAGES_FILE = "stages.json"  # easy-to-hard: each stage's images, and its results once it has finished


def easy_to_hard(cfg: Config, model: PromptedClassifier, data: ClassificationData, out: Path,
                 resume_auto: bool = False) -> dict:
    """Spec "Protocols": LORE-e on the N easiest images per class, then LORE-h on LORE-e's N hardest.

    Resumable per stage: ``stages.json`` records each stage's images as soon as they are chosen and its
    results once it has finished; each stage checkpoints to ``checkpoints/<stage>/last.ckpt``. ``--resume``
    reloads a finished easy stage (its trained state from its checkpoint, its results from the record)
    instead of training it again, and continues the stage the run was killed in from its checkpoint (with
    ``resume_auto``, from the one before it when that checkpoint is damaged).
    """
    record = read_stages(out) if cfg.resume else {}
    targets = torch.tensor(data.train_set.targets)
    pool = few_shot_indices(data.train_set.targets, cfg.selection_pool, cfg.seed) if cfg.selection_pool \
        else data.unreserved_train_indices()
    loader = data.plain_train_dataloader(pool)
    device = pass_device(cfg)
    if "easy" not in record:  # Black Box features: the frozen ViT without prompts
        order, (feats,) = one_off_pass(model.backbone, model.backbone, loader, device)
        record["easy"] = {"indices": order[easy_indices(feats, targets[order], cfg.stage_shots)].tolist()}
        write_stages(out, record)
    easy = data.train_indices = record["easy"]["indices"]
    negatives = zero_shot_negatives(cfg, model, data)
    if "test_top1" in record["easy"]:  # finished before the run stopped: its trained state back, no training
        # its final state, checked whole; never the one before it (the recorded results are the final state's)
        load_trained_state(model, stage_checkpoint(cfg, out, "easy") or out / "checkpoints" / "easy" / "last.ckpt")
        easy_metrics, easy_history = {"test_top1": record["easy"]["test_top1"]}, record["easy"]["history"]
        easy_time = {k: record["easy"][k] for k in ("train_s", "test_s", "world_size")}
    else:
        easy_metrics, easy_history, easy_time = fit_and_test(cfg, model, data, out, stage="easy", negatives=negatives,
                                                             ckpt_path=stage_checkpoint(cfg, out, "easy", resume_auto))
        record["easy"].update(test_top1=easy_metrics["test_top1"], history=easy_history, **easy_time)
        write_stages(out, record)

    if "hard" not in record:  # LORE-e on the pool
        def predictions_and_features(images):
            out = model(images)
            return out.logits.argmax(-1), out.features

        order, (preds, feats) = one_off_pass(model, predictions_and_features, loader, device)
        record["hard"] = {"indices": order[hard_indices(feats, targets[order], preds, cfg.stage_shots)].tolist()}
        write_stages(out, record)
    hard = data.train_indices = record["hard"]["indices"]
    negatives = zero_shot_negatives(cfg, model, data)
    hard_metrics, hard_history, hard_time = fit_and_test(cfg, model, data, out, stage="hard", epochs=cfg.hard_epochs,
                                                         lr=cfg.hard_lr, negatives=negatives,
                                                         ckpt_path=stage_checkpoint(cfg, out, "hard", resume_auto))
    return {
        "test_top1": hard_metrics["test_top1"], "test_top5": hard_metrics["test_top5"],
        "test_images": hard_metrics["test_images"],
        "stages": {
            "easy": {"indices": easy, "test_top1": easy_metrics["test_top1"], "history": easy_history, **easy_time},
            "hard": {"indices": hard, "test_top1": hard_metrics["test_top1"], "history": hard_history, **hard_time},
        },
        "improvement": hard_metrics["test_top1"] - easy_metrics["test_top1"],
        **{k: hard_metrics[k] for k in ("val_top1",) if k in hard_metrics},
        "history": easy_history + hard_history,
        "train_s": easy_time["train_s"] + hard_time["train_s"], "test_s": hard_time["test_s"],
        "negatives": "own-prediction" if negatives is None else "clip-zero-shot",
    }


def read_stages(out: Path) -> dict:
    path = out / STAGES_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"--resume: cannot read the easy-to-hard stage record {path} ({err}); start a new run") from None


def write_stages(out: Path, record: dict) -> None:
    if rank_zero_only.rank == 0:
        write_json(out / STAGES_FILE, record)


def stage_checkpoint(cfg: Config, out: Path, stage: str, auto: bool = False) -> Path | None:
    """The stage's own ``last.ckpt`` when resuming and it exists (a stage killed before its first one starts anew);
    checked whole first (:func:`lorevit.training.trainer.resume_checkpoint`: ``auto`` falls back to the one before)."""
    from lorevit.training.trainer import previous_checkpoint, resume_checkpoint

    path = out / "checkpoints" / stage / "last.ckpt"
    if not cfg.resume or not (path.is_file() or previous_checkpoint(path).is_file()):
        return None
    return resume_checkpoint(path, auto)


def load_trained_state(model: PromptedClassifier, path: Path) -> None:
    """The trainable state a stage's checkpoint holds (the frozen ViT is not in it), checked key for key."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except (OSError, RuntimeError, KeyError, EOFError) as err:
        raise RunError(f"--resume: cannot read the finished stage's checkpoint {path} ({err}); "
                       "start a new run") from None
    state = {k.removeprefix("model."): v for k, v in state.items()}
    try:
        model.load_trained_state_dict(state)
    except (KeyError, RuntimeError) as err:
        raise RunError(f"--resume: {path} does not fit the model built from this config ({err}); resume with the "
                       "run's own config") from None
