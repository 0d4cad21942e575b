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
reduced to their last component, weights files to their base name
(:func:`lorevit.adapters.format.portable_config`). Turning a :class:`HubAdapter` back into a classifier is
:func:`lorevit.factory.from_pretrained` (this module sits below the model: it knows tensors and metadata only).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import ModelCard, ModelCardData, ModelHubMixin

from lorevit.adapters.card import PAPER_URL, hub_config, model_card_text
from lorevit.adapters.format import adapter_contents, portable_metadata, read_adapter
from lorevit.adapters.paths import FILENAME, HUB_FILENAME, AdapterError, adapter_file, looks_like_repo_id, \
    missing_adapter
from lorevit.errors import UserError
from lorevit.utils.io import atomic_write, write_json, write_text

if TYPE_CHECKING:
    import torch

    from lorevit.config import Config

CONFIG_NAME = "config.json"
WEIGHTS_NAME = HUB_FILENAME
CARD_NAME = "README.md"
TAGS = ["lorevit", "lore", "prompt-learning", "vision-transformer", "image-classification"]


class HubError(UserError, ValueError):
    """A hub folder, repo id or push that cannot be used; the message says why and what to do."""


# ----------------------------------------------------------------------------- repo ids


def locate_adapter(path: str | Path, **hub_kwargs) -> Path:
    """The adapter file of a run directory, a hub-style folder, a ``.safetensors`` file, or a Hub repo id
    (``org/name``, downloaded by :func:`download`; ``hub_kwargs``: its keyword arguments)."""
    file = adapter_file(path)
    if file is not None:
        return file
    if not Path(path).exists() and looks_like_repo_id(str(path)):
        return download(str(path), **hub_kwargs)
    raise missing_adapter(path)


def download(repo_id: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
             force_download: bool = False, local_files_only: bool = False, token: str | bool | None = None) -> Path:
    """The ``model.safetensors`` of a Hub repo, fetched by huggingface_hub (or found in its cache)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir,
                                    force_download=force_download, local_files_only=local_files_only, token=token))
    except Exception as err:  # offline, unknown repo, no such file, no network: one message for all
        reason = (str(err).splitlines() or [""])[0]
        raise AdapterError(f"no adapter at {repo_id}: it is not a local folder, and the Hugging Face Hub repo "
                           f"{repo_id} gave no {WEIGHTS_NAME} ({type(err).__name__}: {reason}); pass a run "
                           f"directory ({FILENAME}), a folder from `lorevit hub save`, or a reachable repo id") from None


# ----------------------------------------------------------------------------- the mixin


class HubAdapter(ModelHubMixin, library_name="lorevit", tags=TAGS, paper_url=PAPER_URL,
                 pipeline_tag="image-classification"):
    """An adapter's tensors and metadata as huggingface_hub sees a model: ``save_pretrained``,
    ``from_pretrained`` and ``push_to_hub`` come from ``ModelHubMixin``; this class says what the three files hold.
    The metadata is made portable (no machine paths) on construction; :func:`lorevit.factory.hub_model`
    rebuilds the classifier."""

    def __init__(self, tensors: dict[str, "torch.Tensor"], metadata: dict[str, str]):
        self.tensors = tensors
        self.metadata = portable_metadata(metadata)
        self.repo_id: str | None = None
        self._hub_mixin_config = hub_config(self.metadata)  # what the mixin knows as this model's config

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_file

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
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "HubAdapter":
        """``ModelHubMixin.from_pretrained``, with its ``config.json`` checked first: the mixin reads the file
        with ``json.load`` and iterates it as a mapping, so a damaged one would end in a traceback. lorevit
        itself needs nothing from it (the adapter file holds everything)."""
        folder = Path(str(pretrained_model_name_or_path))
        if folder.is_dir():
            check_hub_config(folder / CONFIG_NAME)
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except (ValueError, AttributeError) as err:  # a downloaded config.json that is not a JSON object
            if isinstance(err, UserError):
                raise
            raise HubError(f"{pretrained_model_name_or_path}: its {CONFIG_NAME} cannot be read "
                           f"({type(err).__name__}: {err}); the repo's files are damaged") from None

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir, force_download: bool,
                         local_files_only: bool, token, **ignored) -> "HubAdapter":
        file = locate_adapter(model_id, revision=revision, cache_dir=cache_dir, force_download=force_download,
                              local_files_only=local_files_only, token=token)
        tensors, metadata = read_adapter(file)
        return cls(tensors, metadata)


def check_hub_config(path: Path) -> None:
    """A hub folder's ``config.json`` (when present) must be a JSON object; else a HubError naming it."""
    if not path.is_file():
        return
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise HubError(f"{path} is not valid JSON ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                       "it only describes the adapter: delete it or write it again with `lorevit hub save`") from None
    if not isinstance(config, dict):
        raise HubError(f"{path} holds a JSON {type(config).__name__}, not an object; it only describes the adapter: "
                       "delete it or write it again with `lorevit hub save`")


# ----------------------------------------------------------------------------- API


def _contents(model: "torch.nn.Module", config: "Config | None", metrics: dict | None):
    cfg = config if config is not None else getattr(model, "config", None)
    if cfg is None:
        raise HubError("save_pretrained needs the model's training Config: pass config=cfg (models loaded with "
                       "lorevit.from_pretrained or load_adapter carry theirs)")
    tensors, metadata = adapter_contents(model, cfg)
    if getattr(model, "backbone_sha256", None):  # the weights it was trained on, not the ones it sits on now
        metadata["backbone_sha256"] = model.backbone_sha256
    metrics = metrics if metrics is not None else getattr(model, "metrics", None)
    return tensors, portable_metadata(metadata, metrics)


def save_pretrained(model: "torch.nn.Module", save_directory: str | os.PathLike, config: "Config | None" = None,
                    metrics: dict | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` + ``README.md`` for ``model`` into ``save_directory``."""
    save_directory = Path(save_directory)
    if save_directory.exists() and not save_directory.is_dir():
        raise HubError(f"{save_directory} is a file; save_pretrained writes a folder")
    HubAdapter(*_contents(model, config, metrics)).save_pretrained(save_directory)
    return save_directory


def push_to_hub(model: "torch.nn.Module", repo_id: str, config: "Config | None" = None, metrics: dict | None = None,
                **kwargs) -> str:
    """Upload the three files of :func:`save_pretrained` to ``repo_id`` in one commit (huggingface_hub's mixin;
    ``kwargs``: ``private``, ``token``, ``commit_message``, ``branch``, ``create_pr``). Returns the commit URL."""
    return HubAdapter(*_contents(model, config, metrics)).push_to_hub(repo_id, **kwargs)
