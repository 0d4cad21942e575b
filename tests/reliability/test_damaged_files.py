"""issue 25 §2: damaged checkpoints and caches are named, never half-read; `--resume auto` falls back to the
checkpoint before a damaged one; a second run on one --output is refused; four processes building one cache entry
all succeed; a full disk leaves the previous file whole; a non-finite loss stops the run (or is skipped)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from lorevit.cli import main
from lorevit.errors import DamagedFileError
from lorevit.training.trainer import checkpoint_problem, previous_checkpoint, resume_checkpoint
from lorevit.utils.lock import LOCK_FILE

from ..conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _args(color_folder, out, *extra):
    return ["train", "--backbone", TINY_VIT, "--weights", "random", "--backbone_kwargs", json.dumps(TINY_KWARGS),
            "--img_size", str(TINY_SIZE), "--dataset", "imagefolder", "--data_root", str(color_folder),
            "--shots", "4", "--epochs", "2", "--batch_size", "4", "--accelerator", "cpu", "--progress", "false",
            "--knowledge", "st:minilm", "--output", str(out), *extra]


def _damaged_copies(path, tmp_path):
    """``path`` cut at several offsets, and random bytes of the same length."""
    data = path.read_bytes()
    for n, cut in enumerate((0, 1, 30, len(data) // 3, len(data) // 2, len(data) - 1)):
        damaged = tmp_path / f"cut{n}.ckpt"
        damaged.write_bytes(data[:cut])
        yield damaged
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(os.urandom(len(data)))
    yield noise
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # one byte inside a member: only its checksum tells
    (tmp_path / "flipped.ckpt").write_bytes(bytes(flipped))
    yield tmp_path / "flipped.ckpt"


def test_checkpoint_problem_finds_every_cut_and_random_bytes(tmp_path):
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.randn(64, 64)}, "epoch": 3}, whole)
    assert checkpoint_problem(whole) is None
    for damaged in _damaged_copies(whole, tmp_path):
        assert checkpoint_problem(damaged) is not None, damaged.name
    assert "does not exist" in checkpoint_problem(tmp_path / "missing.ckpt")


def test_resume_falls_back_to_the_previous_checkpoint_only_with_auto(tmp_path):
    last, good = tmp_path / "last.ckpt", {"state_dict": {}, "epoch": 1}
    torch.save(good, previous_checkpoint(last))
    last.write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(DamagedFileError, match=r"last\.ckpt.*--resume auto"):
        resume_checkpoint(last, auto=False)
    assert resume_checkpoint(last, auto=True) == previous_checkpoint(last)
    previous_checkpoint(last).write_bytes(b"garbage")
    with pytest.raises(DamagedFileError, match="no whole earlier checkpoint"):
        resume_checkpoint(last, auto=True)


def test_a_damaged_last_checkpoint_resumes_from_the_one_before(tmp_path, color_folder, capsys, caplog):
    """Two epochs keep two checkpoints (last.prev.ckpt is epoch 1). A preempted run whose last.ckpt is then cut:
    --resume is refused with one line naming the file; --resume auto says so, resumes from epoch 1 and ends with
    the history of a run never stopped."""
    straight, out = tmp_path / "straight", tmp_path / "run"
    assert main(_args(color_folder, straight)) == 0
    assert main(_args(color_folder, out)) == 0
    ckpts = out / "checkpoints"
    assert torch.load(previous_checkpoint(ckpts / "last.ckpt"), weights_only=False)["epoch"] == 0  # after epoch 1
    record = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").write_text(json.dumps({**record, "status": "preempted"}))  # stopped before its end
    data = (ckpts / "last.ckpt").read_bytes()
    (ckpts / "last.ckpt").write_bytes(data[: len(data) // 2])
    capsys.readouterr()

    assert main(_args(color_folder, out, "--resume", "true")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lorevit: error: cannot resume from" in err and "last.ckpt" in err
    assert "--resume auto" in err

    assert main(_args(color_folder, out, "--resume", "auto")) == 0
    assert "resuming from the previous checkpoint" in caplog.text  # the CLI's log line (in-process: captured)
    a, b = (json.loads((o / "metrics.json").read_text()) for o in (out, straight))
    assert a["status"] == "finished" and [r["epoch"] for r in a["history"]] == [1, 2]
    for key in ("train_loss", "lr"):
        assert [r[key] for r in a["history"]] == pytest.approx([r[key] for r in b["history"]], abs=1e-6)


def test_a_second_run_on_one_output_is_refused_and_a_stale_lock_taken_over(tmp_path, color_folder, capsys,
                                                                           caplog):
    import socket

    out = tmp_path / "run"
    out.mkdir()
    lock = out / LOCK_FILE
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}))  # a live run
    assert main(_args(color_folder, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pid {os.getpid()}" in err and socket.gethostname() in err
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written

    lock.write_text(json.dumps({"pid": os.getpid(), "host": "another-node", "since": "now"}))
    assert main(_args(color_folder, out)) == 2 and "another-node" in capsys.readouterr().err

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "then"}))
    assert main(_args(color_folder, out)) == 0
    assert "stale lock" in caplog.text
    assert not lock.exists() and json.loads((out / "metrics.json").read_text())["status"] == "finished"


BUILD_CACHE = """
import sys
from lorevit.knowledge import class_features
features = class_features("st:minilm", ["red square", "green square", "blue square", "a cat"])
assert features.shape[0] == 4
"""


def test_four_processes_building_one_cache_entry_leave_one_valid_file(tmp_path):
    from safetensors.torch import load_file

    env = {**ENV, "LOREVIT_HOME": str(tmp_path / "home")}
    runs = [subprocess.Popen([sys.executable, "-c", BUILD_CACHE], env=env, stderr=subprocess.PIPE, text=True)
            for _ in range(4)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
    files = sorted((tmp_path / "home" / "text").iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"  # no temporary file left behind
    assert load_file(files[0])["features"].shape[0] == 4


def test_a_damaged_text_cache_is_one_error_naming_it(tmp_path, color_folder, capsys, monkeypatch):
    from lorevit import knowledge

    monkeypatch.setenv("LOREVIT_HOME", str(tmp_path / "home"))
    knowledge._class_features.cache_clear()
    assert main(_args(color_folder, tmp_path / "first", "--epochs", "1")) == 0
    (entry,) = (tmp_path / "home" / "text").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    knowledge._class_features.cache_clear()
    capsys.readouterr()
    assert main(_args(color_folder, tmp_path / "second", "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "text-feature cache" in err and str(entry) in err and "delete it" in err
    knowledge._class_features.cache_clear()


FILL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG, as a full disk does with ENOSPC
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
if sys.argv[2] == "json":
    from lorevit.utils.io import write_json
    write_json(sys.argv[3], {"values": list(range(200000))})
else:
    from lorevit.cli import main
    sys.exit(main(sys.argv[3:]))
"""


def test_a_full_disk_keeps_the_previous_file_and_removes_the_partial_one(tmp_path):
    target = tmp_path / "results.json"
    target.write_text('{"previous": true}\n')
    done = subprocess.run([sys.executable, "-c", FILL_DISK, "65536", "json", str(target)], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "DiskFullError" in done.stderr and "previous file is unchanged" in done.stderr
    assert target.read_text() == '{"previous": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no partial file


def test_a_full_disk_while_training_is_one_error_line(tmp_path, color_folder):
    """The checkpoint is the run's largest file: a file-size limit below it (and above every small file) fails its
    write at the OS layer, as a full disk would."""
    out = tmp_path / "run"
    argv = [sys.executable, "-c", FILL_DISK, "20000", "cli", *_args(color_folder, out, "--epochs", "1")]
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("lorevit: error: no space left while writing") and "Traceback" not in done.stderr
    assert not list(out.rglob("*.tmp")) and not (out / LOCK_FILE).exists()


def test_a_non_finite_loss_stops_the_run_or_is_skipped(tmp_path, color_folder, capsys):
    out = tmp_path / "diverged"
    huge = ["--lr", "1e30", "--recipe", "lore", "--method", "linear"]
    assert main(_args(color_folder, out, *huge)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training diverged: non-finite" in err and "epoch 1" in err and "--lr" in err
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "diverged" and record["step"] >= 1
    assert not (out / "adapter.safetensors").exists()

    skipped = tmp_path / "skipped"
    assert main(_args(color_folder, skipped, *huge, "--on-nonfinite", "skip")) == 0
    record = json.loads((skipped / "metrics.json").read_text())
    assert record["status"] == "finished" and record["nonfinite_skipped"] >= 1
    assert record["history"][-1]["nonfinite_skipped"] == record["nonfinite_skipped"]


def test_a_damaged_adapter_is_one_error_naming_it(tmp_path, color_folder, capsys):
    import shutil

    import lorevit
    from lorevit.errors import UserError

    out = tmp_path / "run"
    assert main(_args(color_folder, out, "--epochs", "1", "--method", "linear")) == 0
    whole = (out / "adapter.safetensors").read_bytes()
    image = next(color_folder.rglob("*.png"))
    for n, data in enumerate([whole[:cut] for cut in (0, 7, 100, len(whole) // 2, len(whole) - 1)] +
                             [os.urandom(len(whole))]):
        damaged = tmp_path / f"damaged{n}"
        shutil.copytree(out, damaged)
        (damaged / "adapter.safetensors").write_bytes(data)
        with pytest.raises(UserError, match="adapter.safetensors"):
            lorevit.load_adapter(damaged)
    capsys.readouterr()
    assert main(["predict", "--adapter", str(damaged), str(image)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "adapter.safetensors" in err


def test_an_easy_to_hard_stage_checkpoint_falls_back_only_with_auto(tmp_path):
    from lorevit.config import Config
    from lorevit.training.protocols import stage_checkpoint

    out = tmp_path / "e2h"
    last = out / "checkpoints" / "hard" / "last.ckpt"
    last.parent.mkdir(parents=True)
    cfg = Config(resume=True, output=str(out))
    assert stage_checkpoint(cfg, out, "hard", auto=True) is None  # a stage killed before its first checkpoint
    torch.save({"state_dict": {}, "epoch": 0}, previous_checkpoint(last))
    last.write_bytes(b"not a checkpoint")
    assert stage_checkpoint(cfg, out, "hard", auto=True) == previous_checkpoint(last)
    with pytest.raises(DamagedFileError, match="hard/last.ckpt"):
        stage_checkpoint(cfg, out, "hard")
    assert stage_checkpoint(Config(resume=False, output=str(out)), out, "hard", auto=True) is None
