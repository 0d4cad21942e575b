"""Names read from data files never leave their folder (issue 25 §4): the pure checks of lorevit.utils.paths, then
each reader (DAVIS lists, SPair layout and pair JSON, revisitop gnd pickle, the image-classification split
files) on a real on-disk tree holding ``../escape``-style names, and the CLIs' exit 2 with nothing written
outside --output."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lorevit.cli import main
from lorevit.utils.paths import safe_component, safe_relative
from lorevit.tasks.errors import TaskError

from .conftest import TINY_KWARGS, TINY_VIT
from .correspondence_fixtures import edit_pair, write_spair
from .retrieval_fixtures import write_gnd, write_retrieval_set
from .video_fixtures import H, moving_squares, write_davis

TINY = ["--backbone", TINY_VIT, "--weights", "random", "--backbone-kwargs", json.dumps(TINY_KWARGS),
        "--base-size", "32", "--device", "cpu"]

BAD_NAMES = ["../x", "..", ".", "", "/abs", "a/b", "a\\b", "C:x", "c:", " x", "x ", "a\0b", "../../escape", None, 3]


def snapshot(folder: Path) -> set[str]:
    """Every path under ``folder`` (relative): what a run must leave as it was."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lorevit: error:") and "Traceback" not in err[0], err
    return err[0]


# -- the helpers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["blackswan", "dog-jump", "2008_000585.jpg", "000001-a-b:cat", "x y", "..x", "a."])
def test_safe_component_accepts_plain_names(name):
    assert safe_component(name, "sequence name", "val.txt line 1") == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_safe_component_refuses_everything_else(name):
    with pytest.raises(ValueError) as err:
        safe_component(name, "sequence name", "DAVIS/ImageSets/2017/val.txt line 3", fix="fix the list")
    message = str(err.value)
    assert message.startswith(f"DAVIS/ImageSets/2017/val.txt line 3: sequence name {name!r} is not a plain")
    assert message.endswith("fix the list") and "\n" not in message


def test_safe_component_raises_the_given_error_class():
    with pytest.raises(TaskError):
        safe_component("../x", "category", "pair.json", TaskError)


@pytest.mark.parametrize("path", ["a/b.jpg", "jpg/image_00001.jpg", "./a.jpg", "a\\b.jpg", "a//b.jpg", "x..y/z"])
def test_safe_relative_accepts_paths_inside(path):
    assert safe_relative(path, "image path", "split.json") == path


@pytest.mark.parametrize("path", ["../x.jpg", "a/../../b.jpg", "a\\..\\b", "..", "/etc/passwd", "\\\\server\\x",
                                  "C:/x.jpg", "C:x.jpg", "", ".", "./", " a.jpg", "a\0b", None])
def test_safe_relative_refuses_paths_that_leave_the_root(path):
    with pytest.raises(ValueError, match="is not a relative path inside the dataset folder"):
        safe_relative(path, "image path", "split.json")


# -- DAVIS ------------------------------------------------------------------------------------------------

@pytest.fixture
def escaping_davis(tmp_path):
    """A real DAVIS tree whose val.txt lists ``../escape`` (line 2), with frames and masks at that path too, so
    that only the name check stands between the reader and ``JPEGImages/480p/../escape``."""
    root = tmp_path / "data"
    davis = write_davis(root, {"squares-a": moving_squares(4, 0), "escape": moving_squares(4, 1)})
    for part in ("JPEGImages", "Annotations"):  # move escape/ to where '../escape' points from 480p/
        os.rename(davis / part / "480p" / "escape", davis / part / "escape")
    (davis / "ImageSets" / "2017" / "val.txt").write_text("squares-a\n../escape\n")
    return davis


def test_davis_reader_refuses_an_escaping_sequence_name(escaping_davis):
    from lorevit.tasks.video.davis import Davis

    with pytest.raises(TaskError) as err:
        Davis(escaping_davis, need_frames=True).sequences("val")
    message = str(err.value)
    assert "val.txt line 2: sequence name '../escape' is not a plain" in message and "fix the list" in message


@pytest.mark.parametrize("name", ["/abs", "a/b", "..", "C:x"])
def test_davis_reader_refuses_bad_names(tmp_path, name):
    from lorevit.tasks.video.davis import Davis

    davis = write_davis(tmp_path, {"squares-a": moving_squares(3, 0)})
    (davis / "ImageSets" / "2017" / "val.txt").write_text(f"squares-a\n\n{name}\n")
    with pytest.raises(TaskError, match=f"val.txt line 3: sequence name {name!r}"):
        Davis(davis).names("val")


def test_davis_sequences_filter_and_set_are_checked(tmp_path):
    from lorevit.tasks.video.davis import Davis

    davis = Davis(write_davis(tmp_path, {"squares-a": moving_squares(3, 0)}))
    with pytest.raises(TaskError, match="--sequences: sequence name '../squares-a' is not a plain"):
        davis.sequences("val", ["../squares-a"])
    (davis.root / "x.txt").write_text("squares-a\n")  # ImageSets/2017/../../x.txt exists
    with pytest.raises(TaskError, match="--set: set '../../x' is not a plain"):
        davis.names("../../x")


@pytest.mark.parametrize("command", ["run", "score"])
def test_video_cli_exit_2_and_nothing_written_outside_output(escaping_davis, tmp_path, capsys, command):
    out = tmp_path / "work" / "out"
    out.mkdir(parents=True)
    before = snapshot(tmp_path)
    if command == "run":
        args = ["video-seg", "run", "--davis-root", str(escaping_davis), "--output", str(out), *TINY,
                "--short-side", str(H)]
    else:  # results for both, the escaping one at out/../escape/: the old scorer read it and exited 0
        shutil.copytree(escaping_davis / "Annotations" / "480p" / "squares-a", out / "squares-a")
        shutil.copytree(escaping_davis / "Annotations" / "escape", out.parent / "escape")
        before = snapshot(tmp_path)
        args = ["video-seg", "score", "--davis-root", str(escaping_davis), "--results", str(out)]
    capsys.readouterr()
    assert main(args) == 2
    line = one_error_line(capsys)
    assert "sequence name '../escape'" in line and "line 2" in line
    assert snapshot(tmp_path) == before  # neither work/escape nor anything in out/


# -- SPair-71k --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"category": "../cat"}, "category '../cat' is not a plain"),
    ({"category": "/tmp"}, "category '/tmp' is not a plain"),
    ({"src_imname": "../dog/d1.jpg"}, "src_imname '../dog/d1.jpg' is not a plain"),
    ({"trg_imname": "/etc/passwd"}, "trg_imname '/etc/passwd' is not a plain"),
])
def test_spair_reader_refuses_escaping_category_and_image_names(tmp_path, change, message):
    from lorevit.tasks.correspondence.spair import read_pairs

    spair = write_spair(tmp_path)
    name = edit_pair(spair, 0, **change)
    with pytest.raises(TaskError, match=message) as err:
        read_pairs(spair)
    assert str(err.value).startswith(f"pair {name}: ")
    data = read_pairs(spair, skip_bad=True)  # a bad pair is skippable like any other bad annotation
    assert len(data.pairs) == 3 and data.skipped[0]["pair"] == name


def test_spair_reader_refuses_an_escaping_pair_name_in_the_layout(tmp_path):
    from lorevit.tasks.correspondence.spair import read_pairs

    spair = write_spair(tmp_path)
    layout = spair / "Layout" / "large" / "test.txt"
    layout.write_text(layout.read_text() + "../../../outside:cat\n")
    with pytest.raises(TaskError, match=r"test.txt line 5: pair name '../../../outside:cat' is not a plain"):
        read_pairs(spair)


def test_spair_cli_exit_2_and_nothing_written_outside_output(tmp_path, capsys):
    spair = write_spair(tmp_path / "data")
    edit_pair(spair, 2, category="../cat")  # a dog pair pointing at JPEGImages/../cat/, which does not exist
    (spair / "cat").mkdir()  # ... now it does, with the images the pair names
    for stem in ("d1", "d2"):
        shutil.copy(spair / "JPEGImages" / "dog" / f"{stem}.jpg", spair / "cat" / f"{stem}.jpg")
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["correspondence", "--data-root", str(spair), "--output", str(out), "--image-size", "48", *TINY]) == 2
    assert "category '../cat' is not a plain" in one_error_line(capsys)
    assert snapshot(tmp_path) - before <= {"out"}  # at most an empty out/


# -- Revisited Oxford/Paris ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key, index, bad", [("imlist", 3, "../outside"), ("qimlist", 0, "/tmp/x"),
                                             ("imlist", 0, "sub/db"), ("qimlist", 1, "..")])
def test_retrieval_reader_refuses_escaping_image_names(tmp_path, key, index, bad):
    from lorevit.tasks.retrieval.dataset import read_dataset

    data = write_retrieval_set(tmp_path / "data")
    data[key][index] = bad
    write_gnd(tmp_path / "data" / "toyset", "toyset", data)
    with pytest.raises(TaskError, match=rf"gnd_toyset.pkl: {key}\[{index}\]: image name {bad!r} is not a plain"):
        read_dataset(tmp_path / "data", "toyset", check_images=False)


def test_retrieval_cli_exit_2_and_nothing_read_outside_the_dataset(tmp_path, capsys):
    data = write_retrieval_set(tmp_path / "data")
    folder = tmp_path / "data" / "toyset"
    # the escaping name points at a real image outside jpg/: without the check it would be read and ranked
    os.replace(folder / "jpg" / f"{data['imlist'][0]}.jpg", tmp_path / "data" / "outside.jpg")
    data["imlist"][0] = "../../outside"
    write_gnd(folder, "toyset", data)
    out = tmp_path / "out"
    out.mkdir()
    (out / "retrieval.json").write_text("previous results")
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["retrieval", "--dataset", "toyset", "--data-root", str(tmp_path / "data"), "--output", str(out),
                 *TINY]) == 2
    assert "imlist[0]: image name '../../outside' is not a plain" in one_error_line(capsys)
    assert snapshot(tmp_path) == before and (out / "retrieval.json").read_text() == "previous results"


# -- image-classification split files (lorevit/data/readers.py) ----------------------------------------------

def _image(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)


def test_split_json_refuses_paths_outside_its_image_folder(tmp_path):
    from lorevit.data.readers import ReadError, SplitJson

    base = tmp_path / "flowers"
    _image(base / "jpg" / "a.jpg")
    _image(tmp_path / "secret.jpg")
    reader = SplitJson("split.json", "jpg")
    (base / "split.json").write_text(json.dumps({"train": [["a.jpg", 0, "rose"]], "test": [["a.jpg", 0, "rose"]]}))
    assert reader(tmp_path, base, "train").items == [str(base / "jpg" / "a.jpg")]
    for bad in ("../../secret.jpg", str(tmp_path / "secret.jpg")):
        (base / "split.json").write_text(json.dumps({"train": [["a.jpg", 0, "rose"], [bad, 0, "rose"]], "test": []}))
        with pytest.raises(ReadError, match=r"split.json: train\[1\]: image path .* is not a relative path inside"):
            reader(tmp_path, base, "train")


def test_list_file_refuses_paths_outside_its_folder(tmp_path):
    from lorevit.data.readers import FixedClasses, ListFile, ReadError

    base = tmp_path / "set"
    _image(base / "images" / "a.jpg")
    reader = ListFile({"train": ("train.txt",)}, FixedClasses(("a", "b")), image="images/{0}")
    (base / "train.txt").write_text("a.jpg a\n")
    assert reader(tmp_path, base, "train").items == [str(base / "images" / "a.jpg")]
    (base / "train.txt").write_text("a.jpg a\n../../../etc/passwd b\n")
    with pytest.raises(ReadError, match=r"train.txt:2: image path 'images/../../../etc/passwd' is not a relative"):
        reader(tmp_path, base, "train")
