"""The documentation site (issue 22 §1): ``mkdocs build --strict`` passes and renders every public name."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_every_docs_page_is_in_the_nav():
    text = (ROOT / "mkdocs.yml").read_text()
    config = yaml.safe_load(text)

    def pages(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from pages(value)
        else:
            for item in entry:
                yield from pages(item)

    listed = set(pages(config["nav"]))
    on_disk = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert on_disk - listed == set(), "docs pages missing from mkdocs.yml's nav"
    assert listed - on_disk == set()


def test_mkdocs_strict_build_renders_the_api_and_cli(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    api = (site / "api" / "index.html").read_text()
    for module_name in ("lorevit", "lorevit.methods", "lorevit.tasks"):
        module = importlib.import_module(module_name)
        missing = [n for n in module.__all__ if f'id="{module_name}.{n}"' not in api]
        assert missing == [], f"{module_name}: public names not in the API reference"
    assert 'id="lorevit.load_adapter"' in api and "Load an adapter" in api  # a docstring, rendered
    cli = (site / "cli" / "index.html").read_text()
    from lorevit.cli.main import build_parser
    import argparse

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in commands:
        assert f"lorevit {name}" in cli, f"CLI reference lacks lorevit {name}"
    assert "--tsne" in cli  # the options come from the parsers themselves
