"""Per-class accuracy and the confusion matrix of ``lorevit eval`` (issue 12 §3).

The test pass is Lightning's, as in ``run.fit_and_test``: ``ConfusionClassifier`` is the usual
LitClassifier (the same top-1 / top-5 counts) that also counts (true, predicted) pairs, summed over
ranks like the accuracy counts, so the matrix is exact and costs no second pass over the images.

    confusion[i, j] = number of test images of true class i predicted as class j
    per-class accuracy_i = 100 · confusion[i, i] / Σ_j confusion[i, j]      (None for a class with no image)
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from lorevit.training.module import LitClassifier


def confusion_counts(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts, rows = true class, columns = predicted class (``labels``, ``preds``: (N,) ints)."""
    flat = labels.long() * num_classes + preds.long()  # N
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(confusion) -> list[float | None]:
    """Diagonal / row sums in %, one per true class; None where the class has no test image."""
    confusion = np.asarray(confusion, dtype=np.int64)
    support = confusion.sum(1)
    return [None if n == 0 else 100.0 * int(confusion[i, i]) / int(n) for i, n in enumerate(support)]


def per_class_table(confusion, classnames) -> dict:
    """What ``per_class.json`` holds: one entry per class and the count matrix itself."""
    confusion = np.asarray(confusion, dtype=np.int64)
    accuracy = per_class_accuracy(confusion)
    classes = [{"index": i, "class": name, "support": int(confusion[i].sum()), "correct": int(confusion[i, i]),
                "predicted": int(confusion[:, i].sum()), "accuracy": acc}
               for i, (name, acc) in enumerate(zip(classnames, accuracy))]
    valid = [a for a in accuracy if a is not None]
    return {"num_test": int(confusion.sum()), "top1": 100.0 * int(np.trace(confusion)) / max(int(confusion.sum()), 1),
            "mean_class_accuracy": sum(valid) / len(valid) if valid else None, "classes": classes,
            "confusion": confusion.tolist(), "confusion_rows": "true class", "confusion_columns": "predicted class"}


class ConfusionClassifier(LitClassifier):
    """LitClassifier whose test pass also fills ``self.confusion`` (C, C), summed over ranks."""

    def on_test_start(self) -> None:
        c = self.model.num_classes
        self._pairs = torch.zeros(c, c, dtype=torch.long, device=self.device)
        self._logits = None
        self._hook = self.model.register_forward_hook(lambda _m, _in, out: setattr(self, "_logits", out.logits))

    def test_step(self, batch, batch_idx):
        super().test_step(batch, batch_idx)  # the usual top-1 / top-5 counts (its forward fills self._logits)
        if batch is None:
            return
        labels = batch[1]
        self._pairs += confusion_counts(labels, self._logits.argmax(-1), self.model.num_classes).to(self._pairs.device)

    def on_test_epoch_end(self) -> None:
        self.confusion = self.trainer.strategy.reduce(self._pairs, reduce_op="sum").cpu()
        super().on_test_epoch_end()

    def on_test_end(self) -> None:
        self._hook.remove()


def evaluate(cfg, model, data, out: str | Path) -> tuple[dict, torch.Tensor, dict]:
    """Test ``model`` on ``data``'s test split: (test metrics, confusion counts (C, C), times)."""
    from lorevit.training.trainer import make_trainer

    lit = ConfusionClassifier(model, cfg)
    trainer = make_trainer(cfg, Path(out), 0)
    start = time.perf_counter()
    results = trainer.test(lit, dataloaders=data.test_dataloader(), verbose=False)[0]
    from lorevit.training.loaders import test_timing

    times = {"train_s": 0.0, **test_timing(cfg, len(data.test_indices), time.perf_counter() - start),
             "world_size": trainer.world_size}
    return {k: float(v) for k, v in results.items()}, lit.confusion, times


def evaluate_adapter(adapter: str | Path, output: str | Path, overrides: dict | None = None,
                     weights: str | None = "unset", strict: bool = False) -> dict:
    """``lorevit eval``: test a saved adapter on its dataset's test split (its training config, with ``overrides``:
    another data root, test subset, batch size, ...) and write ``eval.json``, ``per_class.json`` and
    ``confusion.png`` into ``output``. Returns eval.json's contents."""
    from lorevit.config import Config
    from lorevit.errors import ConfigError
    from lorevit.factory import load_adapter
    from lorevit.training.datamodule import ClassificationData
    from lorevit.training.figures import plot_confusion
    from lorevit.utils.io import write_json

    out = Path(output)
    model, trained_cfg = load_adapter(adapter, weights=weights, strict=strict)
    cfg = Config.from_dict({**trained_cfg.to_dict(), **(overrides or {})}).replace(protocol="full")
    data = ClassificationData(cfg, model.backbone.data_config, train_indices=[])
    if data.classnames != model.classnames:
        raise ConfigError(
            f"dataset {cfg.dataset!r} has {len(data.classnames)} classes {data.classnames[:3]}..., the adapter was "
            f"trained on {model.num_classes} {model.classnames[:3]}...; evaluate on the adapter's own class list"
        )
    results, confusion, times = evaluate(cfg, model, data, out / "eval")  # issue 12 §3: + confusion counts
    results.update(num_test=len(data.test_indices), dataset=cfg.dataset, **times)
    write_json(out / "eval.json", results)
    write_json(out / "per_class.json", {"dataset": cfg.dataset, **per_class_table(confusion, model.classnames)})
    plot_confusion(confusion, model.classnames, out / "confusion.png", title=f"{trained_cfg.method} on {cfg.dataset}")
    return results
