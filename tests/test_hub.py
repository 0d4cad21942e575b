"""Hub-style adapters (issue 12 §1): save_pretrained / from_pretrained / push_to_hub, backbone fingerprints,
--weights and --strict. No network: a Hub repo is a pre-populated huggingface_hub cache read offline, and a
push goes to a stand-in for HfApi's two upload calls."""
import hashlib
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import lorevit
from lorevit.adapters.format import AdapterError, backbone_fingerprint, FILENAME, read_adapter, save_adapter
from lorevit.factory import BackboneMismatchWarning, load_adapter
from lorevit.backbone import create_backbone
from lorevit.cli import main
from lorevit.config import Config
from lorevit.adapters.hub import CARD_NAME, CONFIG_NAME, looks_like_repo_id, WEIGHTS_NAME

from .conftest import CLASSES, TINY_KWARGS, TINY_SIZE, TINY_VIT

HUB_FILES = {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME}


def images(n=2, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 3, TINY_SIZE, TINY_SIZE))).float()


def logits(model, x):
    with torch.no_grad():
        return model(x).logits


def tiny_weights(path, perturb=False):
    """The tiny ViT's "random" weights as a real .safetensors file (optionally with one weight changed)."""
    state = {k: v.clone().contiguous() for k, v in create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS)
             .vit.state_dict().items()}
    if perturb:
        state["blocks.0.mlp.fc1.weight"][0, 0] += 0.5
    save_file(state, str(path))
    return path


def one_image(folder):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def hub_dir(tiny_adapter, tmp_path_factory):
    """The session's tiny LORE adapter saved hub-style by model.save_pretrained."""
    model, _ = load_adapter(tiny_adapter)
    return model.save_pretrained(tmp_path_factory.mktemp("hub") / "lore-tiny")


def test_fingerprint_is_sha256_of_sorted_state_without_position_embeddings():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos_embed = nn.Parameter(torch.zeros(1, 2))
            self.b = nn.Linear(1, 1)
            self.a = nn.Parameter(torch.tensor([1.0, 2.0]))

    tiny = Tiny()
    expected = hashlib.sha256()
    for key in ("a", "b.bias", "b.weight"):  # sorted, pos_embed left out
        t = tiny.state_dict()[key]
        expected.update(f"{key}|torch.float32|{tuple(t.shape)}\n".encode() + t.numpy().tobytes())
    assert backbone_fingerprint(tiny) == expected.hexdigest()
    tiny.pos_embed.data += 1  # resampled per image size: not part of the fingerprint
    assert backbone_fingerprint(tiny) == expected.hexdigest()
    tiny.a.data[0] += 1e-6
    assert backbone_fingerprint(tiny) != expected.hexdigest()


def test_save_pretrained_then_from_pretrained_gives_identical_logits(tiny_adapter, hub_dir):
    model, cfg = load_adapter(tiny_adapter)
    assert {p.name for p in hub_dir.iterdir()} == HUB_FILES
    loaded = lorevit.from_pretrained(hub_dir)
    x = images()
    torch.testing.assert_close(logits(loaded, x), logits(model, x), rtol=0, atol=0)
    assert loaded.classnames == model.classnames and loaded.config.method == "lore"
    # trained parameters only: the same tensors as the run's adapter, nothing of the frozen ViT
    saved, meta = read_adapter(hub_dir)
    run_tensors, run_meta = read_adapter(tiny_adapter)
    assert saved.keys() == run_tensors.keys() and not any(k.startswith(("backbone", "vit")) for k in saved)
    assert all(torch.equal(saved[k], run_tensors[k]) for k in saved)
    config = json.loads((hub_dir / CONFIG_NAME).read_text())
    fingerprint = backbone_fingerprint(model.backbone)
    assert run_meta["backbone_sha256"] == meta["backbone_sha256"] == config["backbone"]["sha256"] == fingerprint
    assert len(fingerprint) == 64
    assert config["method"] == "lore" and config["architecture"]["n_local"] == cfg.n_local
    assert config["backbone"]["timm_name"] == TINY_VIT and config["backbone"]["weights"] == "random"
    assert config["knowledge"] == {"encoder": "st:minilm", "dim": 384}
    assert config["classnames"] == model.classnames and config["lorevit_version"] == lorevit.__version__
    assert config["preprocessing"]["img_size"] == TINY_SIZE and len(config["preprocessing"]["mean"]) == 3


def test_run_dir_adapter_file_and_hub_dir_all_load(tiny_adapter, hub_dir):
    x = images(seed=1)
    reference = logits(lorevit.from_pretrained(tiny_adapter), x)
    for source in (tiny_adapter / FILENAME, hub_dir, hub_dir / WEIGHTS_NAME):
        torch.testing.assert_close(logits(lorevit.from_pretrained(source), x), reference, rtol=0, atol=0)
    model, _ = lorevit.load_adapter(hub_dir)
    torch.testing.assert_close(logits(model, x), reference, rtol=0, atol=0)


def hub_cache(tmp_path, monkeypatch, repo_id, folder):
    """A huggingface_hub cache holding ``folder`` as ``repo_id``'s main revision, read offline."""
    from huggingface_hub import constants

    repo = tmp_path / "hf-cache" / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_a_hub_repo_id_loads_through_huggingface_hub(tiny_adapter, hub_dir, tmp_path, monkeypatch, capsys):
    hub_cache(tmp_path, monkeypatch, "someone/lore-tiny", hub_dir)
    monkeypatch.chdir(tmp_path)  # "someone/" is no local folder here
    assert looks_like_repo_id("someone/lore-tiny") and not looks_like_repo_id(str(tmp_path))
    x = images(seed=2)
    reference = logits(lorevit.from_pretrained(tiny_adapter), x)
    torch.testing.assert_close(logits(lorevit.from_pretrained("someone/lore-tiny"), x), reference, rtol=0, atol=0)
    model, _ = load_adapter("someone/lore-tiny")  # what every CLI command calls
    torch.testing.assert_close(logits(model, x), reference, rtol=0, atol=0)
    assert main(["predict", "--adapter", "someone/lore-tiny", str(one_image(tmp_path / "img")), "--top-k", "1"]) == 0
    assert any(c in capsys.readouterr().out for c in CLASSES)
    with pytest.raises(AdapterError, match="no adapter at someone/missing"):
        load_adapter("someone/missing")


def test_fingerprint_mismatch_warns_and_strict_refuses(tiny_adapter, tmp_path):
    same, other = tiny_weights(tmp_path / "same.safetensors"), tiny_weights(tmp_path / "other.safetensors", True)
    trained = read_adapter(tiny_adapter)[1]["backbone_sha256"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same weights from a file: no warning
        model, _ = load_adapter(tiny_adapter, weights=str(same))
    with pytest.warns(BackboneMismatchWarning, match=trained) as caught:
        load_adapter(tiny_adapter, weights=str(other))
    message = str(caught[0].message)
    assert "other.safetensors" in message and "--strict" in message
    with pytest.raises(AdapterError, match="--strict"):
        lorevit.from_pretrained(tiny_adapter, weights=str(other), strict=True)


def test_old_adapters_without_fingerprint_load_unchecked(tiny_adapter, tmp_path):
    tensors, meta = read_adapter(tiny_adapter)
    meta = {k: v for k, v in meta.items() if k not in ("backbone_sha256", "preprocessing", "lorevit_version")}
    (tmp_path / "old").mkdir()
    save_file(tensors, str(tmp_path / "old" / FILENAME), metadata=meta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, _ = load_adapter(tmp_path / "old", weights=str(tiny_weights(tmp_path / "w.safetensors", True)))
    assert model.backbone_sha256 is None
    # saving it hub-style records the fingerprint of the backbone it sits on
    assert main(["hub", "save", str(tmp_path / "old"), "--output", str(tmp_path / "hub")]) == 0
    assert read_adapter(tmp_path / "hub")[1]["backbone_sha256"] == backbone_fingerprint(load_adapter(tiny_adapter)[0].backbone)


def test_cli_weights_and_strict(tiny_adapter, tmp_path, capsys):
    image = str(one_image(tmp_path / "img"))
    same, other = tiny_weights(tmp_path / "same.safetensors"), tiny_weights(tmp_path / "other.safetensors", True)
    assert main(["predict", "--adapter", str(tiny_adapter), "--weights", str(same), image]) == 0
    assert "warning" not in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["predict", "--adapter", str(tiny_adapter), "--weights", str(other), image]) == 0
    err = capsys.readouterr().err
    assert err.startswith("lorevit: warning: ") and "sha256" in err and len(err.strip().splitlines()) == 1
    for command in (["predict", "--adapter", str(tiny_adapter), image], ["visualize", "--adapter", str(tiny_adapter), image,
                                                                        "--output", str(tmp_path / "a.png")]):
        assert main([*command, "--weights", str(other), "--strict"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lorevit: error: ") and "--strict" in err and len(err.strip().splitlines()) == 1
    assert main(["predict", "--adapter", str(tiny_adapter), "--weights", str(tmp_path / "nowhere.pth"), image]) == 2
    assert "--weights" in capsys.readouterr().err
    # eval on a copy (it writes eval.json beside the adapter): --weights puts it on the local copy
    run = tmp_path / "run"
    shutil.copytree(tiny_adapter, run, ignore=shutil.ignore_patterns("checkpoints", "logs", "eval*"))
    assert main(["eval", "--adapter", str(run), "--weights", str(same), "--strict"]) == 0
    assert json.loads((run / "eval.json").read_text())["test_top1"] >= 0
    assert main(["eval", "--adapter", str(run), "--weights", str(other), "--strict"]) == 2


def test_task_extractor_takes_weights_and_strict(tiny_adapter, hub_dir, tmp_path):
    from lorevit.tasks.features import load_extractor

    other = tiny_weights(tmp_path / "other.safetensors", True)
    with pytest.raises(AdapterError, match="--strict"):
        load_extractor(tiny_adapter, weights=str(other), strict=True)
    extractor = load_extractor(hub_dir, weights=str(tiny_weights(tmp_path / "same.safetensors")), strict=True)
    assert extractor.label == "LORE" and extractor(images(1)).cls.shape == (1, TINY_KWARGS["embed_dim"])
    # the task commands' own options reach it
    from lorevit.cli import build_parser
    from lorevit.cli.options import extractor_from_args

    parser = build_parser()
    for argv in (["retrieval", "--dataset", "roxford5k", "--data-root", "d", "--output", "o"],
                 ["correspondence", "--data-root", "d", "--output", "o"], ["video-seg", "run", "--davis-root", "d", "--output", "o"]):
        args = parser.parse_args([*argv, "--adapter", str(tiny_adapter), "--weights", str(other), "--strict"])
        with pytest.raises(AdapterError, match="--strict"):
            extractor_from_args(args)


def test_nothing_saved_names_a_machine_path(tmp_path):
    """Output, data and weights paths of the training machine never reach a hub folder."""
    (tmp_path / "secret-dir").mkdir()
    weights = tiny_weights(tmp_path / "secret-dir" / "vit-copy.safetensors")
    cfg = Config(method="vpt-deep", backbone=TINY_VIT, weights=str(weights), backbone_kwargs=TINY_KWARGS,
                 img_size=TINY_SIZE, data_root=str(tmp_path / "secret-data"), output=str(tmp_path / "secret-run"),
                 knowledge=f"st:{tmp_path / 'secret-encoder'}")
    backbone = create_backbone(TINY_VIT, str(weights), TINY_SIZE, **TINY_KWARGS)
    save_adapter(lorevit.create_model("vpt-deep", CLASSES, backbone=backbone, knowledge=None), cfg, cfg.output)
    assert main(["hub", "save", cfg.output, "--output", str(tmp_path / "hub")]) == 0
    saved = tmp_path / "hub"
    texts = [(saved / CONFIG_NAME).read_text(), (saved / CARD_NAME).read_text()]
    with safe_open(str(saved / WEIGHTS_NAME), framework="pt") as f:
        texts.append(json.dumps(f.metadata()))
    texts.append((saved / WEIGHTS_NAME).read_bytes().decode("latin-1"))
    for text in texts:
        assert str(tmp_path) not in text and "secret-dir" not in text and "/tmp" not in text
    config = json.loads(texts[0])
    assert config["backbone"]["weights"] == "vit-copy.safetensors" and config["train_config"]["data_root"] is None
    assert config["train_config"]["output"] == "runs/secret-run" and config["knowledge"]["encoder"] == "st:secret-encoder"
    # on "another machine" the weights file is missing: the error names --weights; a local copy loads it
    with pytest.raises(AdapterError, match="vit-copy.safetensors.*--weights"):
        lorevit.from_pretrained(saved)
    copy = shutil.copy(weights, tmp_path / "my-copy.safetensors")
    model = lorevit.from_pretrained(saved, weights=str(copy), strict=True)
    assert model.classnames == CLASSES


def test_model_card(tiny_adapter, hub_dir):
    card = (hub_dir / CARD_NAME).read_text()
    metrics = json.loads((tiny_adapter / "metrics.json").read_text())
    assert card.startswith("---\n") and "library_name: lorevit" in card and "- lore\n" in card
    assert f"top-1 **{metrics['test_top1']:.2f} %**" in card and f"{metrics['trainable_params']:,}" in card
    for text in ("`lore`", f"`{TINY_VIT}`", "weights `random`", "imagefolder, 4 shots per class, seed 0",
                 f"{TINY_SIZE} px", ", ".join(sorted(CLASSES)), backbone_fingerprint(load_adapter(tiny_adapter)[0].backbone),
                 "lorevit train --method lore --backbone vit_tiny_patch16_224 --weights random --knowledge st:minilm",
                 "--dataset imagefolder --protocol few-shot",
                 "--shots 4", "--epochs 1", "lorevit train --config config.yaml"):
        assert text in card, text
    # the command rebuilds the training config (all but where and how the run ran)
    import re
    import shlex

    from lorevit.cli import build_parser, config_from_args
    from lorevit.config import RUN_ONLY_KEYS as _RUN_ONLY

    command = re.search(r"^lorevit train --method .*$", card, re.M).group(0)
    rebuilt = config_from_args(build_parser().parse_args(shlex.split(command)[1:])).to_dict()
    trained = json.loads((hub_dir / CONFIG_NAME).read_text())["train_config"]
    assert {k: v for k, v in rebuilt.items() if k not in _RUN_ONLY} == {k: v for k, v in trained.items()
                                                                         if k not in _RUN_ONLY}


def test_push_to_hub_uploads_the_three_files(tiny_adapter, monkeypatch, capsys):
    """The mixin's push path with HfApi's two network calls replaced (no network): one commit of the three files."""
    from types import SimpleNamespace

    from huggingface_hub import HfApi

    calls = {}

    def create_repo(self, repo_id, private=None, exist_ok=False, **kwargs):
        calls["create"] = {"repo_id": repo_id, "private": private, "exist_ok": exist_ok}
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, commit_message=None, **kwargs):
        files = {p.name: p.read_bytes() for p in folder_path.iterdir()}
        calls["upload"] = {"repo_id": repo_id, "files": files, "message": commit_message}
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert main(["hub", "push", str(tiny_adapter), "--repo", "someone/lore-tiny", "--private"]) == 0
    assert "someone/lore-tiny" in capsys.readouterr().out
    assert calls["create"] == {"repo_id": "someone/lore-tiny", "private": True, "exist_ok": True}
    upload = calls["upload"]
    assert upload["repo_id"] == "someone/lore-tiny" and set(upload["files"]) == HUB_FILES
    assert 'from_pretrained("someone/lore-tiny")' in upload["files"][CARD_NAME].decode()
    assert json.loads(upload["files"][CONFIG_NAME])["classnames"] == sorted(CLASSES)
    model, _ = load_adapter(tiny_adapter)
    assert model.push_to_hub("someone/lore-tiny", commit_message="again").endswith("/commit/abc")
    assert calls["upload"]["message"] == "again"
    assert main(["hub", "push", str(tiny_adapter), "--repo", "not a repo"]) == 2


def test_bench_tasks_takes_hub_ids_weights_and_strict(tiny_adapter, hub_dir, tmp_path, monkeypatch, capsys):
    """issue 25 §4: `lorevit bench tasks` accepts a Hub repo id and the other task commands' --weights/--strict:
    a local copy of other weights with --strict is refused for the Hub adapter (so the id was resolved and the
    options reached the extractor), before any task runs."""
    hub_cache(tmp_path, monkeypatch, "someone/lore-tiny", hub_dir)
    monkeypatch.chdir(tmp_path)
    other = tiny_weights(tmp_path / "other.safetensors", True)
    out = tmp_path / "bench"
    argv = ["bench", "tasks", "--adapter", "someone/lore-tiny", "--device", "cpu", "--output", str(out)]
    assert main([*argv, "--weights", str(other), "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lorevit: error:") and "--strict" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "tasks", "--adapter", "someone/missing", "--output", str(out)]) == 2
    assert "Hugging Face Hub repo someone/missing" in capsys.readouterr().err
    assert not (out / "tasks.json").exists()
    from lorevit.cli import build_parser

    args = build_parser().parse_args([*argv, "--weights", str(other)])
    assert (args.backbone_weights, args.strict) == (str(other), False)
