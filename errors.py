"""The toolkit's exception hierarchy: one base class, one subclass per kind of failure.

Every script's ``main`` catches ``LibraryBenchError`` and prints ``str(error)`` as one line on
stderr, so messages must say what went wrong and where (file, problem index, URL, variable).
"""

from __future__ import annotations


class LibraryBenchError(Exception):
    """Base class: a failure the user can act on, printed as one line without a traceback."""


class InputError(LibraryBenchError):
    """A solution file or a problem record is unusable (missing, not JSON, no tests, ...)."""


class ConfigError(LibraryBenchError):
    """A flag, environment variable or API key is missing or invalid."""


class ExecutionError(LibraryBenchError):
    """The execution infrastructure failed (API unreachable, sandbox broken).

    Never a verdict about the program: callers record it as an error of the run, not a failed test.
    """


class ModelError(LibraryBenchError):
    """A model provider call failed after the SDK's own retries."""
