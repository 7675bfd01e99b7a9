"""Error types of tfcaf, each with the exit code the command line maps it to.

Exit codes (house style): 0 ok, 1 rejected / failed check, 2 usage, 3 infrastructure.
A `TfcafError` is an expected failure: the CLI prints its message (cause and fix, one or two lines)
without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TfcafError(Exception):
    """An expected failure with a user-facing message."""

    exit_code = 1


class RejectedError(TfcafError):
    """A check failed: a candidate was rejected, a manifest did not match, a run diverged."""

    exit_code = 1


class UsageError(TfcafError):
    """Bad input from the user: unknown task, unreadable file, invalid option."""

    exit_code = 2


class InfrastructureError(TfcafError):
    """Something outside the user's input failed: endpoint down, environment package missing."""

    exit_code = 3


class MissingDependencyError(InfrastructureError):
    """An optional package is not installed; the message says how to install it."""

    def __init__(self, package: str, purpose: str, install: str | None = None) -> None:
        install = install or f"python3 -m pip install {package}"
        super().__init__(f"{purpose} needs the package '{package}', which is not installed. Install it with: {install}")
        self.package = package
