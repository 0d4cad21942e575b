"""Deprecated alias, kept for one release: ``from lorevit.training import train``."""
from lorevit.training.run import train  # noqa: F401
