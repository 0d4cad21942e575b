"""The one error type of the task commands: bad input a user can fix (printed as one line, exit 2)."""
from __future__ import annotations

from lorevit.errors import UserError


class TaskError(UserError, ValueError):
    """A task's input is wrong (missing file, malformed annotation, mismatched adapter); says how to fix it."""
