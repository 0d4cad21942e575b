"""``lorevit app``: an interactive page over one adapter (issue 22 §2).

- :mod:`.explorer`: what the page shows, as data and without any UI (top-k classes and Fig. 3's panels, point
  correspondence B-B vs the adapter, the adapter's own test images to pick);
- :mod:`.errors`: :class:`~lorevit.app.errors.AppError` (torch-free);
- :mod:`.page`: the Gradio page over an explorer and its launch (Gradio is the optional ``app`` extra and loads
  there only); the command is :mod:`lorevit.cli.app`.

This room sits above ``tools/`` and ``tasks/`` (it uses both) and beside ``bench/``.
"""
