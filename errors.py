"""The toolkit's exception hierarchy: one base class, one subclass per kind of failure.

Every script's ``main`` catches ``LibraryBenchError`` and prints ``str(error)`` as one line on
stderr, so messages must say what went wrong and where (file, problem index, URL, variable).

An error of one problem (a bad record, an id out of range, an executor or model failure) carries
the solution file and the problem index as fields (``file``, ``index``; set by the constructor or
by ``at``) next to its ``reason``; ``problem_line`` is the one place that formats them, as
``<file>: problem <i>: <reason>`` (the line the scripts print and store).
"""

from __future__ import annotations

import os


class LibraryBenchError(Exception):
    """Base class: a failure the user can act on, printed as one line without a traceback."""

    def __init__(self, reason: str = "", *, file: str | os.PathLike[str] | None = None,
                 index: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.file = None if file is None else str(file)
        self.index = index

    @property
    def located(self) -> bool:
        """Whether the error names the problem it belongs to (``file`` and ``index``)."""
        return self.index is not None

    def at(self, file: str | os.PathLike[str], index: int) -> "LibraryBenchError":
        """This error, located at problem ``index`` of ``file`` (an error already located keeps its place)."""
        if not self.located:
            self.file, self.index = str(file), index
        return self

    def __str__(self) -> str:
        if self.located:
            return problem_line(self.file or "", self.index or 0, self.reason)
        return self.reason


def problem_line(file: str | os.PathLike[str], index: int, reason: object) -> str:
    """``<file>: problem <i>: <reason>`` on one line: how every problem error is shown and stored."""
    return f"{file}: problem {index}: {' '.join(str(reason).split(chr(10))).strip()}"


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
