"""Fixtures of the task tests: a tiny random ViT as B-B and a tiny trained adapter on it."""
from __future__ import annotations

import pytest

from ..conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT, tiny_config, write_color_folder


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory):
    """A LORE adapter trained for one epoch on generated colour images (tiny random ViT): its prompts are real."""
    from lorevit.run import train

    root = tmp_path_factory.mktemp("adapter")
    data = write_color_folder(root / "colors", per_class=(4, 2))
    train(tiny_config(root / "run", data, epochs=1, shots=4, batch_size=4))
    return root / "run"


@pytest.fixture(scope="session")
def tiny_extractors(tiny_adapter):
    """{"B-B": ..., "LORE": ...} on the same tiny frozen ViT."""
    from lorevit.tasks.bench import extractors_for

    return extractors_for(tiny_adapter)


__all__ = ["TINY_KWARGS", "TINY_SIZE", "TINY_VIT"]
