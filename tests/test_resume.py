"""Resume (issue 14 §2): mid-epoch from step checkpoints, and easy-to-hard per stage."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lorevit.run import train

from .conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT, tiny_config


def _epoch(loader, epoch):
    """(index, image) of every batch of one epoch, as the training loop draws them."""
    loader.sampler.set_epoch(epoch)
    return [(index, images) for images, _, index, _ in loader]


@pytest.mark.parametrize("workers", [0, 1])
def test_restarted_epoch_draws_exactly_the_remaining_images_with_the_same_augmentations(tmp_path, color_folder,
                                                                                       workers):
    """A loader restored from (epoch 2, 3 batches done) yields the epoch's other batches: the same indices, in the
    same order, with the same augmented pixels as a loader that never stopped (also with a worker process)."""
    from lorevit.training import ClassificationData, ResumableLoader

    cfg = tiny_config(tmp_path / "run", color_folder, shots=12, batch_size=5, num_workers=workers)
    data = ClassificationData(cfg, {"mean": (0.5,) * 3, "std": (0.5,) * 3})
    straight = data.train_dataloader()
    assert isinstance(straight, ResumableLoader) and len(straight) == 8  # 36 images, batches of 5
    _epoch(straight, 0)
    full = _epoch(straight, 2)
    assert straight.state_dict() == {"epoch": 2, "batches": 8}
    assert sorted(torch.cat([i for i, _ in full]).tolist()) == sorted(data.train_indices)  # every image once

    restarted = data.train_dataloader()
    restarted.load_state_dict({"epoch": 2, "batches": 3})
    rest = _epoch(restarted, 2)  # Lightning calls set_epoch with the restored epoch
    assert torch.cat([i for i, _ in rest]).tolist() == torch.cat([i for i, _ in full[3:]]).tolist()
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(rest, full[3:]))
    assert restarted.state_dict() == {"epoch": 2, "batches": 8}
    assert len(_epoch(restarted, 3)) == 8  # the next epoch is whole again

    finished = data.train_dataloader()
    finished.load_state_dict({"epoch": 2, "batches": 8})  # saved at the epoch's end: nothing left to skip
    assert finished.sampler.epoch == 3 and len(_epoch(finished, 3)) == 8


def _argv(data_root, out, *extra):
    return [sys.executable, "-m", "lorevit", "train", "--backbone", TINY_VIT, "--weights", "random",
            "--backbone_kwargs", json.dumps(TINY_KWARGS), "--img_size", str(TINY_SIZE),
            "--dataset", "imagefolder", "--data_root", str(data_root), "--shots", "12", "--epochs", "3",
            "--batch_size", "2", "--accelerator", "cpu", "--progress", "false", "--knowledge", "st:minilm",
            "--output", str(out), *extra]


def test_sigkill_mid_epoch_resumes_from_a_step_checkpoint(tmp_path, color_folder):
    """checkpoint_every_n_steps 2: SIGKILL a run inside its 2nd or 3rd epoch, right after a step checkpoint; the resumed run
    continues that epoch where it stopped and ends with the same loss history and test metrics as a run that never
    stopped (18 steps of 2 images per epoch)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    killed = tmp_path / "killed"
    process = subprocess.Popen(_argv(color_folder, killed, "--checkpoint_every_n_steps", "2"), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, seen, deadline = killed / "checkpoints" / "last.ckpt", None, time.time() + 180
    while process.poll() is None and time.time() < deadline:
        if ckpt.is_file() and ckpt.stat().st_mtime_ns != seen:
            process.send_signal(signal.SIGSTOP)  # frozen while its latest checkpoint is looked at
            seen = ckpt.stat().st_mtime_ns
            step = torch.load(ckpt, weights_only=False)["global_step"]  # whole: checkpoints are written atomically
            if step > 18 and step % 18:  # a step checkpoint inside the 2nd or 3rd epoch
                break
            process.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    state = torch.load(ckpt, weights_only=False)
    done = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert done["epoch"] >= 1 and 0 < done["batches"] < 18 and state["global_step"] == 18 * done["epoch"] + done["batches"]
    assert not (killed / "metrics.json").exists()

    resumed = subprocess.run(_argv(color_folder, killed, "--resume"), env=env, capture_output=True, text=True,
                             timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = subprocess.run(_argv(color_folder, tmp_path / "straight"), env=env, capture_output=True, text=True,
                              timeout=240)
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = json.loads((killed / "metrics.json").read_text())
    b = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert [row["epoch"] for row in a["history"]] == [1, 2, 3]
    for key in ("train_loss", "train_acc", "train_task", "train_kp", "lr"):
        assert [row[key] for row in a["history"]] == pytest.approx([row[key] for row in b["history"]], abs=1e-6), key
    assert (a["test_top1"], a["test_top5"]) == (b["test_top1"], b["test_top5"])
    print(f"\nmax |Δ train_loss| = {max(abs(x['train_loss'] - y['train_loss']) for x, y in zip(a['history'], b['history'])):.3g}"
          f", resumed after {done['batches']} of 18 batches of epoch {done['epoch'] + 1}; test top-1 {a['test_top1']:.4f} = {b['test_top1']:.4f}")
