"""The layers contract (issue 18 §1): imports only go down ARCHITECTURE.md's rooms, no circles (lazy imports
included), Lightning only in training and above, argparse only in the CLI — and the check catches a planted
violation of each rule."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from .layers import ROWS, check

PACKAGE = Path(__file__).resolve().parent.parent / "lorevit"


def test_lorevit_keeps_its_layers():
    problems = check(PACKAGE)
    assert not problems, "\n".join(map(str, problems))


def test_every_room_is_in_the_contract():
    rooms = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()}
    assert rooms == {room for row in ROWS for room in row}


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


ROOMS = [("low",), ("left", "right"), ("mid",), ("high",)]


def test_the_check_catches_planted_violations(tmp_path):
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "low.py": "def f():\n    from pkg import high  # a lazy upward import\n",
        "left.py": "import pkg.right\n",  # same row: must be independent
        "right.py": "",
        "mid/__init__.py": "",
        "mid/a.py": "from pkg.mid import b\n",
        "mid/b.py": "def g():\n    from pkg.mid.a import g  # a circle, closed lazily\n",
        "mid/c.py": "import importlib\nname = 'pkg.low'\nimportlib.import_module(name)\n",
        "mid/d.py": "import argparse\nfrom pkg import something_in_the_face\n",
        "high.py": "import pkg.right\nfrom pkg.mid import a\n",
    })
    found = [str(v) for v in check(pkg, ROOMS, {"argparse": ("high",)})]
    assert any(v.startswith("low:2:") and "upward import" in v for v in found), found
    assert any(v.startswith("left:1:") and "share a row" in v for v in found), found
    assert any("import circle: mid.a → mid.b → mid.a" in v for v in found), found
    assert any(v.startswith("mid.c:3:") and "computed name" in v for v in found), found
    assert any(v.startswith("mid.d:1:") and "argparse" in v for v in found), found
    assert any(v.startswith("mid.d:2:") and "package face" in v for v in found), found
    assert not any(v.startswith("high:") for v in found), found  # downward imports are fine
    assert len(found) == 6, found


def test_the_check_runs_as_a_script():
    result = subprocess.run([sys.executable, str(Path(__file__).parent / "layers.py"), str(PACKAGE)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "0 violation(s)" in result.stdout, result.stdout + result.stderr


def test_help_imports_no_torch_numpy_pil_or_huggingface_hub():
    """`lorevit --help` and `lorevit train --help` (issue 18 §1), checked in a fresh interpreter."""
    for argv in (["--help"], ["train", "--help"], ["--version"]):
        code = ("import sys\nfrom lorevit.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
                "print('HEAVY', sorted(m for m in ('torch', 'numpy', 'PIL', 'huggingface_hub', 'lightning', 'timm') "
                "if m in sys.modules))" % (argv,))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.strip().endswith("HEAVY []"), (argv, out[-300:])


def test_building_a_config_imports_no_torch():
    code = ("import sys\nfrom lorevit.config import Config\n"
            "Config(backbone='vit_base_patch16_clip_224.openai', knowledge='clip:auto', method='zero-shot')\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
