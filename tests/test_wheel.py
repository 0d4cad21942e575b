"""The package as users get it (issue 22 §5): wheel + sdist build, twine check, the wheel installed into a
fresh virtual environment outside the checkout runs ``lorevit --help``, ``train`` (tiny random ViT) and ``predict``.

Offline: the build does not isolate (no index to fetch setuptools from) and the fresh venv reaches the
dependencies (torch, timm, ...) through a ``.pth`` line naming this interpreter's site-packages; a line in a
.pth does not run that folder's own .pth files, so the editable install of the checkout stays invisible.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_SIZE, write_color_folder

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd, cwd, env=None, timeout=600):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", str(dist), str(ROOT)],
         cwd=tmp_path)
    wheel = next(dist.glob("lorevit-*.whl"))
    sdist = next(dist.glob("lorevit-*.tar.gz"))
    _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], cwd=tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (ROOT / "lorevit").rglob("*"):  # every data file the code reads at run time
        if needed.suffix in (".yaml", ".txt", ".md", ".json") and "__pycache__" not in needed.parts:
            assert needed.relative_to(ROOT).as_posix() in names, f"{needed} is not in the wheel"

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).strip())
    (site / "shared-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
         cwd=tmp_path)
    lorevit = [str(python), "-m", "lorevit"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(LOREVIT_HOME=str(tmp_path / "home"), TOKENIZERS_PARALLELISM="false")
    where = _run([str(python), "-c", "import lorevit; print(lorevit.__file__)"], tmp_path, env).strip()
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    assert "usage: lorevit" in _run([*lorevit, "--help"], tmp_path, env)
    from lorevit.version import __version__

    assert __version__ in _run([*lorevit, "--version"], tmp_path, env)
    data = write_color_folder(tmp_path / "colors", per_class=(2, 1))
    out = tmp_path / "run"
    _run([*lorevit, "train", "--backbone", "vit_tiny_patch16_224", "--weights", "random", "--img-size", str(TINY_SIZE),
          "--backbone-kwargs", "{patch_size: 8, depth: 2, embed_dim: 32, num_heads: 2}", "--progress", "false",
          "--accelerator", "cpu", "--dataset", "imagefolder", "--data-root", str(data), "--shots", "2",
          "--epochs", "1", "--batch-size", "6", "--knowledge", "st:minilm", "--output", str(out)], tmp_path, env)
    image = tmp_path / "red.png"
    pixels = np.zeros((TINY_SIZE, TINY_SIZE, 3), np.uint8)
    pixels[..., 0] = 220
    Image.fromarray(pixels).save(image)
    printed = _run([*lorevit, "predict", "--adapter", str(out), str(image)], tmp_path, env)
    assert printed.splitlines()[0] == str(image) and "%" in printed
