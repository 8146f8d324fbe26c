"""The user-error hierarchy: a bad input (file, key, argument, run directory) the user can fix.

The CLI prints a `UserError` as one `error: ...` message with no traceback and exits with its `exit_code`;
any other exception is a bug and keeps its traceback. Every layer's own error type derives from this one.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with what the user gave us; the message names the source (file:line, key or argument)."""

    exit_code = 1

    def describe(self) -> str:
        """The text the CLI prints."""
        return f"error: {self}"


class RunDirError(UserError):
    """A run directory that cannot be used for this run (another run's, a file, not writable, not a run)."""


class NonFiniteError(UserError):
    """Training produced a non-finite loss or gradient norm (usually a config value: learning rate, beta)."""
