"""The one version string of lorevit (pyproject.toml reads it; `lorevit --version` shows it)."""

__version__ = "0.1.0"
