"""Errors that end a command with one clear line instead of a traceback.

Anything a user can get wrong (a job file, a parameter, a missing input file) raises a
`UserError`: the CLI prints its message alone on one line and exits with code 2, and the
code that raised it must not have written anything half-finished.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = 2


class SpecError(UserError):
    """A problem in a job file, located by file, line and key path."""

    def __init__(self, file: str, line: int | None, key: str, message: str):
        self.file, self.line, self.key, self.message = file, line, key, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")
