"""``--device auto|cpu|cuda[:i]`` → a torch device, or one clear error (shared by every command)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from lorevit.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> "torch.device":
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"--device {name!r} is not a torch device: use auto, cpu, cuda or cuda:1, ...") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device on this machine; use --device cpu")
    return device
