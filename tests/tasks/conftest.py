"""Fixtures of the task tests: B-B and LORE extractors on the tiny trained adapter of tests/conftest.py."""
from __future__ import annotations

import pytest

from ..conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT


@pytest.fixture(scope="session")
def tiny_extractors(tiny_adapter):
    """{"B-B": ..., "LORE": ...} on the same tiny frozen ViT."""
    from lorevit.tasks.bench import extractors_for

    return extractors_for(tiny_adapter)


__all__ = ["TINY_KWARGS", "TINY_SIZE", "TINY_VIT"]
