"""``lorevit bench tasks`` end to end through the CLI: all three tasks on generated data in their official
layouts (roxford5k/, SPair-71k/, DAVIS/ under one --data-root), B-B and LORE side by side, baselines as rows."""
from __future__ import annotations

import json

from lorevit.cli import main

from .correspondence_fixtures import write_spair
from .retrieval_fixtures import write_retrieval_set
from .video_fixtures import moving_squares, write_davis


def test_bench_tasks_quick_through_the_cli(tmp_path, tiny_adapter, capsys):
    data = tmp_path / "data"
    write_retrieval_set(data, name="roxford5k")
    write_spair(data)
    write_davis(data, {"squares": moving_squares(5, 0)})
    out = tmp_path / "bench"
    argv = ["bench", "tasks", "--adapter", str(tiny_adapter), "--data-root", str(data), "--quick",
            "--standins", str(tmp_path / "standins"), "--device", "cpu", "--output", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "tasks.json").read_text())
    tasks = {(r["task"], r["dataset"], r["kind"]) for r in report["results"]}
    assert tasks == {("retrieval", "roxford5k", "real"), ("correspondence", "spair71k-test", "real"),
                     ("video", "davis2017-val", "real")}
    for result in report["results"]:
        assert list(result["rows"])[:2] == ["B-B", "LORE"] and len(result["rows"]) == 3  # + the trivial baseline
        assert set(result["throughput"]) == {"B-B", "LORE"}
    speed = report["feature_throughput"]
    assert set(speed["images_per_s"]) == {"B-B", "LORE"} and speed["ratio"]["name"] == "LORE / B-B"
    assert report["setup"]["adapter_provenance"]["method"] == "lore"
    table = (out / "tasks.md").read_text()
    assert "| B-B |" in table and "| LORE |" in table and "random ranking" in table and "copy first frame" in table
    assert "roxford5k mAP-M" in table and "J&F-Mean" in table and "PCK@0.1" in table
    assert not (tmp_path / "standins").exists()  # real layouts found: no stand-in built
    assert "tasks written to" in capsys.readouterr().out
