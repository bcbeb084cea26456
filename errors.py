"""The toolkit's exception hierarchy: one base class, one subclass per kind of failure.

Every script's ``main`` catches ``LibraryBenchError`` and prints ``str(error)`` as one line on
stderr, so messages must say what went wrong and where (file, problem index, URL, variable).
"""

from __future__ import annotations

import os


class LibraryBenchError(Exception):
    """Base class: a failure the user can act on, printed as one line without a traceback."""


class InputError(LibraryBenchError):
    """A solution file or a problem record is unusable (missing, not JSON, no tests, ...)."""


class WriteError(InputError):
    """An output file cannot be written (``atomic_io``): ``path`` and the OS's ``reason`` as fields.

    A subclass of ``InputError`` (a user error, exit 2) so existing handlers keep working."""

    def __init__(self, path: str | os.PathLike[str], reason: str, what: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: cannot write{' ' + what if what else ''}: {reason}")


class ConfigError(LibraryBenchError):
    """A flag, environment variable or API key is missing or invalid."""


class ExecutionError(LibraryBenchError):
    """The execution infrastructure failed (API unreachable, sandbox broken).

    Never a verdict about the program: callers record it as an error of the run, not a failed test.
    """


class ModelError(LibraryBenchError):
    """A model provider call failed after the SDK's own retries."""
