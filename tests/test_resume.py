"""Resume (issue 14 §2): mid-epoch from step checkpoints, and easy-to-hard per stage."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from lorevit.training.run import train

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
    from lorevit.training.datamodule import ClassificationData
    from lorevit.training.loaders import ResumableLoader

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


def _kill_mid_epoch_and_resume(tmp_path, data_root, steps, *extra):
    """Run with step checkpoints every 2 steps, SIGKILL it right after a step checkpoint inside its 2nd or 3rd epoch
    (``steps`` per epoch), resume it, run it again uninterrupted; the two metrics.json and where it was killed."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    killed = tmp_path / "killed"
    process = subprocess.Popen(_argv(data_root, killed, *extra, "--checkpoint_every_n_steps", "2"), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt, seen, deadline = killed / "checkpoints" / "last.ckpt", None, time.time() + 180
    while process.poll() is None and time.time() < deadline:
        if ckpt.is_file() and ckpt.stat().st_mtime_ns != seen:
            os.killpg(process.pid, signal.SIGSTOP)  # frozen (all its ranks) while its latest checkpoint is read
            seen = ckpt.stat().st_mtime_ns
            step = torch.load(ckpt, weights_only=False)["global_step"]  # whole: checkpoints are written atomically
            if step > steps and step % steps:  # a step checkpoint inside the 2nd or 3rd epoch
                break
            os.killpg(process.pid, signal.SIGCONT)
        time.sleep(0.002)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    state = torch.load(ckpt, weights_only=False)
    done = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert done["epoch"] >= 1 and 0 < done["batches"] < steps
    assert state["global_step"] == steps * done["epoch"] + done["batches"]
    assert not (killed / "metrics.json").exists()

    for out, flags in ((killed, ("--resume",)), (tmp_path / "straight", ())):
        result = subprocess.run(_argv(data_root, out, *extra, *flags), env=env, capture_output=True, text=True,
                                timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
    a, b = (json.loads((out / "metrics.json").read_text()) for out in (killed, tmp_path / "straight"))
    assert [row["epoch"] for row in a["history"]] == [1, 2, 3]
    for key in ("train_loss", "train_acc", "train_task", "train_kp", "lr"):
        assert [row[key] for row in a["history"]] == pytest.approx([row[key] for row in b["history"]], abs=1e-6), key
    assert (a["test_top1"], a["test_top5"]) == (b["test_top1"], b["test_top5"])
    delta = max(abs(x["train_loss"] - y["train_loss"]) for x, y in zip(a["history"], b["history"]))
    print(f"\nmax |Δ train_loss| = {delta:.3g}, resumed after {done['batches']} of {steps} batches of epoch "
          f"{done['epoch'] + 1}; test top-1 {a['test_top1']:.4f} = {b['test_top1']:.4f}")


def test_sigkill_mid_epoch_resumes_from_a_step_checkpoint(tmp_path, color_folder):
    """checkpoint_every_n_steps 2: a run SIGKILLed inside an epoch continues that epoch where it stopped and ends with
    the same loss history and test metrics as a run that never stopped (18 steps of 2 images per epoch)."""
    _kill_mid_epoch_and_resume(tmp_path, color_folder, 18)


def test_sigkill_mid_epoch_resumes_under_ddp(tmp_path, color_folder):
    """The same with two gloo processes (9 steps of 2 + 2 images per epoch): each rank leaves out the batches of its
    own shard it had trained on, and the epoch's means (kept in the checkpoint) are those of the whole epoch."""
    _kill_mid_epoch_and_resume(tmp_path, color_folder, 9, "--devices", "2", "--strategy", "ddp",
                               "--eval-batch-size", "4")


class Crash(Exception):
    pass


def _e2h(tmp_path, data_root, **changes):
    return tiny_config(tmp_path / "e2h", data_root, protocol="easy-to-hard", stage_shots=3, epochs=2, hard_epochs=3,
                       selection_pool=None, batch_size=4, **changes)


def test_easy_to_hard_resumes_the_stage_it_was_killed_in(tmp_path, color_folder, monkeypatch):
    """A crash inside the hard stage (after its 1st epoch's checkpoint), then one between the stages: each --resume
    continues where the run stopped — a finished easy stage is reloaded, not trained again — and ends with the
    uninterrupted run's stages, histories and test metrics."""
    import lightning as L

    import lorevit.training.protocols as run  # where fit_and_test and make_trainer are looked up

    straight = train(_e2h(tmp_path / "straight", color_folder))

    make_trainer = run.make_trainer

    class CrashAt(L.Callback):
        def on_train_epoch_start(self, trainer, lit):
            if trainer.current_epoch == 1:
                raise Crash("killed")

    def crashing(cfg, out, epochs, stage=""):
        trainer = make_trainer(cfg, out, epochs, stage)
        trainer.callbacks.append(CrashAt()) if stage == "hard" else None
        return trainer

    monkeypatch.setattr(run, "make_trainer", crashing)
    with pytest.raises(Crash):
        train(_e2h(tmp_path, color_folder))
    monkeypatch.setattr(run, "make_trainer", make_trainer)
    out = tmp_path / "e2h"
    record = json.loads((out / "stages.json").read_text())
    assert record["easy"]["test_top1"] == straight["stages"]["easy"]["test_top1"] and "hard" in record
    assert torch.load(out / "checkpoints" / "hard" / "last.ckpt", weights_only=True)["epoch"] == 0
    easy_ckpt = (out / "checkpoints" / "easy" / "last.ckpt").read_bytes()

    trained, fit_and_test = [], run.fit_and_test
    monkeypatch.setattr(run, "fit_and_test", lambda *a, **k: trained.append(k["stage"]) or fit_and_test(*a, **k))
    resumed = train(_e2h(tmp_path, color_folder, resume=True))
    assert trained == ["hard"]  # the easy stage was reloaded, not trained again
    assert (out / "checkpoints" / "easy" / "last.ckpt").read_bytes() == easy_ckpt
    _same_run(resumed, straight)

    # a crash between the stages (the hard images not chosen yet): the resumed run chooses them again, identically
    (out / "metrics.json").unlink()
    record = json.loads((out / "stages.json").read_text())
    del record["hard"]
    (out / "stages.json").write_text(json.dumps(record))
    shutil.rmtree(out / "checkpoints" / "hard")
    trained.clear()
    resumed = train(_e2h(tmp_path, color_folder, resume=True))
    assert trained == ["hard"]
    _same_run(resumed, straight)


def _same_run(a, b):
    for stage in ("easy", "hard"):
        assert a["stages"][stage]["indices"] == b["stages"][stage]["indices"], stage
        for key in ("train_loss", "train_acc", "lr"):
            assert [r[key] for r in a["stages"][stage]["history"]] == \
                pytest.approx([r[key] for r in b["stages"][stage]["history"]], abs=1e-6), (stage, key)
    assert (a["test_top1"], a["test_top5"], a["improvement"]) == (b["test_top1"], b["test_top5"], b["improvement"])


def test_ddp_batches_of_unreadable_images_do_not_hang_the_other_rank(tmp_path):
    """bad_images: skip under 2-process gloo DDP with batches of one image: the batches of the 3 truncated PNGs
    hold no readable image on their rank while the other rank trains; the run finishes (no rank waits in the
    gradient all-reduce) and counts what it skipped."""
    from .conftest import write_color_folder

    root = write_color_folder(tmp_path / "colors", per_class=(4, 3))
    for name in ("train/red_square/000.png", "train/green_square/001.png", "test/blue_square/002.png"):
        path = root / name
        path.write_bytes(path.read_bytes()[:60])  # a PNG cut off inside its first chunk
    out = tmp_path / "ddp"
    cmd = _argv(root, out, "--bad_images", "skip", "--batch_size", "1", "--shots", "4", "--epochs", "2",
                "--devices", "2", "--strategy", "ddp", "--eval-batch-size", "2")
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["skipped_images"] == {"train": 2, "test": 1}
    assert [row["train_skipped"] for row in metrics["history"]] == [2, 2]
    assert metrics["test_images"] == 8 and all(row["train_loss"] > 0 for row in metrics["history"])
    print(f"\nDDP run with unreadable batches: {time.perf_counter() - start:.1f} s")


# --- the one-off passes (zero-shot labels, easy-to-hard features): training device, sharded under DDP ---

POOL = [17, 3, 30, 8, 22, 1, 35, 12, 26]  # an odd number of images, not in index order


def _pass(data_root, tmp, indices=POOL):
    from lorevit.backbone import create_backbone
    from lorevit.factory import create_model
    from lorevit.training.datamodule import ClassificationData
    from lorevit.training.passes import one_off_pass

    torch.manual_seed(0)
    backbone = create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS)
    cfg = tiny_config(tmp, data_root, method="lore", eval_batch_size=2)
    data = ClassificationData(cfg, backbone.data_config)
    model = create_model("lore", data.classnames, backbone=backbone, knowledge=None, knowledge_width=16)
    loader = data.plain_train_dataloader(indices)
    outputs = one_off_pass(model, lambda x: (lambda o: (o.logits.argmax(-1), o.features))(model(x)), loader,
                           torch.device("cpu"))
    return model, loader, outputs


def test_one_off_pass_equals_the_plain_loop_on_one_process(tmp_path, color_folder):
    from lorevit.training.passes import predict_loader

    model, loader, (index, (preds, feats)) = _pass(color_folder, tmp_path)
    model.train()
    expected_preds, expected_index, expected_feats = predict_loader(model, loader, features=True)
    assert index.tolist() == expected_index.tolist() == POOL
    assert torch.equal(preds, expected_preds) and torch.equal(feats, expected_feats)


def _shard_worker(rank, data_root, tmp, port):
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        _, loader, (index, (preds, feats)) = _pass(data_root, tmp)
        assert len(loader.sampler) == (5, 4)[rank]  # this rank's shard: positions rank, rank + 2, ...
        torch.save({"index": index, "preds": preds, "feats": feats}, f"{tmp}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_one_off_pass_sharded_over_two_gloo_processes_equals_one_process(tmp_path, color_folder):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_shard_worker, args=(str(color_folder), str(tmp_path), port), nprocs=2)
    _, _, (index, (preds, feats)) = _pass(color_folder, tmp_path)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["index"].tolist() == index.tolist() == POOL
        assert torch.equal(got["preds"], preds) and torch.allclose(got["feats"], feats, atol=1e-6)


def test_zero_shot_labels_from_the_one_off_pass_equal_the_plain_loop(tmp_path, color_folder, monkeypatch):
    pytest.importorskip("open_clip")
    monkeypatch.setenv("LOREVIT_HOME", str(tmp_path / "home"))  # its own zero-shot cache (test_clip counts the files)
    from lorevit.backbone import create_backbone
    from lorevit.knowledge import ZERO_SHOT_TEMPLATE, class_features
    from lorevit.methods import ZeroShotHead
    from lorevit.factory import create_model
    from lorevit.training.protocols import zero_shot_negatives
    from lorevit.training.datamodule import ClassificationData

    from .test_clip import CLIP_TINY

    cfg = tiny_config(tmp_path / "run", color_folder, eval_batch_size=5, **CLIP_TINY)
    backbone = create_backbone(cfg.backbone, cfg.weights, cfg.img_size, **cfg.backbone_kwargs)
    data = ClassificationData(cfg, backbone.data_config)
    model = create_model(cfg.method, data.classnames, backbone=backbone, knowledge=cfg.knowledge)
    table = zero_shot_negatives(cfg, model, data)
    head = ZeroShotHead(model.backbone, class_features(cfg.knowledge, data.classnames, ZERO_SHOT_TEMPLATE))
    expected = torch.full((len(data.train_set),), -1, dtype=torch.long)
    with torch.no_grad():
        for images, _, index in data.plain_train_dataloader():
            expected[index] = head(model.backbone(images)).argmax(-1)
    assert torch.equal(table, expected) and (table >= 0).sum() == len(data.train_indices)
