"""The root of every error a user can fix (a wrong value, path or file): the CLI prints it as one
``lorevit: error: ...`` line and exits with status 2. Kept free of torch so that errors found while
parsing arguments are reported at once."""


class UserError(Exception):
    """Bad input a user can fix; the message names the problem and the fix."""
