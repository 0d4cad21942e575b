"""MkDocs hook: the CLI reference page is generated from lorevit's argparse parsers (it cannot drift).

A page holding the line ``<!-- lorevit-cli-reference -->`` gets, in its place, the ``--help`` text of
``lorevit`` and of every sub-command (and of their sub-commands, e.g. ``bench suite``).
"""
from __future__ import annotations

import argparse

MARKER = "<!-- lorevit-cli-reference -->"


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]):
    yield path, parser
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # aliases point at the same parser
                    continue
                seen.add(id(sub))
                yield from _walk(sub, (*path, name))


def cli_reference() -> str:
    import os

    from lorevit.cli.main import build_parser

    os.environ.setdefault("COLUMNS", "100")  # argparse wraps --help at $COLUMNS
    parts = []
    for path, parser in _walk(build_parser(), ("lorevit",)):
        level = "#" * min(2 + len(path) - 1, 4)
        parts.append(f"{level} `{' '.join(path)}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return _insert_api(markdown)


API_MARKER = "<!-- lorevit-api-reference -->"
API_MODULES = ("lorevit", "lorevit.methods", "lorevit.tasks")


def api_reference() -> str:
    """One mkdocstrings block per name of each module's ``__all__``, from the module that defines it
    (lazy re-exports and ``from x import y`` are followed); plain data is shown by type and value."""
    import importlib
    import inspect

    parts = []
    for module_name in API_MODULES:
        module = importlib.import_module(module_name)
        parts.append(f"## `{module_name}`\n\n::: {module_name}\n    options:\n      members: false\n")
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                parts.append(f'<a id="{module_name}.{name}"></a>\n\n::: {obj.__module__}.{obj.__qualname__}\n'
                             f"    options:\n      heading_level: 3\n")
            else:
                shown = ", ".join(sorted(obj)) if isinstance(obj, dict) else repr(obj)
                parts.append(f'<a id="{module_name}.{name}"></a>\n\n### `{module_name}.{name}`\n\n'
                             f"`{type(obj).__name__}`: {shown}\n")
    return "\n".join(parts)


def _insert_api(markdown: str) -> str:
    return markdown.replace(API_MARKER, api_reference()) if API_MARKER in markdown else markdown
