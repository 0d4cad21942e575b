"""The code examples of the README and the docs run (issue 22 §1), so that none of them rots.

A fenced block right after the line ``<!-- runnable -->`` (an HTML comment: MkDocs and GitHub show nothing) is run:
a ``python`` block with ``exec`` in a fresh namespace, a ``bash`` block with ``bash -eu`` (``lorevit`` is this
checkout's ``python -m lorevit``). Each block runs in its own folder, the *example world*: ``runs/demo`` and
``runs/default`` (a LORE adapter on a tiny random ViT, trained here for one epoch on Fashion-MNIST, so the class
names of the docs — Shirt, Ankle boot — are its classes) and the image files the examples name (``shirt.png``,
``shoe.jpg``, ``photo.jpg``, ``a.png``, ``b.png``, ``album/``, ``shots/``: Fashion-MNIST test images).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
LANGUAGES = ("python", "bash")
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IMAGES = {"shirt.png": "Shirt", "shoe.jpg": "Ankle boot", "shoe.png": "Sneaker", "photo.jpg": "Bag",
          "a.png": "Trouser", "b.png": "Trouser", "album/1.png": "Dress", "album/2.png": "Coat",
          "shots/1.png": "Pullover", "shots/2.png": "Sandal"}


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def runnable_examples(path: Path) -> list[Example]:
    """The blocks of a Markdown file marked runnable; a marker not followed by a python/bash fence is a ValueError."""
    lines = path.read_text().splitlines()
    examples = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence = lines[i + 1].strip() if i + 1 < len(lines) else ""
        language = fence[3:].strip()
        if not fence.startswith("```") or language not in LANGUAGES:
            raise ValueError(f"{path}:{i + 1}: {MARKER} must be followed by a ```python or ```bash block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{path}:{i + 2}: the runnable block is never closed")
        examples.append(Example(path, i + 2, language, "\n".join(lines[i + 2:end]) + "\n"))
    return examples


def all_examples() -> list[Example]:
    return [e for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] for e in runnable_examples(page)]


EXAMPLES = all_examples()


def test_examples_are_marked_in_the_readme_and_the_docs():
    pages = {e.path.name for e in EXAMPLES}
    assert "README.md" in pages and len(pages) >= 4, pages
    assert {e.language for e in EXAMPLES} == set(LANGUAGES)


def test_a_marker_without_a_block_is_refused(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"text\n{MARKER}\n```yaml\nkey: 1\n```\n")
    with pytest.raises(ValueError, match="must be followed by"):
        runnable_examples(page)
    page.write_text(f"{MARKER}\n```python\nprint(1)\n```\n\n{MARKER}\n```bash\necho hi\n```\n")
    assert [(e.line, e.language, e.code) for e in runnable_examples(page)] == [(2, "python", "print(1)\n"),
                                                                                (7, "bash", "echo hi\n")]


@pytest.fixture(scope="session")
def world_adapter(tmp_path_factory):
    """A LORE adapter on the tiny random ViT, trained one epoch on 1 Fashion-MNIST image per class."""
    if not FASHION_MNIST.is_dir():
        pytest.skip(f"needs Debian's dataset-fashion-mnist in {FASHION_MNIST} (make setup)")
    from lorevit.training.run import train

    from .conftest import tiny_config

    run = tmp_path_factory.mktemp("docs-world") / "run"
    train(tiny_config(run, FASHION_MNIST, dataset="fashion-mnist", shots=1, epochs=1, batch_size=10,
                      test_subset=20, val_shots=0))
    return run


@pytest.fixture
def world(world_adapter, tmp_path):
    from lorevit.data import build_dataset

    for name in ("demo", "default"):
        shutil.copytree(world_adapter, tmp_path / "runs" / name, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    data = build_dataset("fashion-mnist", "test", root=FASHION_MNIST)
    first = {}
    for i, target in enumerate(data.targets[:200]):
        first.setdefault(data.classnames[int(target)], i)
    for name, label in IMAGES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        data.load_image(first[label]).save(tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example_runs(example, world, monkeypatch):
    monkeypatch.chdir(world)
    if example.language == "python":
        namespace = {"__name__": "__example__"}
        exec(compile(example.code, str(example), "exec"), namespace)  # noqa: S102 - the docs' own examples
        return
    prelude = f'lorevit() {{ "{sys.executable}" -m lorevit "$@"; }}\n'
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(["bash", "-eu", "-c", prelude + example.code], cwd=world, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{example} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert not re.search(r"^lorevit: error", done.stderr, re.M), done.stderr
