"""issue 25 §1: a polite signal (SIGTERM, SLURM's SIGUSR1) finishes the step, writes a step checkpoint atomically,
records "status": "preempted" and exits with EXIT_PREEMPTED (75); `--resume auto` continues to the same loss
history and test metrics as a run never stopped — also after two SIGTERMs in a row. Through the real CLI."""
import json
import os
import signal
import subprocess
import time

import pytest
import torch

from lorevit.errors import EXIT_PREEMPTED

from ..test_resume import _argv

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
STEPS = 18  # 36 images, batches of 2


def _signal_after_next_checkpoint(out, argv, signals, delay=0.3, after_step=None):
    """Start ``argv``; once it writes its next last.ckpt (with ``after_step``: the first one past that step), wait
    ``delay`` s, send ``signals`` (a burst); its exit status."""
    ckpt = out / "checkpoints" / "last.ckpt"
    before = ckpt.stat().st_mtime_ns if ckpt.is_file() else None
    process = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while process.poll() is None and time.time() < deadline:
        if ckpt.is_file() and ckpt.stat().st_mtime_ns != before:
            before = ckpt.stat().st_mtime_ns
            if after_step is not None and torch.load(ckpt, weights_only=False)["global_step"] <= after_step:
                continue  # written by rename: always whole
            time.sleep(delay)
            for sig in signals:
                process.send_signal(sig)
                time.sleep(0.01)
            break
        time.sleep(0.002)
    _, err = process.communicate(timeout=180)
    return process.returncode, err


def test_sigterm_inside_an_epoch_then_resume_auto_is_the_uninterrupted_run(tmp_path, color_folder):
    out = tmp_path / "preempted"
    # step checkpoints every 3 steps: the signals land inside an epoch however fast the machine is
    argv = _argv(color_folder, out, "--resume", "auto", "--checkpoint_every_n_steps", "3")
    code, err = _signal_after_next_checkpoint(out, argv, [signal.SIGTERM], delay=0.0, after_step=STEPS)
    assert code == EXIT_PREEMPTED, err[-3000:]
    assert "preempted by SIGTERM" in err and "--resume auto" in err and "Traceback" not in err
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "preempted" and record["signal"] == "SIGTERM"
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == record["step"] > STEPS  # the step that was running finished and was saved
    first_stop = record["step"]

    # the resumed job is preempted again, by two SIGTERMs in a row (SLURM's, then the user's scancel)
    code, err = _signal_after_next_checkpoint(out, argv, [signal.SIGTERM, signal.SIGTERM], delay=0.0)
    assert code == EXIT_PREEMPTED, err[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "preempted" and record["step"] > first_stop

    done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=240)  # requeued once more
    assert done.returncode == 0, done.stderr[-3000:]
    straight = tmp_path / "straight"
    result = subprocess.run(_argv(color_folder, straight), env=ENV, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = (json.loads((o / "metrics.json").read_text()) for o in (out, straight))
    assert a["status"] == b["status"] == "finished"
    assert [row["epoch"] for row in a["history"]] == [1, 2, 3]
    for key in ("train_loss", "train_acc", "lr"):
        assert [r[key] for r in a["history"]] == pytest.approx([r[key] for r in b["history"]], abs=1e-6), key
    assert (a["test_top1"], a["test_top5"]) == (b["test_top1"], b["test_top5"])

    again = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=240)  # requeued after the end
    assert again.returncode == 0 and json.loads((out / "metrics.json").read_text()) == a, again.stderr[-2000:]


def test_resume_auto_starts_fresh_without_a_checkpoint(tmp_path, color_folder):
    from lorevit.config import Config

    assert Config(resume="auto").resume == "auto" and Config(resume="true").resume is True
    from lorevit.training.run import resolve_resume

    cfg = Config(resume="auto", output=str(tmp_path / "new"))
    assert resolve_resume(cfg).resume is False
    (tmp_path / "new" / "checkpoints").mkdir(parents=True)
    (tmp_path / "new" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resolve_resume(cfg).resume is True


def test_sigterm_after_the_last_checkpoint_never_kills_the_run(tmp_path, color_folder):
    """Signals after training (the validation and test passes, writing the adapter, metrics and plots): the run
    either stops preempted at a test batch (exit 75; `--resume auto` then only evaluates, to the same metrics) or
    finishes (exit 0) — never killed half-way by the default SIGTERM action (exit -15)."""
    out, straight = tmp_path / "late", tmp_path / "straight"
    argv = _argv(color_folder, out, "--resume", "auto", "--epochs", "1", "--eval-batch-size", "1")
    code, err = _signal_after_next_checkpoint(out, argv, [signal.SIGTERM, signal.SIGTERM], delay=0.0)
    assert code in (0, EXIT_PREEMPTED), err[-3000:]
    if code == EXIT_PREEMPTED:
        assert json.loads((out / "metrics.json").read_text())["status"] == "preempted"
        done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
    result = subprocess.run(_argv(color_folder, straight, "--epochs", "1", "--eval-batch-size", "1"), env=ENV,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = (json.loads((o / "metrics.json").read_text()) for o in (out, straight))
    assert a["status"] == "finished" and (a["test_top1"], a["test_top5"]) == (b["test_top1"], b["test_top5"])
