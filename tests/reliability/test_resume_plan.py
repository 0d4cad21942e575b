"""issue 25 §4: a resume with more epochs records what really happened — the learning rate of every epoch as
used, and where the plan changed — in metrics.json and in `lorevit report`, not a schedule the run never followed."""
import json

import pytest

from lorevit.training.module import cosine_factor
from lorevit.training.run import train

from ..conftest import tiny_config


def test_resume_with_more_epochs_records_the_plans_and_the_lrs_used(tmp_path, color_folder, capsys):
    first = train(tiny_config(tmp_path / "run", color_folder, epochs=2))
    assert first["schedule"] == {"planned_epochs": [2], "changes": [],
                                 "lr_per_epoch": [row["lr"] for row in first["history"]]}
    resumed = train(tiny_config(tmp_path / "run", color_folder, epochs=4, resume=True))
    schedule = json.loads((tmp_path / "run" / "metrics.json").read_text())["schedule"]
    assert schedule == resumed["schedule"]
    assert schedule["planned_epochs"] == [2, 4]
    assert schedule["changes"] == [{"from_epochs": 2, "to_epochs": 4, "at_epoch": 3, "at_step": 6}]  # 3 steps/epoch
    lrs = schedule["lr_per_epoch"]
    assert lrs[:2] == [row["lr"] for row in first["history"]]  # the epochs before the change: the old plan's
    cfg = tiny_config(tmp_path / "x", color_folder)
    assert lrs[1] == pytest.approx(cfg.lr * cosine_factor(6, 6, cfg.lr, cfg.lr_min))  # old plan's end: lr_min
    assert lrs[2:] == pytest.approx([cfg.lr * cosine_factor(s, 12, cfg.lr, cfg.lr_min) for s in (9, 12)])
    from lorevit.cli import main

    assert main(["report", str(tmp_path / "run"), "--output", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "resumed with 4 instead of 2 epochs at epoch 3 (step 6)" in text
