"""The command line (``lorevit``, ``python -m lorevit``): :func:`main` and its parser."""
from lorevit.cli.main import build_parser, main
from lorevit.cli.options import config_from_args

__all__ = ["build_parser", "config_from_args", "main"]
