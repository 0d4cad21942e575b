"""The root of every error a user can fix (a wrong value, path or file): the CLI prints it as one
``lorevit: error: ...`` line and exits with status 2. Kept free of torch so that errors found while
parsing arguments are reported at once."""


class UserError(Exception):
    """Bad input a user can fix; the message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A config key or value a user wrote is wrong; the message says how to fix it."""


class RunError(UserError, RuntimeError):
    """The run cannot start as asked (output directory state, resume); nothing was written."""
