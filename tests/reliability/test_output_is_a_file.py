"""issue 25 §4: ``--output`` naming an existing file is one error line before any work, for every task command;
the file is left as it was. Through the real CLI (a subprocess), as a user meets it."""
import subprocess
import sys

import pytest

COMMANDS = {
    "correspondence": ["correspondence", "--data-root", "{data}", "--backbone", "vit_tiny_patch16_224",
                       "--weights", "random"],
    "video-seg run": ["video-seg", "run", "--davis-root", "{data}", "--weights", "random"],
    "bench tasks": ["bench", "tasks", "--adapter", "{data}"],
    "standins": ["standins", "--tasks", "retrieval"],
    "retrieval": ["retrieval", "--dataset", "x", "--data-root", "{data}"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_output_naming_a_file_is_refused_before_any_work(tmp_path, command):
    target = tmp_path / "results.txt"
    target.write_text("someone's file\n")
    data = tmp_path / "data"  # missing on purpose: the output is checked first, before the data or the model
    argv = [a.format(data=data) for a in COMMANDS[command]] + ["--output", str(target)]
    result = subprocess.run([sys.executable, "-m", "lorevit", *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lorevit: error: --output") and "is a file" in lines[0], lines
    assert str(target) in lines[0] and "Traceback" not in result.stderr
    assert target.read_text() == "someone's file\n" and sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


def test_output_below_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    result = subprocess.run([sys.executable, "-m", "lorevit", "standins", "--output", str(tmp_path / "f" / "sub")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "is a file, so no folder can be made there" in result.stderr, result.stderr
