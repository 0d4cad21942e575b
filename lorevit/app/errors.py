"""The app's one error (torch-free, so that a missing Gradio is reported before anything heavy loads)."""
from __future__ import annotations

from lorevit.errors import UserError


class AppError(UserError, ValueError):
    """An input given through the page or the command is wrong (not an image, too large, no point, no Gradio); the
    page shows the message, the command prints it as one ``lorevit: error:`` line."""
