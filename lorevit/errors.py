"""The root of every error a user can fix (a wrong value, path or file): the CLI prints it as one
``lorevit: error: ...`` line and exits with status 2. Kept free of torch so that errors found while
parsing arguments are reported at once."""


class UserError(Exception):
    """Bad input a user can fix; the message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A config key or value a user wrote is wrong; the message says how to fix it."""


class RunError(UserError, RuntimeError):
    """The run cannot start as asked (output directory state, resume); nothing was written."""


class DiskFullError(UserError, OSError):
    """The device ran out of space (or a quota / file-size limit) while a file was written; the previous version of
    the file is unchanged and the partial one was removed (issue 25 §2)."""


class DamagedFileError(UserError):
    """A file lorevit wrote earlier (a checkpoint, a cache entry) is truncated or corrupt; the message names it."""


class Diverged(UserError):
    """Training met a non-finite loss or gradient (``on_nonfinite: stop``): the step was not applied, the last good
    checkpoint is kept, ``metrics.json`` records ``"status": "diverged"`` (issue 25 §2)."""

    def __init__(self, what: str, epoch: int, step: int, lr: float, precision: str, checkpoint: str | None):
        kept = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
        likely = "a learning rate too high for this model" + \
            ("; or fp16 overflow: try --precision bf16-mixed or 32" if precision.startswith("16") else "")
        super().__init__(f"training diverged: non-finite {what} at epoch {epoch}, step {step} (lr {lr:.3g}); likely "
                         f"{likely}. Lower --lr, or pass --on-nonfinite skip to skip such steps; {kept}")
        self.what, self.epoch, self.step = what, epoch, step


EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again" — a preempted run, resumable with --resume auto (docs/reliability.md)


class Preempted(Exception):
    """Training stopped on SIGTERM/SIGUSR1 after finishing its step and writing a step checkpoint (not a user
    error: the CLI exits with EXIT_PREEMPTED, and ``--resume auto`` continues the run)."""

    def __init__(self, signal_name: str, epoch: int, step: int, checkpoint: str):
        super().__init__(f"preempted by {signal_name} at epoch {epoch}, step {step}; checkpoint {checkpoint}")
        self.signal_name, self.epoch, self.step, self.checkpoint = signal_name, epoch, step, checkpoint
